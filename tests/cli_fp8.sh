# --precision fp8 and `moedit quantize` (docs/fp8.md) on models/tiny-random:
# a quantized copy (transformer in F8_E4M3, other components linked) loads
# without requantizing, so it gives the latents that quantizing at load
# gives, bit for bit; FP8 latents differ from F32 ones; the bench reports
# the FP8 transformer's smaller weights; published FP8 files (one scale per
# tensor, activation scales beside) load, and quantize, like moedit's own;
# bad requests are one error line and leave no folder behind.
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

# Published FP8 conventions (docs/fp8.md) through the whole CLI: the copy's
# codes with one scale per tensor, stored as ComfyUI does (X.weight_scale of
# shape [], with an X.input_scale; or the older X.scale_weight [1] with an
# X.scale_input), load like moedit's own layout holding that scale on every
# row; `moedit quantize` reads them back into that layout. Latents bit for bit.
python3 - "$q/transformer/diffusion_pytorch_model.safetensors" "$work" <<'PY'
import json, struct, sys
src, work = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
header.pop("__metadata__", None)
data = lambda e: raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]]
def write(path, tensors):
    head, blobs, at = {}, [], 0
    for name, (dtype, shape, blob) in tensors.items():
        head[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(blob)]}
        blobs.append(blob)
        at += len(blob)
    text = json.dumps(head).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
published, own, weights = {}, {}, 0
for name, e in header.items():
    if name.endswith(".weight_scale") and name[:-6] in header and header[name[:-6]]["dtype"] == "F8_E4M3":
        continue
    if e["dtype"] != "F8_E4M3":
        published[name] = own[name] = (e["dtype"], e["shape"], data(e))
        continue
    rows = e["shape"][0]
    scales = struct.unpack(f"<{rows}f", data(header[name + "_scale"]))
    scale = struct.pack("<f", max(scales))  # one scale for the whole tensor
    published[name] = own[name] = (e["dtype"], e["shape"], data(e))
    own[name + "_scale"] = ("F32", [rows], scale * rows)
    base = name[:-len(".weight")]
    if weights % 2 == 0:
        published[name + "_scale"] = ("F32", [], scale)
        published[base + ".input_scale"] = ("F32", [], struct.pack("<f", 0.0123))
    else:
        published[base + ".scale_weight"] = ("F32", [1], scale)
        published[base + ".scale_input"] = ("F32", [], struct.pack("<f", 0.0456))
    weights += 1
