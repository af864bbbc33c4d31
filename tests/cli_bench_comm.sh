#!/usr/bin/env bash
# moedit bench-comm: on 2 MPI ranks, one JSON line per collective and size
# from rank 0, with positive times and bandwidths; the table's header names
# the ranks and transport; bad sizes and counts give one error line.
# usage: cli_bench_comm.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1

mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" bench-comm --sizes 4K,256K --warmup 1 --iterations 3 --json \
  >"$work/json" 2>"$work/err" || fail "bench-comm on 2 ranks: $(cat "$work/err")"
[ "$(wc -l <"$work/json")" = 8 ] || fail "expected 8 JSON lines (4 collectives x 2 sizes), got $(wc -l <"$work/json")"
for op in all_to_all all_gather all_reduce send_recv; do
  for bytes in 4096 262144; do
    grep -Eq "^\{\"op\":\"$op\",\"ranks\":2,\"transport\":\"mpi\",\"device\":\"cpu\",\"bytes\":$bytes,\"ms_median\":[0-9.]+,.*\"busbw_gbs\":[0-9.]+\}$" \
      "$work/json" || fail "no $op row of $bytes bytes"
  done
done
awk -F'[:,}]' '{ for (i = 1; i < NF; i++) if ($i ~ /ms_median|busbw_gbs/ && !($(i + 1) > 0)) bad++ } END { exit bad > 0 }' \
  "$work/json" || fail "a time or bandwidth is not positive"
# A size that does not divide into whole elements (and, for the all-to-all,
# whole blocks per peer) is rounded down, and the rows say what ran: 1030
# bytes are 257 F32 values, 256 of them in the all-to-all's two blocks.
mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" bench-comm --sizes 1030 --warmup 0 --iterations 1 --json \
  >"$work/odd" 2>"$work/err" || fail "bench-comm --sizes 1030: $(cat "$work/err")"
grep -q '"op":"all_to_all".*"bytes":1024,' "$work/odd" && grep -q '"op":"all_reduce".*"bytes":1028,' "$work/odd" ||
  fail "odd size rows do not report the bytes exchanged: $(cat "$work/odd")"
mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" bench-comm --sizes 4K --iterations 2 >"$work/table" 2>"$work/err" ||
  fail "table: $(cat "$work/err")"
grep -q "^collectives over 2 rank(s) (mpi)" "$work/table" || fail "the table does not name 2 ranks over mpi"
echo "ok   bench-comm: $(head -1 "$work/table")"
# One rank exchanges nothing: every bandwidth is 0, not bytes over a near-zero time.
"$moedit" bench-comm --sizes 64K --iterations 2 --json >"$work/one" 2>"$work/err" || fail "one rank: $(cat "$work/err")"
[ "$(grep -c '"algbw_gbs":0.000,"busbw_gbs":0.000}' "$work/one")" = 4 ] || fail "one rank reports bandwidths: $(cat "$work/one")"

expect_error "not a size" "expected sizes like 1M,64M" "$moedit" bench-comm --sizes abc
expect_error "trailing comma" "ends with a comma" "$moedit" bench-comm --sizes 1M,
expect_error "zero size" "expected sizes like" "$moedit" bench-comm --sizes 0
expect_error "too small" "outside 4 bytes" "$moedit" bench-comm --sizes 2
expect_error "too many" "at most 16 sizes" "$moedit" bench-comm --sizes 1K,2K,3K,4K,5K,6K,7K,8K,9K,10K,11K,12K,13K,14K,15K,16K,17K
expect_error "no iterations" "--iterations must be >= 1" "$moedit" bench-comm --iterations 0

finish cli_bench_comm
