#!/usr/bin/env bash
# Ranks started with different requests (issue 31 item 8, docs/faults.md): an
# MPMD mpirun line that gives rank 1 other steps, a size, seed, prompt,
# layout, output, command, model folder or prompt file than rank 0 used to
# hang, end in MPI_ERR_TRUNCATE or write a picture matching neither request.
# Now the ranks compare what they were asked before loading anything and
# stop with one line naming the first difference and each rank's value: exit
# 1 within seconds, no MPI_ABORT, no picture. The same request given through
# relative names in two working directories (same model, same prompt file)
# still runs.
# usage: cli_mpi_requests.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
out=$work/out.png
base=(--prompt "a red circle" --height 64 --width 64 --num-inference-steps 2 --seed 0 --quiet
      --tensor-parallel-size 2 --output "$out")

# two_ranks NAME RANK0_ARGS -- RANK1_ARGS: one mpirun line, rank r in $work/rank$r; status in $status.
two_ranks() {
  local rank0=() rank1=()
  while [ "$1" != "--" ]; do rank0+=("$1"); shift; done
  shift
  rank1=("$@")
  start=$(date +%s)
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 1 -wdir "$work/rank0" "$moedit" "${rank0[@]}" : \
    -np 1 -wdir "$work/rank1" "$moedit" "${rank1[@]}" >"$work/stdout" 2>"$work/stderr"
  status=$?
}

# refused NAME NEEDLE RANK0_ARGS -- RANK1_ARGS: one error line matching NEEDLE, no abort, no picture.
refused() {
  local name=$1 needle=$2
  shift 2
  rm -f "$out"
  two_ranks "$@"
  expect_ranks_error "$name ($(( $(date +%s) - start )) s)" "the ranks were not given the same request: $needle"
}

mkdir -p "$work/rank0" "$work/rank1"
g=(generate --model "$model" "${base[@]}")
refused "other steps" "--num-inference-steps is '2' on rank 0, '3' on rank 1" \
  "${g[@]}" -- "${g[@]}" --num-inference-steps 3
refused "other size" "--height is '64' on rank 0, '128' on rank 1" "${g[@]}" -- "${g[@]}" --height 128 --width 128
refused "other seed" "--seed is '0' on rank 0, '7' on rank 1" "${g[@]}" -- "${g[@]}" --seed 7
refused "other prompt" "--prompt is 'a red circle' on rank 0, 'a blue square' on rank 1" \
  "${g[@]}" -- "${g[@]}" --prompt "a blue square"
refused "other layout" "--tensor-parallel-size is '2' on rank 0, '1' on rank 1" \
  "${g[@]}" -- "${g[@]}" --tensor-parallel-size 1 --ulysses-degree 2
refused "other output" "--output is '$out' on rank 0, '$work/other.png' on rank 1" \
  "${g[@]}" -- "${g[@]}" --output "$work/other.png"
refused "other command" "the command is 'generate' on rank 0, 'video' on rank 1" \
  "${g[@]}" -- video --model "$model" "${base[@]}" --num-frames 2
refused "other model path" "--model is '$model' on rank 0, '$work/rank1/m' on rank 1" \
  "${g[@]}" -- generate --model "$work/rank1/m" "${base[@]}"

# The same relative names in each rank's working directory: m/ (a model) and p.txt (a prompt file).
cp -r "$model" "$work/rank0/m"
cp -r "$model" "$work/rank1/m"
printf 'a red circle\na blue square\n' >"$work/rank0/p.txt"
printf 'a red circle\na blue square\n' >"$work/rank1/p.txt"
rel=(generate --model m --prompt-file p.txt --height 64 --width 64 --num-inference-steps 2 --quiet
     --tensor-parallel-size 2 --output "$out")
rm -f "$work"/out-*.png
two_ranks "${rel[@]}" -- "${rel[@]}"
if [ "$status" -ne 0 ] || [ ! -s "$work/out-0.png" ] || [ ! -s "$work/out-1.png" ]; then
  fail "the same request through relative names: exit $status"; cat "$work/stderr"
else
  echo "ok   the same model and prompt file in both working directories: written"
fi
rm -f "$work"/out-*.png
printf 'a red circle\na green star\n' >"$work/rank1/p.txt"
refused "other prompt file contents" "prompt 2 of --prompt-file is 'a blue square' on rank 0, 'a green star' on rank 1" \
  "${rel[@]}" -- "${rel[@]}"
cp "$work/rank0/p.txt" "$work/rank1/p.txt"
python3 - "$work/rank1/m/scheduler/scheduler_config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["shift"] = cfg.get("shift", 1.0) + 1.0
json.dump(cfg, open(sys.argv[1], "w"))
PY
refused "other model under the same name" "the digest of the model folder is [0-9a-f]* (.* files) on rank 0, [0-9a-f]* (.* files) on rank 1" \
  "${rel[@]}" -- "${rel[@]}"
[ -e "$work/out-0.png" ] && fail "other model under the same name: a picture was written"
finish cli_mpi_requests
