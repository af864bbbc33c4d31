#!/usr/bin/env bash
# Faults of files and signals (issue 31, docs/faults.md): a NaN VAE weight, a
# FIFO as an input, tensors of a dtype moedit does not read, a full disk (a
# file-size limit), a 251-byte output name, numbered outputs whose later
# names are blocked, and a sharded index that points outside its folder.
# Each is one line "moedit: error: ..." and no output, or the run it asked for.
# usage: cli_faults_io.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1
out="$work/out.png"
run=("$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 2 --height 64 --width 64 --quiet)
video=("$moedit" video --model "$model" --prompt "a red circle" --num-inference-steps 2 --height 64 --width 64 --quiet
       --num-frames 2)

# safetensors_tool FILE set-nan TENSOR | FILE one TENSOR DTYPE: edits or writes safetensors without torch.
safetensors_tool() {
  python3 - "$@" <<'PY'
import json, struct, sys
path, action, name = sys.argv[1:4]
if action == "one":  # a file holding only `name`, 8 elements of dtype argv[4] (bytes of 1)
    dtype = sys.argv[4]
    size = {"U8": 1, "BOOL": 1, "I64": 8}[dtype]
    header = json.dumps({name: {"dtype": dtype, "shape": [8], "data_offsets": [0, 8 * size]}}).encode()
    header += b" " * (-len(header) % 8)
    open(path, "wb").write(struct.pack("<Q", len(header)) + header + bytes([1]) * (8 * size))
    sys.exit(0)
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
entry = json.loads(data[8:8 + n])[name]
nan = {"F32": struct.pack("<I", 0x7FC00000), "BF16": struct.pack("<H", 0x7FC0), "F16": struct.pack("<H", 0x7E00)}
begin, end = (8 + n + o for o in entry["data_offsets"])
pattern = nan[entry["dtype"]]
data[begin:end] = pattern * ((end - begin) // len(pattern))
open(path, "wb").write(data)
PY
}

# 1. A NaN in a VAE weight: no black picture, one line naming the stage.
cp -r "$model" "$work/nan_vae"
safetensors_tool "$work/nan_vae/vae/diffusion_pytorch_model.safetensors" set-nan decoder.conv_in.weight
expect_error "NaN VAE weight, image" "VAE decoder made non-finite pixels for $out" \
  "$moedit" generate --model "$work/nan_vae" --prompt x --num-inference-steps 2 --height 64 --width 64 --quiet --output "$out"
expect_error "NaN VAE weight, clip" "VAE decoder made non-finite pixels for $out" \
  "$moedit" video --model "$work/nan_vae" --prompt x --num-inference-steps 2 --height 64 --width 64 --quiet \
  --num-frames 2 --output "$out"
rm -rf "$work/nan_vae"

# 2. A FIFO as an input is refused at once (timeout: today's open() would block forever).
mkfifo "$work/fifo"
expect_error "FIFO as the prompt file" "fifo: cannot read prompt file (--prompt-file): not a regular file (a FIFO)" \
  timeout 20 "$moedit" generate --model "$model" --prompt-file "$work/fifo" --height 64 --width 64 --output "$out"
expect_error "FIFO as the init noise" "fifo: cannot open: not a regular file (a FIFO)" \
  timeout 20 "${run[@]}" --init-noise "$work/fifo" --output "$out"
expect_error "FIFO as the input image" "cannot read image $work/fifo: not a regular file (a FIFO)" \
  timeout 20 "$moedit" edit --model "$model" --prompt x --num-inference-steps 2 --quiet --image "$work/fifo" --output "$out"
cp -r "$model" "$work/fifo_model"
rm "$work/fifo_model/transformer/diffusion_pytorch_model.safetensors"
mkfifo "$work/fifo_model/transformer/diffusion_pytorch_model.safetensors"
expect_error "FIFO as the transformer's weights" "diffusion_pytorch_model.safetensors: cannot open: not a regular file (a FIFO)" \
  timeout 20 "$moedit" generate --model "$work/fifo_model" --prompt x --height 64 --width 64 --quiet --output "$out"
# A FIFO (or device) as an output: the temporary renamed over it replaced it by a file (as root,
# --cache-schedule-capture /dev/full made /dev/full a regular file); now refused, and it stays what it was.
for flag in --output-latents --routing-capture "--output"; do
  target="$work/fifo"
  [ "$flag" = --output ] && target="$work/fifo.png" && mkfifo "$target"
  extra=(--output "$work/side.png")
  [ "$flag" = --output ] && extra=(--overwrite)
  expect_error "FIFO as $flag" "$target.* not a regular file (a FIFO); moedit writes its outputs as new files" \
    timeout 20 "${run[@]}" "${extra[@]}" $flag "$target"
  [ -p "$target" ] || fail "$flag replaced the FIFO $target"
  rm -f "$work/side.png"
done
rm -rf "$work/fifo_model" "$work/fifo" "$work/fifo.png"

# 3. Tensors of a dtype moedit does not read are named with it, not "no tensor".
safetensors_tool "$work/noise.safetensors" one latents I64
expect_error "I64 init noise" "tensor \"latents\" has dtype I64, which moedit does not read" \
  "${run[@]}" --init-noise "$work/noise.safetensors" --output "$out"
safetensors_tool "$work/embeds.safetensors" one prompt_embeds_t5 U8
expect_error "U8 prompt embeddings" "tensor \"prompt_embeds_t5\" has dtype U8" \
  "$moedit" generate --model "$model" --prompt-embeds "$work/embeds.safetensors" --num-inference-steps 2 \
  --height 64 --width 64 --quiet --output "$out"
safetensors_tool "$work/embeds.safetensors" one prompt_embeds_t5 BOOL
expect_error "BOOL prompt embeddings" "tensor \"prompt_embeds_t5\" has dtype BOOL" \
  "$moedit" generate --model "$model" --prompt-embeds "$work/embeds.safetensors" --num-inference-steps 2 \
  --height 64 --width 64 --quiet --output "$out"
rm -f "$work/noise.safetensors" "$work/embeds.safetensors"

# 4. A full disk, as a 1 KiB file-size limit: one line with errno's reason, no libpng line, nothing left.
expect_error "file-size limit, PNG" "writing $out: File too large" bash -c 'ulimit -f 1; exec "$@"' - "${run[@]}" --output "$out"
expect_error "file-size limit, JPEG" "writing $work/out.jpg: File too large" \
  bash -c 'ulimit -f 1; exec "$@"' - "${run[@]}" --output "$work/out.jpg"
expect_error "file-size limit, animated PNG" "writing $out: File too large" \
  bash -c 'ulimit -f 1; exec "$@"' - "${video[@]}" --output "$out"

# 5. A legal 251-byte name (NAME.tmp.PID would pass NAME_MAX).
long="$work/$(printf 'a%.0s' $(seq 247)).png"
if "${run[@]}" --output "$long" 2>"$work/err" && [ -s "$long" ] && ! ls -A "$work" | grep -q '^\.moedit-\|\.tmp\.'; then
  echo "ok   251-byte output name"; else fail "251-byte output name: $(cat "$work/err"; ls -A "$work")"; fi
rm -f "$long"
expect_error "a 256-byte output name" "the file name is 256 bytes, over the 255" \
  "${run[@]}" --output "$work/$(printf 'a%.0s' $(seq 252)).png"

# 6. Numbered outputs: every name is checked before any model loads; the base name is never written.
mkdir "$work/batch-1.png"
out="$work/batch-0.png"
expect_error "second numbered output is a directory" "output $work/batch-1.png is a directory" \
  "${run[@]}" --num-images-per-prompt 2 --output "$work/batch.png"
rmdir "$work/batch-1.png"
mkdir "$work/o.png"
if "${run[@]}" --num-images-per-prompt 2 --output "$work/o.png" 2>"$work/err" && [ -s "$work/o-0.png" ] &&
   [ -s "$work/o-1.png" ]; then echo "ok   a directory at the unused base name"; else
  fail "a directory named o.png refused a run that writes o-0.png and o-1.png: $(cat "$work/err")"; fi
rm -rf "$work/o.png" "$work/o-0.png" "$work/o-1.png"
out="$work/frames/frame-0000.png"
mkdir -p "$work/frames/frame-0001.png"
expect_error "a frame's name is a directory" "output $work/frames/frame-0001.png is a directory" \
  "${video[@]}" --output "$work/frames/"
rm -rf "$work/frames"
# A later file that fails anyway (its long prompt's metadata passes a file-size limit the first fits):
# the message names the file written before it.
"$moedit" generate --model "$model" --prompt a --num-inference-steps 2 --height 64 --width 64 --quiet --output "$work/size.png"
limit=$(( ($(stat -c %s "$work/size.png") + 3000) / 1024 + 1 ))
rm -f "$work/size.png"
{ echo a; printf 'b%.0s' $(seq 8000); echo; } >"$work/prompts.txt"
out="$work/later-1.png"
expect_error "a later output fails" "writing $work/later-1.png: File too large (written before it: $work/later-0.png)" \
  bash -c "ulimit -f $limit; exec \"\$@\"" - "$moedit" generate --model "$model" --prompt-file "$work/prompts.txt" \
  --num-inference-steps 2 --height 64 --width 64 --quiet --output "$work/later.png"
[ -s "$work/later-0.png" ] || fail "the first output of the failed run is missing"
rm -f "$work/later-0.png" "$work/prompts.txt"
out="$work/out.png"

# 12. A sharded index naming a file outside the component's folder is refused before it is opened.
cp -r "$model" "$work/escape"
python3 - "$work/escape/transformer" <<'PY'
import json, os, struct, sys
folder = sys.argv[1]
path = os.path.join(folder, "diffusion_pytorch_model.safetensors")
data = open(path, "rb").read()
names = [k for k in json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]]) if k != "__metadata__"]
os.rename(path, os.path.join(folder, "shard-1.safetensors"))
weight_map = {k: "shard-1.safetensors" for k in names}
weight_map[names[0]] = "../../../../../../etc/passwd"
json.dump({"weight_map": weight_map}, open(path + ".index.json", "w"))
PY
expect_error "shard outside the folder" "\"../../../../../../etc/passwd\": a shard must be a plain file name" \
  "$moedit" generate --model "$work/escape" --prompt x --height 64 --width 64 --quiet --output "$out"
rm -rf "$work/escape"

finish cli_faults_io
