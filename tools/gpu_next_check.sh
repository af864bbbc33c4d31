#!/usr/bin/env bash
# One device call that decides whether branch gpu-next lands: its CUDA parts
# were written without a GPU. Runs the CUDA op tests in every convolution
# mode, the VAE decode in every mode beside diffusers, and the transformer
# forward at 1024 and 2048 (experts on side streams), on one GPU.
#   tools/gpu_next_check.sh MOEDIT TEST_CUDA_BACKEND OUT_DIR
# Needs PyTorch + diffusers for the FLUX VAE (tools/bench_diffusers.py).
set -u
moedit=$1
tests=$2
out=$3
mkdir -p "$out"
for mode in 0 1 nhwc; do
  MOEDIT_CUDNN=$mode timeout 180 "$tests" >"$out/test_cuda_backend.cudnn-$mode.log" 2>&1
  echo "test_cuda_backend MOEDIT_CUDNN=$mode: exit $?" | tee -a "$out/summary.txt"
done
vae=$(mktemp -d)
trap 'rm -rf "$vae"' EXIT
for size in 1024 2048; do
  python3 tools/bench_diffusers.py vae --height "$size" --width "$size" --save-vae "$vae/$size" >>"$out/diffusers_vae.jsonl"
  for mode in 0 1 nhwc; do
    MOEDIT_CUDNN=$mode "$moedit" bench-vae --vae "$vae/$size" --device cuda --height "$size" --width "$size" \
      --iterations 5 --json | sed "s/^{/{\"cudnn\":\"$mode\",/" >>"$out/moedit_vae.jsonl"
  done
done
for size in 1024 2048; do
  iterations=$([ "$size" = 1024 ] && echo 10 || echo 4)
  timeout 240 "$moedit" bench --config tools/configs/hidream_i1_full_transformer.json --random-weights --device cuda \
    --height "$size" --width "$size" --text-tokens 128 --warmup 2 --iterations "$iterations" --json - \
    >>"$out/moedit_transformer.jsonl" 2>>"$out/moedit_transformer.err"
done
cat "$out/summary.txt" "$out/diffusers_vae.jsonl" "$out/moedit_vae.jsonl" "$out/moedit_transformer.jsonl"
