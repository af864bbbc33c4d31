# Tasks that srun started without joining them into one MPI world
# (SLURM_STEP_NUM_TASKS > 1, no PMI/PMIx variables) each say so once, and
# still run; one task, or tasks under a launcher, say nothing.
. "$(dirname "$0")/common_cli.sh"

run() { # NAME ENV...: generate the demo picture with ENV; stderr in $work/NAME.err
  local name=$1
  shift
  env "$@" "$moedit" generate --model "$model" --prompt "a red circle" --height 64 --width 64 \
    --num-inference-steps 1 --output "$work/$name.png" --quiet >"$work/$name.out" 2>"$work/$name.err" ||
    fail "$name: exit status $? ($(head -c 300 "$work/$name.err"))"
}
warnings() { grep -c "^moedit: warning: srun started" "$work/$1.err"; }

run alone SLURM_STEP_NUM_TASKS=4
[ "$(warnings alone)" = 1 ] || fail "4 srun tasks without MPI: $(warnings alone) warning lines, expected 1"
grep -q "srun started 4 tasks .*srun --mpi=pmix" "$work/alone.err" || fail "the warning lacks the count or the fix: $(cat "$work/alone.err")"
[ -s "$work/alone.png" ] || fail "4 srun tasks without MPI: the task wrote no picture"
run one SLURM_STEP_NUM_TASKS=1
[ "$(warnings one)" = 0 ] || fail "one srun task: warned"
run plain
[ "$(warnings plain)" = 0 ] || fail "no srun: warned"
if command -v mpirun >/dev/null; then
  SLURM_STEP_NUM_TASKS=2 mpirun --allow-run-as-root --oversubscribe -np 2 -x SLURM_STEP_NUM_TASKS -x OMP_NUM_THREADS=1 \
    "$moedit" generate --model "$model" --prompt "a red circle" --height 64 --width 64 --num-inference-steps 1 \
    --output "$work/mpi.png" --quiet >"$work/mpi.out" 2>"$work/mpi.err" || fail "under mpirun: $(head -c 300 "$work/mpi.err")"
  [ "$(warnings mpi)" = 0 ] || fail "tasks joined by mpirun: warned"
fi
finish cli_srun_tasks
