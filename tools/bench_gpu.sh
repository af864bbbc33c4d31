#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md: moedit and diffusers on the same GPU,
# same shapes, in one run. Needs a CUDA build of moedit and PyTorch with
# diffusers.
#   tools/bench_gpu.sh BUILD_DIR OUT_DIR
# Writes JSON lines to OUT_DIR: per-step transformer latency of the
# HiDream-I1-Full shape (random weights) at 1024x1024 and 2048x2048, and the
# VAE decode of a 1024x1024 and a 2048x2048 image with the FLUX VAE config (the same random
# weights in both programs).
set -u
build=$1
out=$2
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
config=tools/configs/hidream_i1_full_transformer.json
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt"
# ROUNDS (default 1) repeats the transformer pair, moedit and diffusers
# alternating: both move by a few percent between runs, so a ratio is only
# as good as the spread of its rounds. Each line gets its round number.
# BATCH=2 times both CFG branches in one forward in both programs (a
# denoising step's transformer work, as HiDreamImagePipeline batches them).
. "$(dirname "$0")/bench_forward.sh"
for round in $(seq "${ROUNDS:-1}"); do
  for size in 1024 2048; do
    iterations=$(forward_iterations "$size")
    forward_json "$build/moedit" "$size" "${BATCH:-1}" | sed "s/^{/{\"round\":$round,/" >>"$out/moedit_transformer.jsonl"
    python3 tools/bench_diffusers.py transformer --config "$config" --height "$size" --width "$size" \
      --text-tokens 128 --batch "${BATCH:-1}" --warmup 2 --iterations "$iterations" | sed "s/^{/{\"round\": $round, /" \
      >>"$out/diffusers_transformer.jsonl"
  done
done
for size in 1024 2048; do
  python3 tools/bench_diffusers.py vae --height "$size" --width "$size" --save-vae "$out/flux_vae" \
    >>"$out/diffusers_vae.jsonl"
  # Default convolutions (cuDNN, channels last) and the im2col + cuBLASLt path.
  for mode in nhwc 0; do
    MOEDIT_CUDNN=$mode "$build/moedit" bench-vae --model "$out/flux_vae" --device cuda --height "$size" --width "$size" \
      --iterations 5 --json | sed "s/^{/{\"cudnn\":\"$mode\",/" >>"$out/moedit_vae.jsonl"
  done
  rm -rf "$out/flux_vae"
done
