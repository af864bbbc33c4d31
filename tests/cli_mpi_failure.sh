#!/usr/bin/env bash
# Failures under mpirun end every rank promptly (within 60 s: a rank left
# waiting on a failed peer would hang) with one moedit error line:
# 1. every rank rejects the same bad option: the line has no rank, and no
#    rank is aborted (no MPI_ABORT banner);
# 2. rank 1 alone gets a model whose transformer weights are damaged: its
#    error is the line, with "[rank 1]", and rank 0 (which reached its first
#    group) is not aborted either;
# 3. rank 1 alone fails after the groups exist (its --routing-replay file is
#    missing): rank 1 aborts the run, its error is reported;
# 4. different mistakes on the two ranks: one line, the lower rank's.
# The ranks are given the same request (cli_mpi_requests.sh refuses any
# other): in cases 2-4 they run in working directories of their own, where
# the same relative names (m/, r.routing) are different files of the same
# sizes.
# 5. bench-vae with a VAE folder that has no config on every rank (checked
#    before its group is made): one line, no abort;
# 6. bench's serial reference (rank 0 alone, after the groups exist) cannot
#    load its weights (more than the machine's memory): the ranks agree on
#    it, one line, no abort.
# No output file in any case. And help, version and a missing command print once under mpirun.
# usage: cli_mpi_failure.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
# damage_header FOLDER COMPONENT: its weights' header length made absurd, the file's size kept.
damage_header() {
  printf '\377\377\377\377\377\377\377\177' |
    dd of="$1/$2/diffusion_pytorch_model.safetensors" bs=1 conv=notrunc status=none
}
mkdir -p "$work/rank0" "$work/rank1"
cp -r "$model" "$work/rank0/m"
cp -r "$model" "$work/rank1/m"

out=$work/out.png
args=(generate --prompt "a red circle" --height 64 --width 64 --num-inference-steps 2 --quiet
      --tensor-parallel-size 2 --output "$out")

# run_case NAME NEEDLE ABORTED RANK0_ARGS -- RANK1_ARGS: each rank runs moedit with its arguments.
run_case() {
  local name=$1 needle=$2 aborted=$3
  shift 3
  local rank0=() rank1=()
  while [ "$1" != "--" ]; do rank0+=("$1"); shift; done
  shift
  rank1=("$@")
  local start=$(date +%s)
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 1 -wdir "${wdir0:-$PWD}" "$moedit" "${rank0[@]}" : \
    -np 1 -wdir "${wdir1:-$PWD}" "$moedit" "${rank1[@]}" >"$work/stdout" 2>"$work/stderr"
  local status=$?
  expect_ranks_error "$name (exit $status after $(( $(date +%s) - start )) s)" "$needle" "$aborted"
}

run_case "same bad option on every rank" "--height 72 --width 64: both must be multiples of 16" no \
  "${args[@]}" --model "$model" --height 72 -- "${args[@]}" --model "$model" --height 72
wdir0=$work/rank0 wdir1=$work/rank1
damage_header "$work/rank1/m" transformer
run_case "rank 1's transformer weights are damaged" "\[rank 1\] .*diffusion_pytorch_model.safetensors" no \
  "${args[@]}" --model m -- "${args[@]}" --model m
cp "$model/transformer/diffusion_pytorch_model.safetensors" "$work/rank1/m/transformer/"
"$moedit" generate --model "$model" --prompt x --height 64 --width 64 --num-inference-steps 1 --quiet \
  --routing-capture "$work/rank0/r.routing" --output "$work/tiny.png" || fail "capturing a routing file"
rm -f "$work/tiny.png"
run_case "rank 1's routing file is missing after the groups exist" "\[rank 1\] .*r.routing" yes \
  "${args[@]}" --model m --routing-replay r.routing -- "${args[@]}" --model m --routing-replay r.routing
damage_header "$work/rank0/m" vae
damage_header "$work/rank1/m" transformer
run_case "different mistakes on the two ranks: the lower rank's" "\[rank 0\] .*vae" no \
  "${args[@]}" --model m -- "${args[@]}" --model m
