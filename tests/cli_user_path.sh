#!/usr/bin/env bash
# What a new user meets first (issue 30), on the CPU:
# 1. seeds: no --seed, or --seed -1, draws a random one, reported on stderr,
#    in --json and in the PNG's metadata, the same on every rank (two ranks
#    of data parallel make seed and seed + 1);
# 2. outputs: an existing file is kept and the run writes the next free name
#    (name-1.png; numbered outputs name-1-0.png ...; the same choice on every
#    rank), --overwrite replaces it; a frames directory holding an earlier
#    run's frames is refused, or with --overwrite emptied of them (other
#    files stay);
# 3. defaults from the model: the demo without a size is 256x256, 20 steps,
#    guidance 4 (its model_index.json), and --help says "model default";
# 4. warnings, one line each and only without --quiet: a size past the
#    trained one, words the tokenizer does not know;
# 5. expert parallelism: a dense transformer is the same one error on 1 and
#    2 ranks; an expert group of one rank says once that nothing is split;
# 6. mpirun -np 2 with no layout flag is data parallel 2, said once.
# usage: cli_user_path.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
demo="$fixtures/../../models/demo"
export OMP_NUM_THREADS=1
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
tiny=("$moedit" generate --model "$model" --prompt "a red circle" --height 64 --width 64 --num-inference-steps 1)

# png_text FILE KEY: the PNG's tEXt value.
png_text() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
data, at = open(sys.argv[1], "rb").read(), 8
while at < len(data):
    n, kind = struct.unpack(">I4s", data[at:at + 8])
    if kind == b"tEXt":
        key, _, value = data[at + 8:at + 8 + n].partition(b"\0")
        if key.decode() == sys.argv[2]: print(value.decode())
    at += 12 + n
PY
}
png_size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1"; }

# 1. Seeds.
"${tiny[@]}" --output "$work/a.png" 2>"$work/err" || fail "no seed: $(cat "$work/err")"
seed=$(sed -n 's/^wrote .* (seed \([0-9]*\))$/\1/p' "$work/err")
if [ -n "$seed" ] && [ "$(png_text "$work/a.png" seed)" = "$seed" ]; then echo "ok   no --seed: random seed $seed, in the PNG too"
else fail "no --seed: reported '$seed', PNG says '$(png_text "$work/a.png" seed)'"; fi
"${tiny[@]}" --seed -1 --quiet --json --output "$work/b.png" >"$work/json" || fail "--seed -1"
seed_b=$(sed -n 's/.*"seeds":\[\([0-9]*\)\].*/\1/p' "$work/json")
if [ -n "$seed_b" ] && [ "$seed_b" != "$seed" ] && [ "$(png_text "$work/b.png" seed)" = "$seed_b" ]; then
  echo "ok   --seed -1: another random seed ($seed_b), in --json and the PNG"
else fail "--seed -1: json '$(cat "$work/json")', first run's seed $seed"; fi
"${tiny[@]}" --seed "$seed" --quiet --output "$work/again.png" && cmp -s "$work/a.png" "$work/again.png" &&
  echo "ok   the reported seed makes the same picture again" || fail "the reported seed made another picture"
expect_error "a negative seed other than -1" "--seed: '-5' is not a seed" "${tiny[@]}" --seed -5 --output "$work/x.png"
"${mpi[@]}" "${tiny[@]}" --num-images-per-prompt 2 --quiet --json --output "$work/r.png" >"$work/json" 2>"$work/err" ||
  fail "two ranks, random seed: $(cat "$work/err")"
seeds=$(sed -n 's/.*"seeds":\[\([0-9]*\)\].*/\1/p' "$work/json" | sort -n | tr '\n' ' ')
read -r s0 s1 <<<"$seeds"
if [ -n "${s1:-}" ] && [ "$s1" -eq $((s0 + 1)) ]; then echo "ok   two ranks share one random seed: $seeds"
else fail "two ranks drew different seeds: $seeds"; fi

# 2. Outputs: next free name, --overwrite, on one rank and two.
before=$(md5sum <"$work/a.png")
"${tiny[@]}" --seed 1 --output "$work/a.png" 2>"$work/err" || fail "existing output: $(cat "$work/err")"
if [ "$(md5sum <"$work/a.png")" = "$before" ] && [ -s "$work/a-1.png" ] && grep -q "^wrote $work/a-1.png " "$work/err"; then
  echo "ok   an existing file is kept: $(cat "$work/err")"; else fail "existing output: $(cat "$work/err"); $(ls "$work")"; fi
"${tiny[@]}" --seed 1 --quiet --output "$work/a.png" && [ -s "$work/a-2.png" ] && echo "ok   then a-2.png" ||
  fail "third run: $(ls "$work")"
"${tiny[@]}" --seed 1 --quiet --overwrite --output "$work/a.png" && [ "$(md5sum <"$work/a.png")" != "$before" ] &&
  [ ! -e "$work/a-3.png" ] && echo "ok   --overwrite replaces it" || fail "--overwrite: $(ls "$work")"
"${mpi[@]}" "${tiny[@]}" --num-images-per-prompt 2 --seed 0 --quiet --output "$work/r.png" 2>"$work/err" ||
  fail "two ranks, existing outputs: $(cat "$work/err")"
