# A `moedit quantize` run ended by SIGTERM or SIGHUP half-way through writing
# the transformer leaves nothing behind: its hidden work folder (with the
# components linked into it and the half-written weights file) is removed by
# the signal handler (io/temp_file.h), the process dies of the signal, and
# no output folder appears. The model is models/tiny-random's config with a
# transformer of 24 sparse F32 expert weights of 2048 x 2048 (384 MiB of
# holes on disk, zeros when read): long enough to stop it in the middle.
source "$(dirname "$0")/common_cli.sh"

big="$work/big"
cp -r "$model" "$big"
python3 - "$big/transformer/diffusion_pytorch_model.safetensors" <<'PY'
import json, struct, sys
n, rows, cols = 24, 2048, 2048
size = rows * cols * 4
header = {f"double_stream_blocks.0.block.ff_i.experts.{i}.w1.weight":
          {"dtype": "F32", "shape": [rows, cols], "data_offsets": [i * size, (i + 1) * size]} for i in range(n)}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    f.truncate(8 + len(text) + n * size)
PY

for signal in TERM HUP; do
  out="$work/out"
  "$moedit" quantize --model "$big" --output "$out" 2>"$work/err" &
  pid=$!
  # Stop it once the weights file is being written (its temporary exists), then signal it.
  caught=
  for _ in $(seq 4000); do
    kill -STOP "$pid" 2>/dev/null || break
    if compgen -G "$work/.out.moedit-quantize-*/transformer/.moedit-*" >/dev/null; then caught=1; break; fi
    kill -CONT "$pid"
    sleep 0.005
  done
  [ -n "$caught" ] || fail "SIG$signal: the run ended before it could be stopped mid-way: $(cat "$work/err")"
  kill -"$signal" "$pid"
  kill -CONT "$pid"
  wait "$pid"
  status=$?
  expected=$((128 + $(kill -l "$signal")))
  left=$(ls -A "$work" | grep -v '^big$\|^err$')
  if [ -n "$caught" ] && [ "$status" -eq "$expected" ] && [ -z "$left" ]; then
    echo "ok   SIG$signal mid-way through the weights: exit $status, nothing left"
  else
    fail "SIG$signal: exit $status (expected $expected), left: $left"
  fi
done

# Unsignalled, the same model is quantized (the run above was cut short, not failing).
"$moedit" quantize --model "$big" --output "$work/whole" 2>"$work/err" && [ -d "$work/whole/transformer" ] &&
  echo "ok   the same run unsignalled: $(cat "$work/err")" || fail "the big model's quantize: $(cat "$work/err")"
finish cli_quantize_signal
