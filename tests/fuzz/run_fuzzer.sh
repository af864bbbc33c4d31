#!/usr/bin/env bash
# Runs one libFuzzer target for a short time budget from its committed corpus:
#   run_fuzzer.sh FUZZER CORPUS_DIR ARTIFACT_DIR SECONDS [libFuzzer flags...]
# New inputs go to a temporary folder (the committed corpus is only read); a
# crash, leak, sanitizer report or slow input (over 25 s) fails the test, and
# the input is kept as ARTIFACT_DIR/<fuzzer>-crash-... (libFuzzer prints it in
# base64 too). Rerun one: FUZZER ARTIFACT_DIR/<file>.
#
# LeakSanitizer stops the world through ptrace, which some CI sandboxes
# forbid; there the run goes on without leak detection and says so.
set -euo pipefail
fuzzer=$1 corpus=$2 artifacts=$3 seconds=$4
shift 4
name=$(basename "$fuzzer")
[ -x "$fuzzer" ] || { echo "$name: $fuzzer is not built (cmake --build builds it)" >&2; exit 1; }
[ -d "$corpus" ] || { echo "$name: no corpus folder $corpus" >&2; exit 1; }
mkdir -p "$artifacts"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

leaks=1
if "$fuzzer" -runs=0 "$work" 2>&1 | grep -q "LeakSanitizer has encountered a fatal error"; then
  echo "$name: LeakSanitizer cannot run here (ptrace forbidden?): fuzzing without leak detection"
  leaks=0
fi
export ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# A finding exits 1 (libFuzzer's default is 77, which ctest could take for "skipped").
exec "$fuzzer" -max_total_time="$seconds" -runs=50000000 -timeout=25 -rss_limit_mb=2048 -detect_leaks=$leaks \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$artifacts/$name-" "$@" "$work" "$corpus"
