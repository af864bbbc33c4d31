#!/usr/bin/env bash
# The 2-GPU figures of docs/benchmarks.md ("parallel layouts on 1 and 2 H200"):
# the HiDream-I1-Full shape (random bf16 weights) with the FLUX.1 VAE (random
# weights saved by tools/bench_diffusers.py, which needs PyTorch + diffusers),
# every layout checked against the serial run by the bench itself.
#   tools/bench_gpu_layouts.sh MOEDIT OUT_DIR [SIZE] [LAYOUTS] [SECONDS]
# SIZE defaults to 2048. LAYOUTS defaults to the 2-GPU layouts of the table
# (random weights are made on the GPUs, so a new sharding costs well under a
# second; all seven at 2048 took ~170 s on 2026-11-30).
# SECONDS (default 420) bounds the bench, so that a device call's limit never
# loses the output: the progress lines (moedit.log) carry every figure of a
# finished layout even when the tables at the end are not written.
# COMM_TIMING=on in the environment adds --comm-timing on (collectives timed
# per group, at the cost of a synchronisation around each); BENCH_ARGS adds
# any other bench options (e.g. "--expert-placement reference"); STEPS (default
# 4) sets the denoising steps per layout (at 1024 a step is short and 4 steps
# ranked layouts doing the same work 29% apart on 2026-11-30: use more there);
# Every GPU's SM clock and power over the run (tools/gpu_clocks.sh) are
# summarised at the end of moedit.log: at the power cap they set the speed.
# MPI_ARGS adds mpirun options, e.g. "--bind-to none -x OMP_NUM_THREADS=8":
# by default OpenMPI binds each rank to one core, so host-side work (the MoE
# routing of every layer) runs on one thread per rank.
set -u
[ $# -ge 2 ] || { echo "usage: $0 MOEDIT OUT_DIR [SIZE] [LAYOUTS] [SECONDS]" >&2; exit 2; }
moedit=$1
out=$2
size=${3:-2048}
layouts=${4:-serial,cfg2,cfg2:vae2,ulysses2,ulysses2+ep,tp2,tp2+ep}
seconds=${5:-420}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
model=$(mktemp -d)
trap 'rm -rf "$model"' EXIT
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt"
tools/bench_model.sh "$model" "$size" "$out/diffusers_vae.jsonl" || exit 1
tools/gpu_clocks.sh "$out/clocks.csv" timeout "$seconds" mpirun --allow-run-as-root -np 2 ${MPI_ARGS:-} -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH "$moedit" bench \
  --model "$model" --random-weights --device cuda --height "$size" --width "$size" --layouts "$layouts" \
  --num-inference-steps "${STEPS:-4}" ${COMM_TIMING:+--comm-timing "$COMM_TIMING"} ${BENCH_ARGS:-} --json "$out/layouts.json" --markdown "$out/layouts.md" --plot "$out/layouts.svg" \
  >"$out/moedit.log" 2>&1
echo "bench exit status $?" >>"$out/moedit.log"
