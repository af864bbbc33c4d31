#!/usr/bin/env bash
# moedit generate --batch-size N: N images denoised together, the CFG
# branches of all of them through one transformer forward a step
# (pipelines/denoise.c, denoise_batch), against the same run one image at a
# time (--batch-size 1, the default):
# 1. tiny-random, serial, 3 prompts x 2 images in batches of 4 and 2: every
#    file byte for byte the unbatched one's (the CPU's products give these
#    rows the same sums at these sizes); also without guidance; an edit
#    (n 3) within 1e-4 on the latents (measured 2.2e-6) and 1 on the pixels;
# 2. the demo model, serial, 3 prompts at 128x128: OpenBLAS picks other
#    kernels for the batch's taller products, so the sums round otherwise:
#    latents within 5e-5 of the unbatched run's (measured: 1.0e-5, |x| up
#    to 2.5) and pixels within 1;
# 3. on 2 ranks (cfg2, tp2, ulysses2, dp2): batched against unbatched on the
#    same layout, latents within 1e-4 (the layouts' bound, docs) and pixels
#    within 1;
# 4. bad values: --batch-size 9, -1, with --cache or --routing-capture, for a video.
# usage: cli_generate_batch.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
demo="$fixtures/../../models/demo"
printf 'a red circle\na blue square\nsomething else entirely\n' >"$work/prompts.txt"
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)

# close A_DIR B_DIR COUNT LATENT_BOUND PIXEL_BOUND: images A_DIR/x-i.png and
# B_DIR/x-i.png within PIXEL_BOUND, the latents files within LATENT_BOUND
# (0 0: byte for byte equal files); prints the measured differences.
close() {
  python3 - "$@" <<'PY'
import json, struct, sys
import numpy as np
from PIL import Image
a, b, count, latent_bound, pixel_bound = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
def latents(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    entry = json.loads(data[8:8 + n])["latents"]
    first, last = entry["data_offsets"]
    return np.frombuffer(data[8 + n + first:8 + n + last], dtype=np.float32)
if latent_bound == 0 and pixel_bound == 0:
    same = all(open(f"{a}/x-{i}.png", "rb").read() == open(f"{b}/x-{i}.png", "rb").read() for i in range(count))
    print("byte for byte" if same else "files differ")
    sys.exit(0 if same else 1)
pixels = max(int(np.abs(np.asarray(Image.open(f"{a}/x-{i}.png")).astype(int) -
                        np.asarray(Image.open(f"{b}/x-{i}.png")).astype(int)).max()) for i in range(count))
latent = float(np.abs(latents(f"{a}/l.safetensors") - latents(f"{b}/l.safetensors")).max())
print(f"latents max abs diff {latent:.3g}, pixels {pixels}")
sys.exit(0 if latent <= latent_bound and pixels <= pixel_bound else 1)
PY
}

# compare NAME COUNT LATENT_BOUND PIXEL_BOUND COMMAND...: COMMAND --batch-size 1 and 4.
compare() {
  local name=$1 count=$2 latent_bound=$3 pixel_bound=$4 message
  shift 4
  rm -rf "$work/one" "$work/batched"
  mkdir "$work/one" "$work/batched"
  if ! "$@" --batch-size 1 --output "$work/one/x.png" --output-latents "$work/one/l.safetensors" >/dev/null 2>"$work/err" ||
     ! "$@" --batch-size 4 --output "$work/batched/x.png" --output-latents "$work/batched/l.safetensors" >/dev/null 2>>"$work/err"; then
    fail "$name: $(cat "$work/err")"
    return
  fi
  if message=$(close "$work/one" "$work/batched" "$count" "$latent_bound" "$pixel_bound"); then
    echo "ok   $name: $message"
  else
    fail "$name: $message"
  fi
}

tiny=("$moedit" generate --model "$model" --prompt-file "$work/prompts.txt" --num-images-per-prompt 2 --height 32 --width 32
      --num-inference-steps 3 --seed 5 --quiet)
compare "tiny-random, 6 images in batches of 4 and 2" 6 0 0 "${tiny[@]}"
compare "tiny-random without guidance" 6 0 0 "${tiny[@]}" --guidance-scale 1
"$moedit" generate --model "$model" --prompt input --height 32 --width 32 --num-inference-steps 2 --quiet --output "$work/input.png"
compare "tiny-random edit, n 3" 3 1e-4 1 "$moedit" edit --model "$model" --image "$work/input.png" --prompt "a red circle" \
  --num-images-per-prompt 3 --num-inference-steps 4 --strength 0.7 --seed 2 --quiet
compare "demo model, 3 prompts at 128x128" 3 5e-5 1 "$moedit" generate --model "$demo" --prompt-file "$work/prompts.txt" \
  --height 128 --width 128 --num-inference-steps 4 --seed 9 --quiet
for layout in "--cfg-parallel-size 2" "--tensor-parallel-size 2" "--ulysses-degree 2" "--data-parallel-size 2"; do
  compare "2 ranks $layout" 6 1e-4 1 "${mpi[@]}" "${tiny[@]}" $layout
done

expect_error "--batch-size 9" "--batch-size 9: must be 1..8" "${tiny[@]}" --batch-size 9 --output "$work/bad.png"
expect_error "--batch-size -1" "--batch-size -1: must be 1..8" "${tiny[@]}" --batch-size -1 --output "$work/bad.png"
expect_error "--batch-size 0" "--batch-size 0: must be 1..8" "${tiny[@]}" --batch-size 0 --output "$work/bad.png"
expect_error "--batch-size with --cache" "one at a time with --routing-capture, --routing-replay or --cache" \
  "${tiny[@]}" --batch-size 2 --cache block --output "$work/bad.png"
expect_error "--batch-size with --routing-capture" "one at a time with --routing-capture" \
  "${tiny[@]}" --batch-size 2 --routing-capture "$work/r.safetensors" --output "$work/bad.png"
expect_error "--batch-size for a video" "clips are denoised one at a time" \
  "$moedit" video --model "$model" --prompt x --num-frames 2 --height 32 --width 32 --num-inference-steps 2 --batch-size 2 \
  --output "$work/bad.png"
finish cli_generate_batch
