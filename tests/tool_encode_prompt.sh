#!/usr/bin/env bash
# tools/encode_prompt.py's refusals, which need no PyTorch: a model without a
# text encoder the pipeline needs (naming it, and --llama for the fourth), bad
# options (argparse's usage, exit 2); and with every directory present but
# empty, one error line whatever fails first (no PyTorch on CI: the missing
# module; with it: the missing weights), and the missing module for certain
# under `python3 -S`. Never an output or temporary file.
#   tests/tool_encode_prompt.sh tools/encode_prompt.py
set -u
tool=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# expect NAME STATUS NEEDLE ARGS...: exit STATUS, NEEDLE on the last stderr line
# (the only line for status 1), no $work/out.safetensors and no temporary file.
expect() {
  local name=$1 status=$2 needle=$3
  shift 3
  ${python:-python3} "$tool" "$@" >"$work/stdout" 2>"$work/err"
  local got=$? lines
  lines=$(wc -l <"$work/err")
  if [ "$got" -ne "$status" ] || ! tail -1 "$work/err" | grep -q "encode_prompt.py: error: .*$needle" ||
     { [ "$status" -eq 1 ] && [ "$lines" -ne 1 ]; } || ls -A "$work" | grep -q "out.safetensors\|^\.encode_prompt"; then
    fail "$name: exit $got, $lines stderr line(s): $(cat "$work/err")"
  else
    echo "ok   $name: $(tail -1 "$work/err")"
  fi
}

out="$work/out.safetensors"
model="$work/model"
mkdir -p "$model/text_encoder" "$model/tokenizer"
expect "missing text_encoder_2" 1 "$model/text_encoder_2: no such directory" --model "$model" --prompt x --output "$out"
for d in text_encoder_2 tokenizer_2 text_encoder_3 tokenizer_3; do mkdir -p "$model/$d"; done
expect "no Llama encoder" 1 "text_encoder_4.*give --llama DIR" --model "$model" --prompt x --output "$out"
expect "missing --llama dir" 1 "$work/llama: no such directory for text_encoder_4$" --model "$model" --llama "$work/llama" --prompt x \
  --output "$out"
expect "output not .safetensors" 2 "--output must end in .safetensors" --model "$model" --prompt x --output "$work/o.bin"
expect "output in a missing directory" 2 "is not a writable directory" --model "$model" --prompt x --output "$work/none/o.safetensors"
mkdir -p "$work/dir.safetensors"
expect "output is a directory" 2 "is a directory" --model "$model" --prompt x --output "$work/dir.safetensors"
rmdir "$work/dir.safetensors"
expect "zero tokens" 2 "--max-sequence-length must be positive" --model "$model" --prompt x --output "$out" \
  --max-sequence-length 0
expect "no prompt" 2 "required: --prompt" --model "$model" --output "$out"
mkdir -p "$work/llama"
expect "empty encoder directories" 1 "" --model "$model" --llama "$work/llama" --prompt x --device cpu --output "$out"
python="python3 -S" expect "without PyTorch (no site packages)" 1 "No module named 'torch' (pip install" \
  --model "$model" --llama "$work/llama" --prompt x --output "$out"
python3 -S "$tool" --help >/dev/null || fail "--help needs no PyTorch"
[ "$failures" -eq 0 ] && echo "tool_encode_prompt: all checks passed"
exit "$failures"
