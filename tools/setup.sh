#!/usr/bin/env bash
# Installs what moedit needs on Debian/Ubuntu (only what is missing) and builds
# it into build/. Safe to run again: a second run installs nothing and
# rebuilds only what changed.
#   tools/setup.sh            release build
#   BUILD_DIR=... tools/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# clang and libclang-rt-dev (libFuzzer and clang's sanitizer runtimes) build the
# loaders' fuzz tests (tests/fuzz/).
packages=(build-essential cmake pkg-config libpng-dev libcjson-dev libstb-dev libopenblas-dev
          libopenmpi-dev openmpi-bin libutf8proc-dev libpcre2-dev libmicrohttpd-dev curl clang libclang-rt-dev)
# tests/cli_serve_page.sh drives moedit serve's page in headless Chromium: Debian's
# chromium package (Ubuntu ships it as a snap only; there that test reports itself
# skipped unless chromium is on PATH).
if ! command -v chromium >/dev/null 2>&1 && grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
  packages+=(chromium)
fi
# With a CUDA toolkit, pip fetches the cuDNN frontend's headers (cuDNN's fused
# attention; tools/fetch_cudnn_frontend.sh).
cuda=""
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda=1
  python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
fi
# tests/cli_serve.sh talks to moedit serve through the official openai Python client.
need_openai=""
if ! python3 -c "import openai" >/dev/null 2>&1; then
  need_openai=1
  packages+=(python3 python3-pip)
fi
# tools/eval's shape judge (and its test, tests/tool_shape_judge.py) reads pictures with numpy and Pillow.
need_numpy=""
if ! python3 -c "import numpy, PIL" >/dev/null 2>&1; then
  need_numpy=1
  packages+=(python3 python3-pip)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -n "$need_openai" ]; then
  echo "setup: installing the openai Python package (for tests/cli_serve.sh)"
  python3 -m pip install -q openai 2>/dev/null || python3 -m pip install -q --break-system-packages openai
fi

if [ -n "$need_numpy" ]; then
  echo "setup: installing numpy and Pillow (for tools/eval/shape_judge.py)"
  python3 -m pip install -q numpy pillow 2>/dev/null || python3 -m pip install -q --break-system-packages numpy pillow
fi

if [ -n "$cuda" ] && ! tools/fetch_cudnn_frontend.sh; then
  echo "setup: warning: no cuDNN frontend headers; the CUDA backend is built without cuDNN's fused attention" >&2
fi

build_dir="${BUILD_DIR:-build}"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build_dir" -j"$(nproc)"
