#!/usr/bin/env bash
# Bad command lines and damaged models: each gives exactly one line
# "moedit: error: ..." on stderr, a non-zero exit, and no crash.
# usage: cli_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"

expect_error "no command" "no command" "$moedit"
expect_error "unknown command" "unknown command 'paint'" "$moedit" paint
expect_error "unknown option" "unknown option '--colour'" "$moedit" inspect --model "$fixtures/dit_moe" --colour red
expect_error "option without value" "needs a value" "$moedit" inspect --model
expect_error "missing model dir" "does not exist" "$moedit" inspect --model "$work/nothing"
expect_error "model is a file" "is not a directory" "$moedit" inspect --model "$model/model_index.json"
expect_error "not a model dir" "no transformer/" "$moedit" inspect --model "$work"

# A model whose weights are cut off in the middle of the data.
mkdir -p "$work/truncated/transformer"
cp "$fixtures/dit_dense/transformer/config.json" "$work/truncated/transformer/"
head -c 100000 "$fixtures/dit_dense/transformer/diffusion_pytorch_model.safetensors" \
  >"$work/truncated/transformer/diffusion_pytorch_model.safetensors"
expect_error "truncated weights" "diffusion_pytorch_model.safetensors" "$moedit" inspect --model "$work/truncated" --check

# A header length that points past the end of the file.
mkdir -p "$work/badheader/transformer"
cp "$fixtures/dit_dense/transformer/config.json" "$work/badheader/transformer/"
printf '\xff\xff\xff\x00\x00\x00\x00\x00{}' >"$work/badheader/transformer/diffusion_pytorch_model.safetensors"
expect_error "header past end" "header" "$moedit" inspect --model "$work/badheader" --check

# Weights larger than any machine's memory on the CPU: refused before allocating (the kernel used to kill the
# process while random weights were filled, exit 137 and no message).
huge_config "$work/huge.json"
expect_error "weights beyond memory" "GiB available on this machine" "$moedit" bench --forward-only \
  --config "$work/huge.json" --random-weights --device cpu

# Underscore spellings of flags are accepted.
if ! "$moedit" inspect --model "$fixtures/dit_moe" --json >/dev/null 2>&1; then
  echo "FAIL inspect of a good model"; failures=$((failures + 1))
fi
"$moedit" inspect --help | grep -q -- "--check" || { echo "FAIL inspect --help"; failures=$((failures + 1)); }

finish cli_errors
