#!/usr/bin/env bash
# moedit bench-vae: one JSON line with the decode's timing; under mpirun the
# decode is split over the ranks (one line from rank 0, ranks = 2, a smaller
# scratch peak per rank than the serial decode); bad options give one error line.
# usage: cli_bench_vae.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1
small=(--vae "$model/vae" --height 128 --width 128 --warmup 0 --iterations 2 --json)

# field NAME FILE: a number from the JSON line
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2"; }

"$moedit" bench-vae "${small[@]}" >"$work/serial" 2>"$work/err" || fail "serial bench-vae: $(cat "$work/err")"
[ "$(field ranks "$work/serial")" = 1 ] || fail "serial run does not say ranks 1: $(cat "$work/serial")"
awk -v t="$(field decode_ms_median "$work/serial")" 'BEGIN { exit !(t > 0) }' || fail "no decode time"

mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" bench-vae "${small[@]}" >"$work/two" 2>"$work/err" ||
  fail "bench-vae on 2 ranks: $(cat "$work/err")"
[ "$(wc -l <"$work/two")" = 1 ] || fail "2 ranks printed $(wc -l <"$work/two") lines, not rank 0's one"
[ "$(field ranks "$work/two")" = 2 ] || fail "2-rank run does not say ranks 2: $(cat "$work/two")"
awk -v a="$(field scratch_peak_mib "$work/two")" -v b="$(field scratch_peak_mib "$work/serial")" \
  'BEGIN { exit !(a < b) }' || fail "a band's scratch peak is not below the whole decode's"
echo "ok   bench-vae: serial $(cat "$work/serial"); 2 ranks $(cat "$work/two")"

expect_error "no vae" "needs --model DIR" "$moedit" bench-vae
expect_error "missing vae" "config.json" "$moedit" bench-vae --vae "$work/none"
expect_error "height off the grid" "multiples of the VAE's factor" "$moedit" bench-vae --vae "$model/vae" --height 100
expect_error "no iterations" "--iterations must be >= 1" "$moedit" bench-vae --vae "$model/vae" --iterations 0

finish cli_bench_vae
