#!/usr/bin/env bash
# The README works as written, top to bottom: its shell commands (the fenced
# ```sh blocks, in order, continuation lines joined) run in a scratch folder
# on the CPU, with build/moedit standing for the binary under test. Skipped:
# the setup line (tools/setup.sh: the binary is built already) and blocks
# under a "<!-- readme-test: skip ... -->" marker (the test suite itself,
# HiDream-I1 checkpoints). Each command must succeed without a warning, and
# each example must write its own file (no name taken twice: no "-1" copy).
# usage: cli_readme.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
repo=$(cd "$(dirname "$0")/.." && pwd)
moedit=$(readlink -f "$moedit")
ln -s "$repo/models" "$work/models"

python3 - "$repo/README.md" >"$work/commands" <<'PY'
import sys
lines, commands, in_block, skip, pending = open(sys.argv[1]).read().splitlines(), [], False, False, ""
for line in lines:
    if not in_block:
        if line.startswith("<!-- readme-test: skip"): skip = True
        elif line.strip() == "```sh": in_block = True
        elif line.strip(): skip = False if not line.startswith("<!--") else skip
        continue
    if line.strip() == "```":
        in_block, skip = False, False
        continue
    if skip: continue
    pending += line[:-1] + " " if line.endswith("\\") else line
    if line.endswith("\\"): continue
    # Setup is the test's own business: "tools/setup.sh && X" runs X.
    if pending.startswith("tools/setup.sh && "): pending = pending[len("tools/setup.sh && "):]
    if pending.strip() and not pending.startswith("tools/setup.sh"): commands.append(pending)
    pending = ""
print("\n".join(commands))
PY
count=$(wc -l <"$work/commands")
[ "$count" -ge 6 ] || fail "only $count commands found in the README"
cd "$work"
# A README example may leave a server running in the background (moedit serve ... &).
# Only this script's: ctest may run cli_serve's server beside it.
export MOEDIT_TEST_TAG="cli_readme-$$"
trap 'kill $(tagged_pids) 2>/dev/null; rm -rf "$work"' EXIT
while IFS= read -r command; do
  start=$(date +%s.%N)
  if ! bash -c "${command//build\/moedit/\"\$0\"}" "$moedit" </dev/null >"$work/stdout" 2>"$work/err"; then
    fail "README command failed: $command"; cat "$work/err"; continue
  fi
  if grep -q "warning" "$work/err"; then fail "README command warned: $command"; cat "$work/err"; continue; fi
  echo "ok   $(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)") s: $command"
done <"$work/commands"
# Every example wrote its own file: the names it gave, and no next-free copy of one.
for output in $(grep -o -- '--output [^ ]*' "$work/commands" | cut -d' ' -f2); do
  [ -e "$output" ] || fail "no $output"
done
copies=$(ls "$work" | grep -- '-1\.png$')
[ -z "$copies" ] && echo "ok   each example wrote its own file: $(ls "$work" | grep -v 'commands\|stdout\|err\|models' | tr '\n' ' ')" ||
  fail "an example wrote over another's name: $copies"
finish cli_readme
