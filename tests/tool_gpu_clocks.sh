#!/usr/bin/env bash
# tools/gpu_clocks.sh with a stand-in nvidia-smi that prints known samples:
# the summary's medians and power-cap count, the command's exit status passed
# through, an unwritable log and the usage error. Needs no GPU.
#   tests/tool_gpu_clocks.sh tools/gpu_clocks.sh
set -u
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/nvidia-smi" <<'FAKE'
#!/usr/bin/env bash
echo "0, 1500, 690.0, 0x0000000000000004"
echo "0, 1600, 695.0, 0x0000000000000004"
echo "0, 1700, 650.0, 0x0000000000000000"
echo "1, 1980, 75.0, 0x0000000000000000"
sleep 30
FAKE
chmod +x "$work/nvidia-smi"
fail() { echo "tool_gpu_clocks: $*" >&2; exit 1; }
PATH="$work:$PATH" "$tool" "$work/log.csv" sleep 0.5 2>"$work/summary" || fail "exit $? for a command that succeeded"
grep -q "GPU 0: 3 samples over 300 W: SM clock median 1600 MHz (p10 1500, p90 1700), power median 690 W, power cap in 2 of them" \
  "$work/summary" || fail "wrong GPU 0 summary: $(cat "$work/summary")"
grep -q "GPU 1: 1 samples, none over 300 W" "$work/summary" || fail "wrong GPU 1 summary: $(cat "$work/summary")"
PATH="$work:$PATH" "$tool" "$work/log.csv" sh -c 'exit 3' 2>/dev/null
[ $? = 3 ] || fail "the command's exit status 3 was not passed through"
PATH="$work:$PATH" "$tool" "$work/none/log.csv" true 2>"$work/unwritable"
[ $? = 2 ] && grep -q "cannot write" "$work/unwritable" || fail "an unwritable log was not one error line, exit 2"
"$tool" 2>"$work/usage"
[ $? = 2 ] && grep -q "^usage:" "$work/usage" || fail "no usage error without arguments"
echo "tool_gpu_clocks: all checks passed"
