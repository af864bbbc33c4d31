#!/usr/bin/env bash
# HiDream's own text side (tests/fixtures/hidream_text) with bad input: one
# line "moedit: error: ...", exit 1, no output file. These hold in every
# build, with or without the CLIP and T5 encoders: they fail before any
# encoder loads.
# usage: cli_hidream_text_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
out="$work/out.png"
hidream="$fixtures/hidream_text"

# The fixture without text_encoder_4/: a Llama must come from --llama.
no_llama="$work/no_llama"
mkdir "$no_llama"
for part in "$hidream"/*; do
  [ "$(basename "$part")" = text_encoder_4 ] || ln -s "$(cd "$part" 2>/dev/null && pwd || echo "$part")" "$no_llama/$(basename "$part")"
done
run=("$moedit" generate --prompt "a red circle" --height 64 --width 64 --num-inference-steps 1 --quiet --output "$out")
expect_error "no text_encoder_4, no --llama" "has no text_encoder_4/: give --llama DIR" "${run[@]}" --model "$no_llama"
expect_error "--llama wider than the transformer" "hidden_size 64 differs from the transformer's caption_channels\[1\] 32" \
  "${run[@]}" --model "$no_llama" --llama "$fixtures/llama3_tiny/text_encoder"
expect_error "--llama not a folder" "no such folder (HiDream's Llama encoder)" "${run[@]}" --model "$no_llama" --llama "$work/none"
expect_error "bad --text-device" "--text-device: 'gpu' is not cpu or cuda" "${run[@]}" --model "$hidream" --text-device gpu
expect_error "negative --max-sequence-length" "--max-sequence-length -4" "${run[@]}" --model "$hidream" --max-sequence-length -4
finish cli_hidream_text_errors
