# --precision fp8 and `moedit quantize` (docs/fp8.md) on models/tiny-random:
# a quantized copy (transformer in F8_E4M3, other components linked) loads
# without requantizing, so it gives the latents that quantizing at load
# gives, bit for bit; FP8 latents differ from F32 ones; the bench reports
# the FP8 transformer's smaller weights; bad requests are one error line
# and leave no folder behind.
source "$(dirname "$0")/common_cli.sh"

run() { "$moedit" generate --model "$1" --prompt "a red square" --seed 3 --height 64 --width 64 \
  --num-inference-steps 2 --quiet --overwrite --output "$work/$2.png" --output-latents "$work/$2.safetensors" "${@:3}"; }

q="$work/quantized"
"$moedit" quantize --model "$model" --output "$q" 2>"$work/err" || fail "quantize: $(cat "$work/err")"
grep -q "transformer weights in FP8" "$work/err" && echo "ok   quantize: $(cat "$work/err")"
"$moedit" inspect --model "$q" >"$work/out" 2>&1
grep -q "F8_E4M3" "$work/out" && echo "ok   the copy's transformer is F8_E4M3" || fail "inspect: $(cat "$work/out")"
# The same parameters (scales count with their weights) and tensors as the original.
"$moedit" inspect --model "$model" | sed -n 3p | sed 's/,.*//' >"$work/params"
sed -n 3p "$work/out" | sed 's/,.*//' | cmp -s - "$work/params" && echo "ok   inspect counts the copy's parameters alike" ||
  fail "inspect: $(sed -n 3p "$work/out") vs $(cat "$work/params")"
cmp -s "$model/vae/diffusion_pytorch_model.safetensors" "$q/vae/diffusion_pytorch_model.safetensors" &&
  echo "ok   the VAE is the model's" || fail "the VAE was not copied as it is"
ls -A "$work" | grep -q moedit-quantize && fail "a work folder was left: $(ls -A "$work")"

run "$model" native || fail "native run"
run "$model" at_load --precision fp8 || fail "fp8 run quantizing at load"
run "$q" stored --precision fp8 || fail "fp8 run of the quantized copy"
cmp -s "$work/at_load.safetensors" "$work/stored.safetensors" && echo "ok   quantized copy = quantized at load" ||
  fail "the quantized copy's latents differ from quantizing at load"
cmp -s "$work/native.safetensors" "$work/at_load.safetensors" && fail "fp8 latents equal the F32 ones" ||
  echo "ok   fp8 latents differ from F32"
run "$q" dequantized || fail "native run of the quantized copy (weights dequantized)"

# The bench reports the transformer's weights: FP8 holds 1 byte per linear weight.
mib() { "$moedit" bench --forward-only --model "$model" --iterations 1 --warmup 0 --height 64 --width 64 --json "$@" |
  sed 's/.*"weight_mib":\([0-9.]*\).*/\1/'; }
native_mib=$(mib) fp8_mib=$(mib --precision fp8)
awk -v a="$native_mib" -v b="$fp8_mib" 'BEGIN { exit !(b > 0 && b < a / 2) }' &&
  echo "ok   bench weight_mib: $native_mib (F32) -> $fp8_mib (FP8)" || fail "bench weight_mib $native_mib -> $fp8_mib"

out="$work/again"
expect_error "output exists" "exists: quantize writes a new folder" "$moedit" quantize --model "$model" --output "$q"
expect_error "not a model" "not a diffusers model folder" "$moedit" quantize --model "$work" --output "$out"
expect_error "no model" "is not a directory" "$moedit" quantize --model "$work/none" --output "$out"
expect_error "no output" "needs --output" "$moedit" quantize --model "$model"
expect_error "other precision" "the only precision it knows" "$moedit" quantize --model "$model" --output "$out" --precision bf16
broken="$work/broken"
cp -r "$model" "$broken"
rm "$broken"/transformer/*.safetensors
expect_error "no weights" "no safetensors weights" "$moedit" quantize --model "$broken" --output "$out"
ls -A "$work" | grep -q moedit-quantize && fail "a failed quantize left its work folder: $(ls -A "$work")"
out=
expect_error "unknown precision" "expected native or fp8" "$moedit" generate --model "$model" --prompt x --precision fp4
expect_error "fp8 on cuda" "the GPU FP8 path is not built yet" "$moedit" generate --model "$model" --prompt x \
  --precision fp8 --device cuda
finish cli_fp8
