#!/usr/bin/env bash
# One training chunk on the GPU machine, run from the repository root through the
# device tool (which sets $OUT; what is written there comes back):
#   carry: .whl (diffusers and importlib_metadata wheels) and, to resume, .train/ckpt
#   command: bash tools/train/gpu_chunk.sh SECONDS [train.py options...]
# Without a checkpoint it trains the VAE first (--vae-seconds), then the text encoder and
# transformer until SECONDS of wall time have passed; with one it goes on from it.
# FROM_MODEL=models/demo (instead of carrying .train/ckpt, which may not fit the 64 MiB the
# device tool carries beside the repository) rebuilds the checkpoint there from the shipped
# model first (tools/train/from_model.py).
set -o pipefail
seconds=${1:-540}
shift
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl &&
  export PYTHONPATH=/tmp/site || exit 1
export PYTHONUNBUFFERED=1
ckpt=.train/ckpt
if [ ! -f "$ckpt/state.json" ] && [ -n "${FROM_MODEL:-}" ]; then
  python3 tools/train/from_model.py --model "$FROM_MODEL" --out /tmp/ckpt || exit 1
  ckpt=/tmp/ckpt
fi
[ -f "$ckpt/state.json" ] || ckpt=""
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 tools/train/train.py --stage all --ckpt "$ckpt" --out "$OUT" --seconds "$seconds" "$@" 2>&1 | tee "$OUT/log.txt"