write(work + "/published.safetensors", published)
write(work + "/own.safetensors", own)
print(weights)
PY
[ $? -eq 0 ] || fail "making the published-convention copies"
for kind in published own; do
  mkdir "$work/$kind"
  for part in "$q"/*; do [ "$(basename "$part")" = transformer ] || ln -s "$part" "$work/$kind/"; done
  mkdir "$work/$kind/transformer"
  cp "$q/transformer/config.json" "$work/$kind/transformer/"
  mv "$work/$kind.safetensors" "$work/$kind/transformer/diffusion_pytorch_model.safetensors"
done
"$moedit" inspect --model "$work/published" >"$work/out" 2>&1 && grep -q "F8_E4M3" "$work/out" &&
  echo "ok   inspect reads per-tensor scales and input scales" || fail "inspect published: $(cat "$work/out")"
run "$work/published" published --precision fp8 || fail "fp8 run of the published-convention copy"
run "$work/own" own --precision fp8 || fail "fp8 run of the per-row copy"
cmp -s "$work/published.safetensors" "$work/own.safetensors" && echo "ok   per-tensor scales = the same scale per row" ||
  fail "the published-convention copy's latents differ from the per-row copy's"
cmp -s "$work/stored.safetensors" "$work/published.safetensors" && fail "one scale per tensor changed nothing"
run "$work/published" published_f32 || fail "native run of the published-convention copy"
run "$work/own" own_f32 || fail "native run of the per-row copy"
cmp -s "$work/published_f32.safetensors" "$work/own_f32.safetensors" &&
  echo "ok   dequantized alike (code x the tensor's scale)" || fail "dequantized published-convention latents differ"
"$moedit" quantize --model "$work/published" --output "$work/requantized" 2>"$work/err" ||
  fail "quantize of the published-convention copy: $(cat "$work/err")"
run "$work/requantized" requantized --precision fp8 || fail "fp8 run of the requantized published copy"
cmp -s "$work/own.safetensors" "$work/requantized.safetensors" &&
  echo "ok   quantize reads the published conventions back: latents = the per-row copy's" ||
  fail "the requantized published copy's latents differ"

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
# A write that fails names the file under --output, not the hidden folder it was written in.
expect_error "file size limit" "writing $out/transformer/diffusion_pytorch_model.safetensors: File too large" \
  bash -c 'ulimit -f 64; exec "$@"' _ "$moedit" quantize --model "$model" --output "$out"
broken="$work/broken"
cp -r "$model" "$broken"
rm "$broken"/transformer/*.safetensors
expect_error "no weights" "no safetensors weights" "$moedit" quantize --model "$broken" --output "$out"
# Bad scales of an FP8 weight: a shape that fits no convention, a NaN (which would turn rows NaN at run time),
# a zero (which silently zeroed the row), an integer dtype (read as a scale of 1); an E4M3 NaN code (0x7F:
# the run failed later with "non-finite latents", quantize copied it); a scale beside a BF16 weight (ignored).
for bad in shape nan zero i32 code stray; do
  cp -r "$q" "$work/scale_$bad"
  python3 - "$work/scale_$bad/transformer/diffusion_pytorch_model.safetensors" "$bad" <<'PY' || fail "making scale_$bad"
import json, struct, sys
path, bad = sys.argv[1], sys.argv[2]
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
name = next(k for k, e in header.items() if k.endswith(".weight_scale") and e["shape"][0] % 2 == 0)
e = header[name]
begin = 8 + n + e["data_offsets"][0]
if bad == "shape":
    e["shape"] = [e["shape"][0] // 2, 2]  # the same bytes
elif bad == "i32":
    e["dtype"] = "I32"
    raw = raw[:begin] + struct.pack("<i", 1) * e["shape"][0] + raw[begin + 4 * e["shape"][0]:]
elif bad == "code":
    w = header[name[:-len("_scale")]]
    at = 8 + n + w["data_offsets"][0] + 5
    raw = raw[:at] + b"\x7f" + raw[at + 1:]
elif bad == "stray":  # the gate stays BF16: this scale becomes the gate's (its weight then has scale 1)
    header[next(k for k in header if k.endswith(".ff_i.gate.weight")) + "_scale"] = header.pop(name)
else:
    raw = raw[:begin] + struct.pack("<f", float("nan") if bad == "nan" else 0.0) + raw[begin + 4:]
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
open(path, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])
PY
done
expect_error "scale shape" "must be a scalar" "$moedit" quantize --model "$work/scale_shape" --output "$out"
expect_error "NaN scale" "holds nan (row 0)" "$moedit" quantize --model "$work/scale_nan" --output "$out"
expect_error "zero scale" "holds 0 (row 0); a scale must be positive and finite" \
  "$moedit" quantize --model "$work/scale_zero" --output "$out"
expect_error "integer scale" "has dtype I32; a scale is F32, BF16 or F16" \
  "$moedit" quantize --model "$work/scale_i32" --output "$out"
expect_error "NaN code (quantize)" "holds a NaN code at element 5" "$moedit" quantize --model "$work/scale_code" --output "$out"
out=
expect_error "NaN code (fp8 run)" "holds a NaN code at element 5" \
  run "$work/scale_code" nan_code --precision fp8
expect_error "NaN code (dequantized)" "holds a NaN code at element 5" run "$work/scale_code" nan_code
expect_error "scale of a BF16 weight" "gate.weight_scale\" belongs to .*, which is BF16, not F8" \
  run "$work/scale_stray" stray --precision fp8
out="$work/again"
expect_error "scale of a BF16 weight (quantize)" "which is BF16, not F8" \
  "$moedit" quantize --model "$work/scale_stray" --output "$out"
ls -A "$work" | grep -q moedit-quantize && fail "a failed quantize left its work folder: $(ls -A "$work")"
out=
expect_error "unknown precision" "expected native or fp8" "$moedit" generate --model "$model" --prompt x --precision fp4
expect_error "fp8 on cuda" "await their first GPU verification" "$moedit" generate --model "$model" --prompt x \
  --precision fp8 --device cuda
finish cli_fp8
