# Sourced first by every tests/cli_*.sh script (this file is not a test):
#   moedit, fixtures, model (models/tiny-random), work (a scratch directory,
#   removed at exit), failures (a counter), fail MESSAGE, expect_error,
#   huge_config FILE, expect_ranks_error (a failed multi-rank run's verdict),
#   tagged_pids (this script's own moedit processes)
#   and finish NAME (reports and exits with the verdict).
# The scripts take MOEDIT FIXTURES as their arguments.
set -u
# The scripts check the CPU path; --device auto (the default) would take a GPU
# where one is present, so none is shown to them.
export CUDA_VISIBLE_DEVICES=
moedit=$1
fixtures=$2
model="$fixtures/../../models/tiny-random"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# expect_error NAME NEEDLE COMMAND...: fails unless COMMAND exits 1 with one
# stderr line that starts "moedit: error:" and contains NEEDLE, and leaves no
# $out (when the script sets it) and no temporary file in $work behind
# (NAME.tmp.PID of old, .moedit-PID-N now).
expect_error() {
  local name=$1 needle=$2
  shift 2
  [ -n "${out:-}" ] && rm -rf "$out"
  "$@" >"$work/stdout" 2>"$work/err"
  local status=$? lines
  lines=$(wc -l <"$work/err")
  if [ "$status" -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -q "^moedit: error: .*$needle" "$work/err" ||
     { [ -n "${out:-}" ] && [ -e "$out" ]; } || ls -A "$work" | grep -q '\.tmp\.\|^\.moedit-'; then
    fail "$name: exit $status, $lines stderr line(s), output left: $(ls "$work")"
    cat "$work/err"
  else
    echo "ok   $name: $(cat "$work/err")"
  fi
}

# huge_config FILE: the HiDream-I1-Full transformer config with 1024 routed
# experts, whose weights exceed any machine's memory (~9.5 TiB as F32).
huge_config() {
  python3 - "$(dirname "${BASH_SOURCE[0]}")/../tools/configs/hidream_i1_full_transformer.json" "$1" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["num_routed_experts"] = 1024
json.dump(cfg, open(sys.argv[2], "w"))
PY
}

# expect_ranks_error NAME PATTERN [ABORT_OK]: the verdict on a multi-rank run
# that must fail, whose exit status is in $status and stderr in $work/stderr:
# not 0 and not 124 (timeout's: it hung), exactly one line "moedit: error: "
# followed by PATTERN (grep), no MPI_ABORT banner unless ABORT_OK is yes (a
# rank that alone knows of its failure must abort the others), and no $out.
expect_ranks_error() {
  local name=$1 pattern=$2 abort_ok=${3:-no} lines
  lines=$(grep -c "^moedit: error" "$work/stderr")
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
    fail "$name: exit status $status (0: no error; 124: hung)"; cat "$work/stderr"
  elif [ "$lines" -ne 1 ] || ! grep -q "^moedit: error: $pattern" "$work/stderr"; then
    fail "$name: expected one error line matching '$pattern', got $lines:"; cat "$work/stderr"
  elif [ "$abort_ok" != yes ] && grep -q MPI_ABORT "$work/stderr"; then
    fail "$name: a rank was aborted although every rank knew of the failure:"; cat "$work/stderr"
  elif [ -e "$out" ]; then
    fail "$name: an output file was written"
  else
    echo "ok   $name: $(grep '^moedit: error' "$work/stderr")"
  fi
}

# finish NAME: reports the verdict and exits with the number of failures.
# tagged_pids [RANK]: the pids of moedit processes whose environment holds this
# script's MOEDIT_TEST_TAG (and OMPI_COMM_WORLD_RANK=RANK when given). ctest runs
# other tests beside this one, whose processes have the same name and ranks: a
# script may stop or kill only its own.
tagged_pids() {
  local pid
  for pid in $(pgrep -x "$(basename "$moedit" | cut -c1-15)"); do
    grep -qz "^MOEDIT_TEST_TAG=${MOEDIT_TEST_TAG:?}$" "/proc/$pid/environ" 2>/dev/null || continue
    [ $# -eq 0 ] || grep -qz "^OMPI_COMM_WORLD_RANK=$1$" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
  done
}

finish() {
  [ "$failures" -eq 0 ] && echo "$1: all passed"
  exit "$failures"
}
