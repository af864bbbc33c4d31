#!/usr/bin/env bash
# The step cache's speed on GPUs at the HiDream-I1-Full shape with random
# weights (speed only: random weights say nothing about quality), 50 steps,
# 1024 and 2048 (docs/step-cache.md). Part 1, one GPU: the whole pipeline
# through `moedit generate --random-weights` on the shape folder of
# tools/make_hidream_shape_model.py (text encoders, transformer, VAE), each
# setting run twice (the first warms the GPU and its caches), wall time and
# moedit's phases from --json. Part 2, with RANKS > 1 GPUs: `moedit bench`
# over the transformer (--config), uncached and cached, where every layout
# replays the serial run's schedule and is checked against it (PSNR >= 40 dB).
# usage: tools/bench_step_cache_gpu.sh BUILD/moedit OUT_DIR [RANKS]
set -eu
moedit=$1
out=$2
ranks=${3:-1}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
shape="$out/hidream_shape"
[ -d "$shape/transformer" ] || python3 "$here/make_hidream_shape_model.py" "$shape" >/dev/null
config="$here/configs/hidream_i1_full_transformer.json"

# name|flags: the defaults (docs/step-cache.md), the fast setting, taylor.
settings=(
  "none|"
  "block-default|--cache block"
  "block-fast|--cache block --cache-last-blocks 0 --cache-threshold 0.3 --cache-max-consecutive 4"
  "taylor1|--cache taylor --cache-taylor-order 1 --cache-last-blocks 0 --cache-threshold 0.3 --cache-max-consecutive 4"
)
for size in 1024 2048; do
  for entry in "${settings[@]}"; do
    name=${entry%%|*}
    flags=${entry#*|}
    for run in warm timed; do
      start=$(date +%s.%N)
      # shellcheck disable=SC2086
      "$moedit" generate --model "$shape" --random-weights --device cuda --prompt "a red circle on a blue background" \
        --height $size --width $size --num-inference-steps 50 --seed 0 --quiet --json --overwrite \
        --output "$out/$size-$name.png" $flags >"$out/$size-$name-$run.json"
      end=$(date +%s.%N)
      echo "$size $name $run wall $(echo "$end - $start" | bc) s: $(cat "$out/$size-$name-$run.json")" | tee -a "$out/summary.txt"
    done
  done
done

if [ "$ranks" -gt 1 ]; then
  for size in 1024 2048; do
    for entry in "${settings[@]}"; do
      name=${entry%%|*}
      flags=${entry#*|}
      # shellcheck disable=SC2086
      mpirun --allow-run-as-root -np "$ranks" "$moedit" bench --config "$config" --random-weights --device cuda \
        --height $size --width $size --num-inference-steps 50 --layouts auto --warmup-steps 2 --quiet \
        --json "$out/bench-$size-$name.json" --markdown "$out/bench-$size-$name.md" $flags
      cat "$out/bench-$size-$name.md" | tee -a "$out/summary.txt"
    done
  done
fi