unset wdir0 wdir1
huge_config "$work/huge.json"
bench=(bench --config "$work/huge.json" --random-weights --layouts tp2 --height 64 --width 64 --num-inference-steps 1)
# The need counts both ranks: they share this machine's memory and load side by side.
run_case "bench's serial reference fails on rank 0 after the groups exist" \
  "\[rank 0\] .*for each of the 2 ranks on this machine), .* GiB available" no \
  "${bench[@]}" -- "${bench[@]}"
vae=(bench-vae --vae "$work" --height 64 --width 64)
run_case "bench-vae without a VAE config on every rank" "$work/config.json" no "${vae[@]}" -- "${vae[@]}"
# exit_as_wanted WANT STATUS: 0 wants success; "fails" a failure that is not a timeout (124).
exit_as_wanted() {
  if [ "$1" = 0 ]; then [ "$2" -eq 0 ]; else [ "$2" -ne 0 ] && [ "$2" -ne 124 ]; fi
}
# once_on_two_ranks NAME STATUS NEEDLE ARGS...: 2 ranks exit with STATUS (0 or non-zero: "fails") and the line
# NEEDLE starts appears once in their output.
once_on_two_ranks() {
  local name=$1 want=$2 needle=$3 count status
  shift 3
  timeout 60 mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" "$@" >"$work/out" 2>&1
  status=$?
  count=$(grep -c "^$needle" "$work/out")
  if [ "$count" -ne 1 ]; then
    fail "$name on 2 ranks: '$needle' $count times"; cat "$work/out"
  elif ! exit_as_wanted "$want" "$status"; then
    fail "$name on 2 ranks: exit $status"; cat "$work/out"
  else
    echo "ok: $name once"
  fi
}
once_on_two_ranks "generate --help" 0 "usage: moedit generate" generate --help
once_on_two_ranks "moedit --help" 0 "usage: moedit <command>" --help
once_on_two_ranks "moedit --version" 0 "moedit [0-9]" --version
once_on_two_ranks "no command" fails "moedit: error: no command given"
once_on_two_ranks "inspect" 0 "model " inspect --model "$model"
once_on_two_ranks "bench --forward-only refused" fails "moedit: error: --forward-only times one forward on one rank" \
  bench --forward-only --model "$model" --height 64 --width 64 --iterations 1
# An expert placement captured with another model (tiny-random: 2 MoE layers; the demo has 8).
"$moedit" generate --model "$model" --prompt x --height 64 --width 64 --num-inference-steps 1 --quiet \
  --routing-capture "$work/tiny.routing" --output "$work/tiny.png" || fail "capturing tiny-random's routing"
once_on_two_ranks "placement of another model" fails \
  "moedit: error: expert placement: .* has no routing for layer 2 of the model's 8 MoE layers" \
  generate --model "$fixtures/../../models/demo" --prompt x --height 64 --width 64 --num-inference-steps 1 --quiet \
  --tensor-parallel-size 2 --enable-expert-parallel --expert-placement "$work/tiny.routing" --output "$work/p.png"
[ -e "$work/p.png" ] && fail "placement of another model: an image was written"
# Degrees that do not divide the heads (tiny-random has 2; the issue's own example): every rank
# refuses before any group exists, so it is one line without [rank N] and no MPI_ABORT (issue 30:
# it was a line per rank and an abort).
timeout 60 mpirun --allow-run-as-root --oversubscribe -np 4 "$moedit" generate --model "$fixtures/../../models/tiny-random" \
  --prompt x --height 64 --width 64 --num-inference-steps 1 --quiet --ulysses-degree 4 --output "$work/u.png" \
  >"$work/out" 2>&1
count=$(grep -c "^moedit: error: tensor parallel 1 x ulysses 4 = 4 does not divide the transformer's 2 attention heads" "$work/out")
if [ "$count" -ne 1 ] || grep -q "MPI_ABORT\|\[rank" "$work/out"; then
  fail "heads refusal on 4 ranks: $count lines, or a rank-tagged line or MPI_ABORT"; cat "$work/out"
else
  echo "ok: heads refusal once on 4 ranks"
fi
[ -e "$work/u.png" ] && fail "heads refusal: an image was written"
finish cli_mpi_failure