if [ -s "$work/r-1-0.png" ] && [ -s "$work/r-1-1.png" ] && [ ! -e "$work/r-0-1.png" ]; then
  echo "ok   two ranks, numbered outputs taken: both write r-1-0.png, r-1-1.png"
else fail "two ranks, numbered outputs: $(ls "$work")"; fi
video=("$moedit" video --model "$model" --prompt "a red circle" --height 64 --width 64 --num-inference-steps 1 --seed 0 --quiet)
mkdir "$work/frames"
"${video[@]}" --num-frames 3 --output "$work/frames/" || fail "frames into an empty directory"
touch "$work/frames/notes.txt"
expect_error "frames over an earlier run's" "frames/ holds 3 frames of an earlier run (frame-0000.png" \
  "${video[@]}" --num-frames 2 --output "$work/frames/"
"${video[@]}" --num-frames 2 --overwrite --output "$work/frames/" || fail "frames with --overwrite"
if [ "$(ls "$work/frames" | tr '\n' ' ')" = "frame-0000.png frame-0001.png notes.txt " ]; then
  echo "ok   --overwrite empties the frames directory of the earlier run's frames only"
else fail "frames directory after --overwrite: $(ls "$work/frames")"; fi

# 3. Defaults from the model.
"$moedit" generate --model "$demo" --prompt "a red circle on a blue background" --seed 0 --quiet --json \
  --output "$work/demo.png" >"$work/json" || fail "demo with the model's defaults"
if [ "$(png_size "$work/demo.png")" = "256x256" ] && [ "$(png_text "$work/demo.png" steps)" = 20 ] &&
   [ "$(png_text "$work/demo.png" guidance_scale)" = 4 ]; then echo "ok   the demo's defaults: 256x256, 20 steps, guidance 4"
else fail "demo defaults: $(png_size "$work/demo.png"), $(png_text "$work/demo.png" steps) steps"; fi
"${tiny[@]}" --height 64 --width 64 --seed 0 --quiet --output "$work/t.png" &&
"$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 1 --seed 0 --quiet --output "$work/t-default.png" &&
  cmp -s "$work/t.png" "$work/t-default.png" && echo "ok   tiny-random's default size is its trained 64x64" ||
  fail "tiny-random's default size: $(png_size "$work/t-default.png")"
"$moedit" generate --help | grep -q "model default" && echo "ok   --help says model default" || fail "--help: no model default"

# 4. Warnings: one line each, not with --quiet.
"$moedit" generate --model "$model" --prompt "a red hexagon" --height 128 --width 128 --num-inference-steps 1 \
  --seed 0 --output "$work/w.png" 2>"$work/err" || fail "warnings run: $(cat "$work/err")"
if [ "$(grep -c '^moedit: warning: 128x128 is past the 64x64' "$work/err")" = 1 ] &&
   [ "$(grep -c '^moedit: warning: .*does not know "hexagon" (1 word' "$work/err")" = 1 ]; then
  echo "ok   warnings: $(grep -c warning "$work/err") lines"; else fail "warnings: $(cat "$work/err")"; fi
"$moedit" generate --model "$model" --prompt "a red hexagon" --height 128 --width 128 --num-inference-steps 1 \
  --seed 0 --quiet --output "$work/w.png" 2>"$work/err"
[ -s "$work/err" ] && fail "--quiet still printed: $(cat "$work/err")" || echo "ok   --quiet: no warnings"

# 5. Expert parallelism.
cp -r "$model" "$work/dense"
python3 - "$work/dense/transformer/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["num_routed_experts"] = 0; json.dump(c, open(sys.argv[1], "w"))
PY
expect_error "EP on a dense transformer, one rank" "--enable-expert-parallel: the transformer is dense" \
  "$moedit" generate --model "$work/dense" --prompt x --enable-expert-parallel --output "$work/d.png"
"${mpi[@]}" "$moedit" generate --model "$work/dense" --prompt x --tensor-parallel-size 2 --enable-expert-parallel \
  --output "$work/d.png" >/dev/null 2>"$work/err"
if [ "$(grep -c '^moedit: error: --enable-expert-parallel: the transformer is dense' "$work/err")" = 1 ] &&
   [ "$(grep -c '^moedit: error' "$work/err")" = 1 ]; then echo "ok   EP on a dense transformer, two ranks: the same one line"
else fail "EP dense on two ranks: $(cat "$work/err")"; fi
"${tiny[@]}" --enable-expert-parallel --seed 0 --output "$work/ep.png" 2>"$work/err" || fail "EP on one rank"
[ "$(grep -c 'nothing to split' "$work/err")" = 1 ] && echo "ok   EP on one rank: said once" || fail "EP one rank: $(cat "$work/err")"

# 6. No layout flags on two ranks: data parallel, said once.
"${mpi[@]}" "${tiny[@]}" --seed 0 --output "$work/dp.png" >/dev/null 2>"$work/err" || fail "two ranks, no layout: $(cat "$work/err")"
[ "$(grep -c '^moedit: note: 2 ranks and no layout flags: data parallel 2' "$work/err")" = 1 ] &&
  echo "ok   two ranks, no layout flags: data parallel 2, said once" || fail "no layout on two ranks: $(cat "$work/err")"
finish cli_user_path
