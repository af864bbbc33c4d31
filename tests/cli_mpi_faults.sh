#!/usr/bin/env bash
# Faults of the ranks themselves (issue 31 items 9 and 11, docs/faults.md):
# 1. a failure every rank meets at the same point (non-finite latents from a
#    NaN transformer weight, in one rank's shard under tp2; under tp2, cfg2 and
#    ulysses2) is one line for the run, without "[rank N]" and without
#    MPI_ABORT: the ranks all-reduce the non-finite scan, so each knows the
#    others stop too, and agree on the outcome at the end;
# 2. a rank stopped with SIGSTOP in the middle of the denoise loop: rank 0
#    waits for it with naps (well under half a CPU) and, after
#    MOEDIT_COLLECTIVE_TIMEOUT seconds, ends the run with one line naming
#    rank 1 and the collective it did not reach, instead of spinning at full
#    CPU forever;
# 3. a malformed MOEDIT_COLLECTIVE_TIMEOUT is one line naming it.
# usage: cli_mpi_faults.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
out=$work/out.png
run=(generate --prompt x --height 64 --width 64 --num-inference-steps 2 --quiet --output "$out")
cp -r "$model" "$work/nan"
python3 - "$work/nan/transformer/diffusion_pytorch_model.safetensors" double_stream_blocks.0.block.attn1.to_q.weight <<'PY'
import json, struct, sys
path, name = sys.argv[1], sys.argv[2]
with open(path, "r+b") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    entry = json.loads(f.read(n))[name]
    nan = {"F32": struct.pack("<I", 0x7FC00000), "BF16": struct.pack("<H", 0x7FC0), "F16": struct.pack("<H", 0x7E00)}
    f.seek(8 + n + entry["data_offsets"][0])
    f.write(nan[entry["dtype"]])  # the first element: one rank's shard under tp2
PY

# once NAME NEEDLE ARGS...: moedit on 2 ranks fails with one line starting NEEDLE, no abort, no picture.
once() {
  local name=$1 needle=$2 status
  shift 2
  rm -f "$out"
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" "$@" >"$work/stdout" 2>"$work/stderr"
  status=$?
  expect_ranks_error "$name" "$needle"
}

for layout in "--tensor-parallel-size 2" "--cfg-parallel-size 2" "--ulysses-degree 2"; do
  once "NaN weight, $layout" "denoising step 1 of 2 made non-finite latents" \
    "${run[@]}" --model "$work/nan" $layout
done
MOEDIT_COLLECTIVE_TIMEOUT=soon once "malformed MOEDIT_COLLECTIVE_TIMEOUT" "MOEDIT_COLLECTIVE_TIMEOUT=soon: give the seconds" \
  "${run[@]}" --model "$model"

# 2. A stopped rank. The run is long enough (thousands of small steps) to be stopped in the middle.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
export MOEDIT_COLLECTIVE_TIMEOUT=4
# The ranks are found by a tag in their environment: ctest runs other mpirun tests beside this one,
# whose ranks carry the same OMPI_COMM_WORLD_RANK values.
export MOEDIT_TEST_TAG="cli_mpi_faults-$$"
start=$(date +%s)
timeout 60 mpirun --allow-run-as-root --oversubscribe -x MOEDIT_COLLECTIVE_TIMEOUT -x MOEDIT_TEST_TAG -np 2 "$moedit" "${run[@]}" \
  --model "$model" --num-inference-steps 10000 --tensor-parallel-size 2 >"$work/stdout" 2>"$work/stderr" &
launcher=$!
rank0="" rank1=""
for _ in $(seq 100); do
  rank0=$(tagged_pids 0 | head -1) rank1=$(tagged_pids 1 | head -1)
  [ -n "$rank0" ] && [ -n "$rank1" ] && break
  sleep 0.1
done
# Into the denoise loop: rank 1 has run for 2.5 CPU seconds (start-up and loading take a fifth of
# a second, a few under ASan). Stopped earlier, inside MPI_Init or while the communicators are made,
# rank 0 would wait in Open MPI's own blocking calls, which no timeout covers.
hz=$(getconf CLK_TCK)
for _ in $(seq 300); do
  [ -n "$rank1" ] && [ "$(cpu_ticks "$rank1")" -ge $((hz * 5 / 2)) ] && break
  sleep 0.1
done
kill -STOP "$rank1"
stopped=$(date +%s)
sleep 1.5 # past the full-speed polling of a collective whose members had arrived
before=$(cpu_ticks "$rank0")
sleep 2
after=$(cpu_ticks "$rank0")
wait "$launcher"
status=$?
ended=$(date +%s)
kill -KILL "$rank1" 2>/dev/null
ticks=$((after - before))
if [ -z "$rank1" ]; then
  fail "stopped rank: the ranks were not found"
elif [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
  fail "stopped rank: exit status $status (124: the others waited forever)"; cat "$work/stderr"
elif [ "$(grep -c '^moedit: error' "$work/stderr")" -ne 1 ] ||
     ! grep -q "^moedit: error: .*rank 1 did not reach the .* of process group tp within 4 s" "$work/stderr"; then
  fail "stopped rank: expected one line naming rank 1 and the collective:"; cat "$work/stderr"
elif [ $((ticks * 4)) -gt $((hz * 2)) ]; then
  fail "stopped rank: rank 0 used $ticks CPU ticks (of $hz a second) in 2 s of waiting"
elif [ -e "$out" ]; then
  fail "stopped rank: a picture was written"
else
  echo "ok   stopped rank: ended $((ended - stopped)) s after the stop, rank 0 used $ticks/$hz s of CPU in 2 s of waiting: $(grep '^moedit: error' "$work/stderr")"
fi
finish cli_mpi_faults
