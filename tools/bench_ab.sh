#!/usr/bin/env bash
# A/B of two moedit binaries (or one binary under two environments) on the
# transformer forward of the HiDream-I1-Full shape, random weights, on one
# GPU: the runs alternate A, B, A, B so that drift of the machine (clocks,
# heat, a neighbour) lands on both. For deciding whether a change is faster
# before it lands; the figures are JSON lines with a "variant" field.
#   tools/bench_ab.sh OUT_DIR "A command prefix" "B command prefix" [SIZES] [ROUNDS]
# A prefix is the binary with any environment before it, e.g.
#   tools/bench_ab.sh out "/tmp/main/moedit" "MOEDIT_ATTENTION=cudnn /tmp/branch/moedit" "1024 2048" 2
# SIZES defaults to "1024 2048", ROUNDS to 2 (each round runs A then B).
set -u
out=$1
a=$2
b=$3
sizes=${4:-1024 2048}
rounds=${5:-2}
mkdir -p "$out"
. "$(dirname "$0")/bench_forward.sh"
for size in $sizes; do
  for round in $(seq "$rounds"); do
    for variant in A B; do
      prefix=$([ $variant = A ] && echo "$a" || echo "$b")
      forward_json "$prefix" "$size" 2>>"$out/ab.err" |
        sed "s/^{/{\"variant\":\"$variant\",\"round\":$round,/" >>"$out/ab.jsonl"
    done
  done
done
# Median of each variant's per-run medians, per size.
python3 - "$out/ab.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
for size in sorted({r["height"] for r in runs}):
    row = {v: statistics.median(r["forward_ms_median"] for r in runs if r["height"] == size and r["variant"] == v)
           for v in ("A", "B") if any(r["height"] == size and r["variant"] == v for r in runs)}
    if len(row) == 2:
        print(f"{size}x{size}: A {row['A']:.1f} ms, B {row['B']:.1f} ms, B/A {row['B'] / row['A']:.3f}")
PY
