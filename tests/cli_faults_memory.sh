#!/usr/bin/env bash
# A CPU run too large for memory (issue 31 item 13, docs/faults.md): a
# 4096x4096 image of the tiny model under a 3 GB address-space limit
# (`ulimit -v 3000000`) used to fail after 121 s naming only "scratch
# arena". Now it is refused before loading, in well under a second, with the
# estimate, its parts and the limit; a run that fits the same limit still
# runs.
# usage: cli_faults_memory.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
out=$work/out.png
run=("$moedit" generate --model "$model" --prompt x --num-inference-steps 1 --quiet --output "$out")
start=$(date +%s%N)
expect_error "4096x4096 under ulimit -v 3000000" \
  "a 4096x4096 image (65536 image tokens) needs about .* GiB for the VAE.*address-space limit (ulimit -v, 2.9 GiB)" \
  bash -c 'ulimit -v 3000000 && exec "$@"' limited "${run[@]}" --height 4096 --width 4096
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$elapsed_ms" -lt 5000 ] || fail "the refusal took $elapsed_ms ms"
if bash -c 'ulimit -v 3000000 && exec "$@"' limited "${run[@]}" --height 256 --width 256 2>"$work/err" && [ -s "$out" ]; then
  echo "ok   256x256 under the same limit runs"
else
  fail "256x256 under ulimit -v 3000000: $(cat "$work/err")"
fi
finish cli_faults_memory
