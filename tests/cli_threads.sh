# The CPU path writes the same picture whatever the number of OpenMP threads:
# the products split over threads only where a BLAS computes every element as
# in one whole product (backend/cpu/backend_cpu.c, gemm). The demo at 256x256, 1, 2
# and 3 threads (the thread count, not the cores, decides the splits).
source "$(dirname "$0")/common_cli.sh"
demo="$fixtures/../../models/demo"
run=(generate --model "$demo" --prompt "a red circle on a blue background" --height 256 --width 256
     --num-inference-steps 4 --device cpu --quiet)
for threads in 1 2 3; do
  OMP_NUM_THREADS=$threads "$moedit" "${run[@]}" --output "$work/threads$threads.png" 2>"$work/err" ||
    fail "$threads threads: $(cat "$work/err")"
done
for threads in 2 3; do
  if cmp -s "$work/threads1.png" "$work/threads$threads.png"; then
    echo "ok   $threads threads: the same picture as 1 thread"
  else
    fail "$threads threads: the picture differs from 1 thread's"
  fi
done
finish cli_threads
