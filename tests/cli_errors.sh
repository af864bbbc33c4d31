#!/usr/bin/env bash
# Bad command lines and damaged models: each gives exactly one line
# "moedit: error: ..." on stderr, a non-zero exit, and no crash.
# usage: cli_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"

expect_error "no command" "no command" "$moedit"
expect_error "unknown command" "unknown command 'paint'" "$moedit" paint
expect_error "unknown option" "unknown option '--colour'" "$moedit" inspect --model "$fixtures/dit_moe" --colour red
expect_error "option without value" "needs a value" "$moedit" inspect --model
expect_error "an option where a value belongs" "option --prompt needs a value, and '--seed' is an option" \
  "$moedit" generate --model "$model" --prompt --seed 3
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

# --json stays valid JSON when a path or a message holds a quote or a backslash: a model directory named so, with a
# transformer config that fails to load (its error message repeats the path), and a picture written there.
odd="$work/a \"quoted\" \\ dir"
mkdir -p "$odd" && cp -r "$model"/. "$odd"/ && echo '{' >"$odd/transformer/config.json"
if "$moedit" inspect --model "$odd" --json >"$work/inspect.json" &&
   python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["model"] == sys.argv[2]
assert sys.argv[2] in d["components"]["transformer"]["config_error"]' "$work/inspect.json" "$odd"; then
  echo "ok   inspect --json with a quote and a backslash in the path"
else
  fail "inspect --json with an odd path: $(cat "$work/inspect.json")"
fi
cp -r "$model"/. "$odd"/
if "$moedit" generate --model "$odd" --prompt x --height 32 --width 32 --num-inference-steps 1 --device cpu --quiet \
     --json --output "$odd/x.png" >"$work/generate.json" &&
   python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["files"] == [sys.argv[2]]' "$work/generate.json" \
     "$odd/x.png"; then
  echo "ok   generate --json with a quote and a backslash in the path"
else
  fail "generate --json with an odd path: $(cat "$work/generate.json")"
fi

finish cli_errors
