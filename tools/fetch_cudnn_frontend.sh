#!/usr/bin/env bash
# Fetches the headers of NVIDIA's cuDNN frontend (header-only C++, MIT
# licence) into .deps/cudnn_frontend/include, where CMake finds them and then
# builds cuDNN's fused attention into the CUDA backend
# (backend/cuda/cuda_attention_cudnn.cu). Not committed: fetched here, like apt
# packages. The PyPI wheel nvidia-cudnn-frontend carries the headers; one
# pinned file, checked by its SHA-256. Does nothing when the headers are
# there already; exits non-zero when it cannot fetch them (tools/setup.sh
# then builds without cuDNN's attention).
set -euo pipefail
cd "$(dirname "$0")/.."

dest=.deps/cudnn_frontend/include
[ -f "$dest/cudnn_frontend.h" ] && exit 0
version=1.32.0
wheel=nvidia_cudnn_frontend-$version-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
sha256=c6006556017a4d1c914c52a556c71b1267f2d6a0500f742e7b4edef539878df0
if [ "$(uname -m)" != x86_64 ]; then
  echo "fetch_cudnn_frontend: only the x86_64 wheel is pinned; pass -DMOEDIT_CUDNN_FRONTEND_DIR=<include dir> instead" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 -d "$tmp" "nvidia-cudnn-frontend==$version" >"$tmp/pip.log" 2>&1; then
  echo "fetch_cudnn_frontend: pip could not download nvidia-cudnn-frontend==$version: $(tail -1 "$tmp/pip.log")" >&2
  exit 1
fi
if ! echo "$sha256  $tmp/$wheel" | sha256sum -c --quiet - >/dev/null 2>&1; then
  echo "fetch_cudnn_frontend: $wheel is missing or its SHA-256 is not $sha256" >&2
  exit 1
fi
# The wheel is a zip; its include/ folder is the frontend.
python3 - "$tmp/$wheel" "$tmp/unpacked" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if "/include/" in n or n.startswith("include/")])
PY
found=$(find "$tmp/unpacked" -name cudnn_frontend.h -path '*include/cudnn_frontend.h' | head -1)
[ -n "$found" ] || { echo "fetch_cudnn_frontend: no include/cudnn_frontend.h in $wheel" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
cp -r "$(dirname "$found")" "$dest"
echo "fetch_cudnn_frontend: cuDNN frontend $version headers in $dest"
