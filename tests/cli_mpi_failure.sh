#!/usr/bin/env bash
# A failure on one rank ends every rank promptly, with the error: rank 1 gets
# a copy of the model whose transformer weights are cut short, rank 0 the
# intact model. Without the abort rank 0 would wait forever in its first
# collective; the run must end within 60 seconds with rank 1's error.
# usage: cli_mpi_failure.sh MOEDIT FIXTURES
set -u
moedit=$1
model="$2/../../models/tiny-random"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$model" "$work/broken"
weights="$work/broken/transformer/diffusion_pytorch_model.safetensors"
head -c 20000 "$model/transformer/diffusion_pytorch_model.safetensors" >"$weights"

args=(generate --prompt "a red circle" --height 64 --width 64 --num-inference-steps 2 --quiet
      --tensor-parallel-size 2 --output "$work/out.png")
start=$(date +%s)
timeout 60 mpirun --allow-run-as-root --oversubscribe -np 1 "$moedit" "${args[@]}" --model "$model" : \
  -np 1 "$moedit" "${args[@]}" --model "$work/broken" >"$work/stdout" 2>"$work/stderr"
status=$?
elapsed=$(( $(date +%s) - start ))
if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
  echo "FAIL: exit status $status after ${elapsed}s (0: no error; 124: hung)"; cat "$work/stderr"; exit 1
fi
if ! grep -q "^moedit: error: \[rank 1\] .*diffusion_pytorch_model.safetensors" "$work/stderr"; then
  echo "FAIL: rank 1's error is not reported:"; cat "$work/stderr"; exit 1
fi
if [ -e "$work/out.png" ]; then echo "FAIL: an output file was written"; exit 1; fi
echo "ok: exit $status after ${elapsed}s: $(grep '^moedit: error' "$work/stderr")"
