#!/usr/bin/env bash
# --max-gpu-memory (docs/memory-budget.md) on the CPU backend, whose device
# memory is counted at the backend seam like a GPU's: a budget that makes the
# transformer's blocks stream from host memory gives the unbudgeted run's
# image bit for bit and a peak (--json's peak_device_bytes) within the
# budget; on models/tiny-random (2 blocks, every one streamed by the test
# switch), on a 7-block copy of it (most blocks streamed by the plan itself,
# with a step cache skipping middle blocks too, in FP8), one timed forward of
# moedit bench --forward-only, and on 2 ranks with tp 2
# (and EP), where each rank streams its own shard (rank 0's peak is checked).
# A budget below the all-streamed minimum, and sizes that are not sizes,
# are one error line each.
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

# The 7-block model: tiny-random's components, a deeper transformer, random weights.
deep="$work/deep"
cp -r "$model" "$deep"
python3 - "$deep/transformer/config.json" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg.update(num_layers=3, num_single_layers=4, llama_layers=[0, 1, 0, 1, 0, 1, 1])
json.dump(cfg, open(sys.argv[1], "w"))
PY

# field JSON_FILE NAME: an integer field of a --json line.
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])[sys.argv[2]])' "$1" "$2"; }

# bytes SIZE: 12M -> 12582912 (the units moedit reads, for the checks here).
bytes() { python3 -c 'import sys; s=sys.argv[1]; u={"K":1<<10,"M":1<<20,"G":1<<30}; print(int(float(s[:-1])*u[s[-1]]) if s[-1] in u else int(s))' "$1"; }

# same NAME BUDGET MIN_STREAMED MAX_STREAMED ARGS...: one run without a
# budget and one with BUDGET; the images identical, MIN_STREAMED to
# MAX_STREAMED blocks streamed, the budgeted run's peak within the budget.
same() {
  local name=$1 budget=$2 min_streamed=$3 max_streamed=$4
  shift 4
  "$@" --output "$work/$name-a.png" --json --quiet >"$work/$name-a.json" 2>"$work/err" || { fail "$name: unbudgeted run failed"; cat "$work/err"; return; }
  "$@" --output "$work/$name-b.png" --json --quiet --max-gpu-memory "$budget" >"$work/$name-b.json" 2>"$work/err" ||
    { fail "$name: budgeted run failed"; cat "$work/err"; return; }
  local streamed peak limit plain
  streamed=$(field "$work/$name-b.json" streamed_blocks)
  peak=$(field "$work/$name-b.json" peak_device_bytes)
  plain=$(field "$work/$name-a.json" peak_device_bytes)
  limit=$(bytes "$budget")
  if ! cmp -s "$work/$name-a.png" "$work/$name-b.png"; then fail "$name: the budgeted image differs"
  elif [ "$streamed" -lt "$min_streamed" ] || [ "$streamed" -gt "$max_streamed" ]; then
    fail "$name: $streamed blocks streamed, expected $min_streamed to $max_streamed"
  elif [ "$peak" -gt "$limit" ]; then fail "$name: device peak $peak bytes over the budget $limit"
  else echo "ok   $name: identical image, $streamed blocks streamed, device peak $peak bytes (budget $limit, unbudgeted $plain)"
  fi
}

gen=("$moedit" generate --prompt "a red cube" --num-inference-steps 3 --seed 1)
MOEDIT_STREAM_ALL_BLOCKS_FOR_TESTS=1 same tiny_random_all_streamed 12M 2 2 "${gen[@]}" --model "$model"

# above KIB ARGS...: a budget KIB KiB above the least the run ARGS (a
# command without --max-gpu-memory) accepts, read from its refusal of 1K;
# at the least every block streams. Empty when the refusal names none.
above() {
  local kib=$1 least
  shift
  "$@" --max-gpu-memory 1K >/dev/null 2>"$work/err"
  least=$(sed -n 's/.*needs at least \([0-9.]*\) MiB.*/\1/p' "$work/err")
  [ -n "$least" ] || { fail "no minimum in the refusal of $*: $(cat "$work/err")"; return; }
  python3 -c "print('%dK' % (float('$least') * 1024 + $kib))"
}

# The 7-block model at its least budget (+8 KiB: the refusal rounds to 0.01
# MiB): all 7 blocks streamed; a double block's worth (~650 KiB) above it:
# one stays; the same with a step cache caching steps, and in FP8 (codes and
# scales streamed).
deep_gen=("${gen[@]}" --model "$deep" --random-weights)
least=$(above 8 "${deep_gen[@]}" --output "$work/x.png")
most=$(above 700 "${deep_gen[@]}" --output "$work/x.png")
if [ -n "$least" ] && [ -n "$most" ]; then
  same deep_all_streamed "$least" 7 7 "${deep_gen[@]}"
  same deep_most_streamed "$most" 5 6 "${deep_gen[@]}"
  same deep_step_cache "$most" 5 6 "${deep_gen[@]}" --num-inference-steps 6 --cache block --cache-threshold 10 \
    --cache-warmup 1
  grep -q '"cached":[1-9]' "$work/deep_step_cache-b.json" || fail "deep_step_cache: no step was cached"
fi
fp8=$(above 8 "${deep_gen[@]}" --precision fp8 --output "$work/x.png")
[ -n "$fp8" ] && same deep_fp8_all_streamed "$fp8" 7 7 "${deep_gen[@]}" --precision fp8

# Two ranks, tensor parallel: each rank streams its own shard.
mpi=(timeout 120 mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1)
same deep_tp2 12M 4 7 "${mpi[@]}" "${gen[@]}" --model "$deep" --random-weights --tensor-parallel-size 2
same deep_tp2_ep 12M 4 7 "${mpi[@]}" "${gen[@]}" --model "$deep" --random-weights --tensor-parallel-size 2 \
  --enable-expert-parallel

out="$work/refused.png"
expect_error too_small "--max-gpu-memory 1M: too small for this run, which needs at least [0-9.]* MiB" \
  "${gen[@]}" --model "$model" --output "$out" --max-gpu-memory 1M
for size in abc 0 -1G 0.5 12X 0x10 1e3G 1.5.3G 99999999999999999999G; do
  expect_error "size_$size" "--max-gpu-memory $size: \(expected a positive size\|too large\)" \
    "${gen[@]}" --model "$model" --output "$out" --max-gpu-memory "$size"
done
expect_error bench_config_layouts "--max-gpu-memory budgets the runs of a model folder" \
  "$moedit" bench --config "$deep/transformer/config.json" --random-weights --max-gpu-memory 1G
expect_error bench_forward_bad_size "--max-gpu-memory 0: expected a positive size" \
  "$moedit" bench --forward-only --model "$model" --max-gpu-memory 0

# One timed forward (bench --forward-only) under a budget: the weights stream, the peak stays inside.
bench=("$moedit" bench --forward-only --config "$deep/transformer/config.json" --random-weights --height 64 --width 64
  --iterations 2 --json)
budget=$(above 8 "${bench[@]}")
if [ -n "$budget" ]; then
  "${bench[@]}" --max-gpu-memory "$budget" >"$work/bench.json" 2>"$work/err" || { fail "bench_forward failed"; cat "$work/err"; }
  python3 - "$work/bench.json" "$(bytes "$budget")" <<'PY' && echo "ok   bench_forward: $(cat "$work/bench.json")" || fail "bench_forward: $(cat "$work/bench.json")"
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["streamed_blocks"] == 7 and r["device_peak_mib"] * 1048576 <= int(sys.argv[2]) else 1)
PY
fi

finish cli_memory_budget
