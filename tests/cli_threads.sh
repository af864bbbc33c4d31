# The CPU path writes the same picture whatever the number of OpenMP threads:
# the products are cut into the same chunks for any number of threads, and
# threads take whole chunks (backend/cpu/cpu_gemm.c). The demo at 256x256, 1, 2
# and 3 threads (the thread count, not the cores, is what once changed the bits).
source "$(dirname "$0")/common_cli.sh"
demo="$fixtures/../../models/demo"
run=(generate --model "$demo" --prompt "a red circle on a blue background" --height 256 --width 256
     --num-inference-steps 4 --seed 0 --device cpu --quiet)
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
