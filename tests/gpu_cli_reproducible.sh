# A seed gives the same image on every run of the GPU path, and --device auto
# (the default) takes the GPU where there is one. Run by ctest with the label
# gpu; exit 77 (skipped) without a GPU. Separate processes on purpose: each
# makes its own algorithm choices (cuDNN convolutions, attention plans,
# cuBLASLt), and a timed choice made the image differ between runs (session 11).
# Arguments: MOEDIT FIXTURES.
set -u
moedit=$1
model="$2/../../models/demo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
demo=(generate --model "$model" --prompt "a red circle on a blue background" --height 256 --width 256
      --num-inference-steps 20 --seed 7 --quiet)
if ! "$moedit" "${demo[@]}" --device cuda --output "$work/first.png" 2>"$work/err"; then
  if grep -q "no CUDA device" "$work/err"; then echo "skipped: $(cat "$work/err")"; exit 77; fi
  echo "FAIL first run: $(cat "$work/err")"; exit 1
fi
failures=0
for run in second default; do
  device=(--device cuda); [ $run = default ] && device=()
  if ! "$moedit" "${demo[@]}" "${device[@]}" --output "$work/$run.png" 2>"$work/err"; then
    echo "FAIL $run run: $(cat "$work/err")"; failures=$((failures + 1))
  elif ! cmp -s "$work/first.png" "$work/$run.png"; then
    echo "FAIL $run run: the image differs from the first run's"; failures=$((failures + 1))
  else
    echo "ok   $run run: same image"
  fi
done
[ $failures -eq 0 ] && echo "gpu_cli_reproducible: all passed"
exit $failures
