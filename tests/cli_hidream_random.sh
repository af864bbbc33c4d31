#!/usr/bin/env bash
# The HiDream-I1-Full shape folder of tools/make_hidream_shape_model.py (configs
# and tokenizers, no weights) with --random-weights: `moedit inspect` reads the
# full-size folder; at --scale tiny, generate runs prompt to PNG with every
# component random (the four encoders reported in --json) and bench-text times
# the four encoders (one JSON line); bad bench-text input: one error line.
# usage: cli_hidream_random.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
tools="$fixtures/../../tools"
full="$work/full"
tiny="$work/tiny"
python3 "$tools/make_hidream_shape_model.py" "$full" >/dev/null || fail "make_hidream_shape_model.py full"
python3 "$tools/make_hidream_shape_model.py" "$tiny" --scale tiny >/dev/null || fail "make_hidream_shape_model.py tiny"

"$moedit" inspect --model "$full" >"$work/inspect" 2>&1 || fail "inspect the full shape: $(cat "$work/inspect")"
grep -q "17105.733 M total" "$work/inspect" && grep -q "text_encoder_4 LlamaForCausalLM" "$work/inspect" &&
  grep -q "UniPCMultistepScheduler" "$work/inspect" || fail "inspect: $(cat "$work/inspect")"

out="$work/tiny.png"
"$moedit" generate --model "$tiny" --random-weights --device cpu --prompt "a red circle" --negative-prompt "blurry" \
  --height 64 --width 64 --num-inference-steps 2 --guidance-scale 5 --seed 5 --quiet --json --output "$out" >"$work/gen.json" 2>"$work/gen.err" ||
  fail "generate tiny random: $(cat "$work/gen.err")"
[ -s "$out" ] || fail "generate wrote no PNG"
for k in clip_l clip_g t5 llama; do
  grep -q "\"$k\":{\"seconds\":" "$work/gen.json" || fail "generate --json lacks $k: $(cat "$work/gen.json")"
done
# The same seed makes the same random model and the same image.
"$moedit" generate --model "$tiny" --random-weights --device cpu --prompt "a red circle" --negative-prompt "blurry" \
  --height 64 --width 64 --num-inference-steps 2 --guidance-scale 5 --seed 5 --quiet --output "$work/again.png" 2>/dev/null
cmp -s "$out" "$work/again.png" || fail "two runs with the same seed differ"

"$moedit" bench-text --model "$tiny" --random-weights --device cpu --prompt "a red circle" --warmup 1 --iterations 2 \
  --json >"$work/bench.json" 2>"$work/bench.err" || fail "bench-text: $(cat "$work/bench.err")"
[ "$(wc -l <"$work/bench.json")" -eq 1 ] && grep -q '"llama":{"tokens":128,"ms_median":' "$work/bench.json" &&
  grep -q '"total_ms_median":' "$work/bench.json" || fail "bench-text json: $(cat "$work/bench.json")"
echo "ok   bench-text: $(head -c 160 "$work/bench.json")"

out=
expect_error "bench-text --warmup 0" "--warmup must be 1.." "$moedit" bench-text --model "$tiny" --random-weights \
  --device cpu --prompt "x" --warmup 0
expect_error "bench-text without weights or --random-weights" "no safetensors weights" "$moedit" bench-text \
  --model "$tiny" --device cpu --prompt "x"
expect_error "bench-text without --prompt" "needs --prompt" "$moedit" bench-text --model "$tiny" --device cpu
# 0 was the "not given" value: typed, it ran at 128.
expect_error "bench-text --max-sequence-length 0" "--max-sequence-length must be 1..4096" "$moedit" bench-text \
  --model "$tiny" --random-weights --device cpu --prompt x --max-sequence-length 0
finish cli_hidream_random
