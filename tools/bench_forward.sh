# Sourced by tools/bench_gpu.sh and tools/bench_ab.sh (not run on its own):
#   forward_json "MOEDIT_PREFIX" SIZE [BATCH]
# times `moedit bench` on the transformer forward of the HiDream-I1-Full
# shape (random weights, on the GPU, 128 t5 + 128 llama tokens) at SIZE x
# SIZE and prints its JSON line. The prefix is the binary with any
# environment before it ("MOEDIT_ATTENTION=moedit /tmp/b/moedit"). Forwards
# of 1024 and less get 10 timed iterations, larger ones 4.
# forward_iterations SIZE: the timed forwards at SIZE (diffusers' runs use it too).
forward_iterations() { if [ "$1" -le 1024 ]; then echo 10; else echo 4; fi; }

forward_json() {
  local prefix=$1 size=$2 batch=${3:-1} iterations
  iterations=$(forward_iterations "$size")
  # shellcheck disable=SC2086  # the prefix is words on purpose
  env $prefix bench --config tools/configs/hidream_i1_full_transformer.json --random-weights --device cuda \
    --height "$size" --width "$size" --text-tokens 128 --batch "$batch" --warmup 2 --iterations "$iterations" --json -
}
