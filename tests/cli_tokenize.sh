#!/usr/bin/env bash
# moedit tokenize: ids equal to transformers' for the tokenizer fixtures
# (tests/fixtures/tokenizers, CLIP vocab.json + merges.txt and a Llama 3
# tokenizer.json), --json lines, truncation with --max-length, and bad input:
# each gives exactly one line "moedit: error: ..." and a non-zero exit.
# usage: cli_tokenize.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
tokenizers="$fixtures/tokenizers"

# expect_output NAME WANT COMMAND...: fails unless COMMAND exits 0 printing exactly WANT.
expect_output() {
  local name=$1 want=$2 got
  shift 2
  got=$("$@" 2>"$work/err")
  if [ $? -ne 0 ] || [ "$got" != "$want" ]; then fail "$name: got '$got' $(cat "$work/err")"; else echo "ok   $name"; fi
}

# Ids from tests/fixtures/tokenizers/*/expected.jsonl (transformers 5.25).
expect_output "clip ids" "3112 320 794 558 320 1021 267 3113 328 1793 1775 3113" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt "A photo of a CAT, <|endoftext|> İstanbul"
expect_output "clip truncated to 5" "3112 78 77 324 3113" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt "one two three four five six" --max-length 5
expect_output "llama3 json" \
  '{"prompt": "Hello world", "ids": [3048, 39, 1288, 281, 284, 670, 392], "tokens": ["<|begin_of_text|>", "H", "el", "lo", "Ġw", "or", "ld"]}' \
  "$moedit" tokenize --tokenizer "$tokenizers/llama3" --prompt "Hello world" --json
printf 'a dog\r\n\n"quoted" \\ line\n' >"$work/prompts.txt"
"$moedit" tokenize --tokenizer "$tokenizers/clip2" --prompt-file "$work/prompts.txt" --json >"$work/out" 2>&1 ||
  fail "prompt file: $(cat "$work/out")"
if [ "$(wc -l <"$work/out")" -eq 3 ] && python3 -c 'import json, sys; [json.loads(l) for l in open(sys.argv[1])]' "$work/out"; then
  echo "ok   prompt file: one valid JSON line per prompt"
else
  fail "prompt file output: $(cat "$work/out")"
fi

expect_error "no tokenizer option" "needs --tokenizer" "$moedit" tokenize --prompt hi
expect_error "no prompt" "exactly one of --prompt" "$moedit" tokenize --tokenizer "$tokenizers/clip"
expect_error "missing dir" "nothing: tokenizer folder does not exist" "$moedit" tokenize --tokenizer "$work/nothing" --prompt hi
mkdir -p "$work/half_clip"
cp "$tokenizers/clip/vocab.json" "$work/half_clip/"
expect_error "missing tokenizer file" "half_clip: no tokenizer.json, nor vocab.json + merges.txt" \
  "$moedit" tokenize --tokenizer "$work/half_clip" --prompt hi
mkdir -p "$work/digits"
python3 - "$tokenizers/llama3/tokenizer.json" "$work/digits/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["pre_tokenizer"]["pretokenizers"].insert(0, {"type": "Digits", "individual_digits": True})
json.dump(t, open(sys.argv[2], "w"))
PY
expect_error "unknown feature" "tokenizer.json: pre_tokenizer Digits is not supported" \
  "$moedit" tokenize --tokenizer "$work/digits" --prompt hi
printf 'good line\nbad \xff line\n' >"$work/bad_utf8.txt"
expect_error "invalid UTF-8 file" "bad_utf8.txt: line 2 is not valid UTF-8" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt-file "$work/bad_utf8.txt"
expect_error "invalid UTF-8 prompt" "the text given to the tokenizer .* is not valid UTF-8 (byte 1)" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt $'a\xc3'
expect_error "missing prompt file" "cannot open prompt file" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt-file "$work/none.txt"
expect_error "max-length 0" "--max-length 0" "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt hi --max-length 0
# -1 was the "not given" value: typed, it tokenized without a limit.
expect_error "max-length -1" "--max-length -1: give a number" "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt hi --max-length -1
expect_error "max-length below specials" "cannot hold the tokenizer's 2 special" \
  "$moedit" tokenize --tokenizer "$tokenizers/clip" --prompt hi --max-length 1
finish cli_tokenize
