#!/usr/bin/env bash
# A model directory for GPU benchmarks at the HiDream-I1-Full shape: the
# transformer config (weights are made with --random-weights), the FLUX.1 VAE
# with random weights saved by tools/bench_diffusers.py (which needs PyTorch
# and diffusers, and also times diffusers' decode into DIFFUSERS_JSONL), and
# the tiny model's scheduler. No text encoder: moedit bench then writes random
# prompt embeddings, which `moedit generate --prompt-embeds` can read.
#   tools/bench_model.sh DIR SIZE DIFFUSERS_JSONL
set -u
[ $# -ge 3 ] || { echo "usage: $0 DIR SIZE DIFFUSERS_JSONL" >&2; exit 2; }
dir=$1
size=$2
jsonl=$3
mkdir -p "$dir/transformer" "$dir/scheduler"
cp tools/configs/hidream_i1_full_transformer.json "$dir/transformer/config.json"
cp models/tiny-random/scheduler/scheduler_config.json "$dir/scheduler/"
cat >"$dir/model_index.json" <<'JSON'
{"_class_name": "HiDreamImagePipeline", "transformer": ["diffusers", "HiDreamImageTransformer2DModel"],
 "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"]}
JSON
python3 tools/bench_diffusers.py vae --height "$size" --width "$size" --iterations 2 --save-vae "$dir/vae" >>"$jsonl"
