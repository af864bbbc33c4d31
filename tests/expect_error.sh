# Sourced by the tests/cli_*.sh scripts (this file is not a test itself).
# Needs: work (a scratch directory), failures (a counter); optional: out (the
# output file the command would write).
#
# expect_error NAME NEEDLE COMMAND...: fails unless COMMAND exits 1 with one
# stderr line that starts "moedit: error:" and contains NEEDLE, and leaves no
# $out and no temporary file in $work behind.
expect_error() {
  local name=$1 needle=$2
  shift 2
  [ -n "${out:-}" ] && rm -rf "$out"
  "$@" >"$work/stdout" 2>"$work/err"
  local status=$? lines
  lines=$(wc -l <"$work/err")
  if [ "$status" -ne 1 ] || [ "$lines" -ne 1 ] || ! grep -q "^moedit: error: .*$needle" "$work/err" ||
     { [ -n "${out:-}" ] && [ -e "$out" ]; } || ls "$work" | grep -q '\.tmp\.'; then
    echo "FAIL $name: exit $status, $lines stderr line(s), output left: $(ls "$work")"
    cat "$work/err"
    failures=$((failures + 1))
  else
    echo "ok   $name: $(cat "$work/err")"
  fi
}
