#!/usr/bin/env bash
# One spelling per concept across the commands (issue 30): --threads N on
# every command (a bad count is one error line), --json a switch everywhere
# (bench's file is --json-output FILE; its old --json FILE still works),
# --model for bench-vae and tokenize (--vae stays an alias), --warmup for
# bench's layouts and --forward-only (--warmup-steps stays an alias), video's
# help without .jpg or "images per prompt", and "did you mean --X?" for a
# misspelled option.
# usage: cli_flags.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1

# --threads on every command.
for command in generate edit video inspect bench bench-vae bench-comm tokenize; do
  "$moedit" $command --help | grep -q -- "--threads N" || fail "$command --help has no --threads"
done
echo "ok   --threads in every command's help"
"$moedit" inspect --model "$model" --threads 2 >/dev/null || fail "inspect --threads 2"
"$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 1 --seed 0 --threads 3 --quiet \
  --output "$work/t3.png" || fail "generate --threads 3"
OMP_NUM_THREADS=1 "$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 1 --seed 0 --quiet \
  --output "$work/t1.png" || fail "generate on 1 thread"
cmp -s "$work/t1.png" "$work/t3.png" && echo "ok   --threads 3 makes the 1-thread picture" || fail "--threads 3: another picture"
expect_error "zero threads" "--threads 0: must be 1..4096" "$moedit" tokenize --tokenizer "$model/tokenizer" --prompt x --threads 0
expect_error "threads not a number" "option --threads: 'many' is not an integer" "$moedit" bench-comm --threads many

# did you mean.
expect_error "a misspelled option" "unknown option '--heigth' for 'generate'; did you mean --height?" \
  "$moedit" generate --model "$model" --heigth 64
expect_error "a part of one name" "did you mean --num-inference-steps?" "$moedit" generate --model "$model" --steps 4
expect_error "bench's warm-up" "did you mean --warmup?" "$moedit" bench --model "$model" --warmpu 1
expect_error "nothing close" "unknown option '--zzzz' for 'inspect' (try --help)" "$moedit" inspect --zzzz

# bench: --json (stdout) and --json-output FILE; the old --json FILE and --warmup-steps.
small=(--model "$model" --height 64 --width 64 --num-inference-steps 1 --layouts serial --quiet)
"$moedit" bench "${small[@]}" --json >"$work/stdout" 2>"$work/err" && python3 -m json.tool "$work/stdout" >/dev/null &&
  echo "ok   bench --json: JSON on stdout" || fail "bench --json: $(cat "$work/err")"
"$moedit" bench "${small[@]}" --json-output "$work/a.json" --warmup 0 >/dev/null && python3 -m json.tool "$work/a.json" >/dev/null &&
  grep -q '"warmup_steps": 0' "$work/a.json" && grep -q '"expert_weights_max"' "$work/a.json" &&
  echo "ok   bench --json-output FILE --warmup 0" || fail "bench --json-output"
"$moedit" bench "${small[@]}" --json "$work/b.json" --warmup-steps 2 >/dev/null && grep -q '"warmup_steps": 2' "$work/b.json" &&
  echo "ok   the old spellings: bench --json FILE --warmup-steps 2" || fail "bench's old spellings"
"$moedit" bench --forward-only --model "$model" --height 64 --width 64 --iterations 1 --warmup 0 --json >"$work/f" &&
  grep -q '"forward_ms_median"' "$work/f" && echo "ok   bench --forward-only --json" || fail "bench --forward-only --json"
"$moedit" bench --help | grep -q "expert weights\|json-output" || fail "bench --help"

# --model for bench-vae (a model folder or its vae/) and tokenize; --vae as before.
for dir in "$model" "$model/vae"; do
  "$moedit" bench-vae --model "$dir" --height 64 --width 64 --warmup 0 --iterations 1 --json >"$work/v" &&
    grep -q '"decode_ms_median"' "$work/v" || fail "bench-vae --model $dir"
done
"$moedit" bench-vae --vae "$model/vae" --height 64 --width 64 --warmup 0 --iterations 1 --json >/dev/null ||
  fail "bench-vae --vae"
echo "ok   bench-vae --model DIR (model or vae/), --vae DIR"
[ "$("$moedit" tokenize --model "$model" --prompt "a red circle")" = \
  "$("$moedit" tokenize --tokenizer "$model/tokenizer" --prompt "a red circle")" ] &&
  echo "ok   tokenize --model DIR reads DIR/tokenizer" || fail "tokenize --model"

# Video's help speaks of clips.
help=$("$moedit" video --help)
if echo "$help" | grep -q '\.jpg\|images per prompt'; then fail "video --help offers .jpg or images per prompt"
else echo "ok   video --help: no .jpg, no images per prompt"; fi
finish cli_flags
