#!/usr/bin/env bash
# MOEDIT_PROFILE_OPS=1: the run makes the same picture, and stderr ends with
# the table of op times, each op of the DiT and the VAE keyed by its shape,
# its first call apart.
# usage: cli_profile_ops.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"

run=("$moedit" generate --model "$model" --prompt "a red circle" --height 64 --width 64 --num-inference-steps 2 --seed 0 --quiet)
export OMP_NUM_THREADS=1

"${run[@]}" --output "$work/plain.png" 2>"$work/plain.err" || fail "plain run: $(cat "$work/plain.err")"
[ -s "$work/plain.err" ] && fail "a plain run printed a profile: $(cat "$work/plain.err")"
MOEDIT_PROFILE_OPS=1 "${run[@]}" --output "$work/profiled.png" 2>"$work/err" || fail "profiled run: $(cat "$work/err")"
cmp -s "$work/plain.png" "$work/profiled.png" || fail "the profiled run made another picture"
grep -Eq '^op profile \(cpu\): [0-9.]+ s in ops of [0-9.]+ s since the backend was made$' "$work/err" ||
  fail "no profile header: $(head -3 "$work/err")"
for op in 'linear M[0-9]+ N[0-9]+ K[0-9]+' 'attention Sq[0-9]+ Sk[0-9]+ H[0-9]+ D[0-9]+' 'conv2d k3 [0-9]+->[0-9]+ 8x8' \
  group_norm_apply layer_norm_modulate moe_route moe_dispatch; do
  grep -Eq "^ +[0-9.]+ +[0-9.]+% +[0-9]+ +[0-9.]+ +[0-9.]+  $op\$" "$work/err" || fail "no '$op' row in the profile"
done
# ms/call leaves out the first call: (total - first) / (calls - 1), to the
# table's rounding (totals to 0.01 ms, the rest to 0.001), on every row of
# more than one call.
awk '/%/ && $3 > 1 { want = ($1 - $5) / ($3 - 1); tol = 0.006 / ($3 - 1) + 0.001 + 1e-3 * want
                     if (want - $4 > tol || $4 - want > tol) bad++ }
     END { exit bad > 0 }' "$work/err" || fail "ms/call is not the calls after the first"
# Shares add up to the whole (rounding aside).
awk '/%/ { sub("%", "", $2); total += $2 } END { exit !(total > 99 && total < 101) }' "$work/err" ||
  fail "shares do not add up to 100%"
MOEDIT_PROFILE_OPS=0 "${run[@]}" --output "$work/off.png" 2>"$work/off.err"
[ -s "$work/off.err" ] && fail "MOEDIT_PROFILE_OPS=0 still profiled"

finish cli_profile_ops
