#!/usr/bin/env bash
# Runs a command while nvidia-smi samples every GPU's SM clock, power and
# clock-event reasons every 100 ms, then prints per GPU the median clock and
# power over the samples where it worked (over 300 W) and how often the
# power cap held the clock down. On a Hopper GPU at its power limit a
# program's kernels run at the clock the cap leaves (docs/benchmarks.md,
# Thirteenth run), so two programs' kernel times compare only with this.
#   tools/gpu_clocks.sh OUT.csv COMMAND [ARGS...]
# Exits with the command's status; the summary goes to stderr.
set -u
[ $# -ge 2 ] || { echo "usage: $0 OUT.csv COMMAND [ARGS...]" >&2; exit 2; }
log=$1; shift
command -v nvidia-smi >/dev/null || { echo "gpu_clocks.sh: nvidia-smi not found" >&2; exit 2; }
: 2>/dev/null >"$log" || { echo "gpu_clocks.sh: cannot write $log" >&2; exit 2; }
nvidia-smi --query-gpu=index,clocks.sm,power.draw,clocks_event_reasons.active --format=csv,noheader,nounits \
  -lms 100 >"$log" 2>&1 &
sampler=$!
"$@"
status=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
python3 - "$log" >&2 <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    fields = [f.strip() for f in line.split(",")]
    try:
        gpu, clock, power, reasons = fields[0], int(fields[1]), float(fields[2]), int(fields[3], 16)
    except (ValueError, IndexError):
        continue  # a header, a warning, or a cut last line
    rows.setdefault(gpu, []).append((clock, power, reasons))
for gpu, samples in sorted(rows.items()):
    busy = [s for s in samples if s[1] > 300]
    if not busy:
        print(f"GPU {gpu}: {len(samples)} samples, none over 300 W")
        continue
    clocks, powers = sorted(s[0] for s in busy), sorted(s[1] for s in busy)
    capped = sum(1 for s in busy if s[2] & 0x4)  # SW power cap
    print(f"GPU {gpu}: {len(busy)} samples over 300 W: SM clock median {clocks[len(clocks) // 2]} MHz "
          f"(p10 {clocks[len(clocks) // 10]}, p90 {clocks[9 * len(clocks) // 10]}), power median "
          f"{powers[len(powers) // 2]:.0f} W, power cap in {capped} of them")
PY
exit $status
