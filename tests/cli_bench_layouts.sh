#!/usr/bin/env bash
# moedit bench on one rank (no launcher): a small matrix writes a table on
# stdout and well-formed JSON, markdown and SVG files; skipped layouts carry
# their reason; bad layout lists and option mixes give one error line; the
# transformer-only and --forward-only modes work and say what they time.
# usage: cli_bench_layouts.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"

small=(--height 64 --width 64 --num-inference-steps 2 --quiet)
export OMP_NUM_THREADS=1

"$moedit" bench --help | grep -q "TERM\[xTERM...\] \[+ep|+epw\] \[:vaeK\]" || fail "bench --help lacks the list syntax"

if "$moedit" bench --model "$model" "${small[@]}" --layouts "serial,tp2,ulysses2+ep:vae2" \
     --json "$work/b.json" --markdown "$work/b.md" --plot "$work/b.svg" >"$work/table" 2>"$work/err"; then
  grep -Eq '^\| (\*\*)?serial \(reference, rank 0 alone\)' "$work/table" || fail "no reference row on stdout"
  grep -q "(fastest)" "$work/table" || fail "no fastest layout marked"
  grep -q "^- \`tp2\` skipped: needs 2 ranks" "$work/table" || fail "tp2 not skipped with its reason"
  cmp -s "$work/table" "$work/b.md" || fail "--markdown differs from the table on stdout"
  # Every row of the table has the header's cells.
  awk -F'|' '/^\| layout/ { cells = NF } /^\| / && cells && NF != cells { bad++ } END { exit !(cells && !bad) }' \
    "$work/table" || fail "table rows and header differ in cell count"
  grep -q "| step speedup |" "$work/table" || fail "no step speedup column"
  grep -q '"status": "skipped", .*"reason": "needs 2 ranks' "$work/b.json" || fail "JSON lacks the skip reason"
  grep -q '"fastest": "serial"' "$work/b.json" || fail "JSON lacks the fastest layout"
  if command -v python3 >/dev/null; then
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert len(d['layouts']) == 4" "$work/b.json" ||
      fail "JSON does not parse"
    python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$work/b.svg" || fail "SVG is not XML"
  fi
  [ "$(grep -c '<rect ' "$work/b.svg")" -eq 3 ] || fail "SVG should have a background and 2 bars"
  tail -n 1 "$work/b.svg" | grep -q '^</svg>$' || fail "SVG not closed"
  ls "$work" | grep -q '\.tmp\.' && fail "temporary report files left"
else
  fail "bench on one rank: $(cat "$work/err")"
fi

"$moedit" bench --config "$model/transformer/config.json" --random-weights "${small[@]}" --text-tokens 8 \
  --layouts serial >"$work/table" 2>"$work/err" || fail "transformer-only bench: $(cat "$work/err")"
grep -q "transformer only" "$work/table" || fail "transformer-only bench does not say so"

"$moedit" bench --forward-only --model "$model" --height 64 --width 64 --iterations 2 --json - >"$work/forward" \
  2>"$work/err" || fail "bench --forward-only: $(cat "$work/err")"
grep -q '"forward_ms_median":' "$work/forward" || fail "bench --forward-only --json - printed no JSON"
"$moedit" bench --forward-only --model "$model" --height 64 --width 64 --iterations 2 --batch 2 --json - \
  >"$work/forward2" 2>"$work/err" || fail "bench --forward-only --batch 2: $(cat "$work/err")"
grep -q '"batch":2,' "$work/forward2" || fail "bench --batch 2 does not report its batch"
grep -q '"batch":1,' "$work/forward" || fail "bench --forward-only does not report batch 1"

expect_error "bad term" "expected tpN, ulyssesN" "$moedit" bench --model "$model" "${small[@]}" --layouts tp2xfoo2
expect_error "term twice" "tp given twice" "$moedit" bench --model "$model" "${small[@]}" --layouts tp2xtp2
expect_error "no degree" "a number must follow" "$moedit" bench --model "$model" "${small[@]}" --layouts ulysses
expect_error "zero degree" "must be 1..1024" "$moedit" bench --model "$model" "${small[@]}" --layouts ring0
expect_error "trailing junk" "unexpected '+eq'" "$moedit" bench --model "$model" "${small[@]}" --layouts tp2+eq
expect_error "empty item" "an empty item" "$moedit" bench --model "$model" "${small[@]}" --layouts tp2,,ring2
expect_error "auto with bands no layout has" "no layout of 1 rank(s) decodes in 3 bands" "$moedit" bench --model "$model" \
  "${small[@]}" --layouts auto:vae3
expect_error "config without random" "needs --random-weights" "$moedit" bench --config "$model/transformer/config.json"
expect_error "model and config" "not both" "$moedit" bench --model "$model" --config "$model/transformer/config.json"
expect_error "no model" "needs --model DIR or --config" "$moedit" bench
expect_error "batch 3" "--batch 3: must be 1 or 2" "$moedit" bench --forward-only --model "$model" --batch 3
expect_error "batch without forward-only" "add --forward-only" "$moedit" bench --model "$model" --batch 2
expect_error "batch 0" "--batch 0: must be 1 or 2" "$moedit" bench --forward-only --model "$model" --batch 0
expect_error "a typed warmup of -1" "--warmup -1: must be 0..10000" "$moedit" bench --model "$model" --warmup -1
expect_error "iterations without end" "--iterations 4000000000000000000: must be 1..10000" "$moedit" bench \
  --model "$model" --iterations 4000000000000000000
expect_error "a warm-up without end" "--warmup 100000000: must be 0..10000" "$moedit" bench --model "$model" \
  --warmup 100000000
expect_error "a typed frame count of 0" "--num-frames 0: must be 1..1024" "$moedit" bench --forward-only --model "$model" \
  --num-frames 0
expect_error "forward-only height off the VAE grid" "17x256: each must be a multiple of 8" "$moedit" bench --forward-only \
  --model "$model" --height 17
expect_error "too many text tokens" "--text-tokens 5000: must be 1..4096" "$moedit" bench --forward-only --model "$model" \
  --text-tokens 5000
# Report paths are checked before the layouts run, not after.
expect_error "json into a missing directory" "--json-output $work/none/r.json: directory" "$moedit" bench --model "$model" --json "$work/none/r.json"
expect_error "markdown onto a directory" "--markdown $work is a directory" "$moedit" bench --model "$model" --markdown "$work"
expect_error "plot not svg" "the chart is SVG" "$moedit" bench --model "$model" --plot "$work/chart.png"
expect_error "empty json name" "--json-output: the file name is empty" "$moedit" bench --model "$model" --json=
expect_error "placement file missing" "no such routing file" "$moedit" bench --model "$model" --expert-placement "$work/none"
expect_error "placement on a dense model" "has no routed experts to place" "$moedit" bench \
  --config "$fixtures/dit_dense/transformer/config.json" --random-weights --height 64 --width 64 --layouts serial \
  --expert-placement reference
expect_error "placement without an EP layout" "no layout that runs on 1 rank(s) uses expert parallelism" "$moedit" bench \
  --model "$model" "${small[@]}" --layouts serial,tp2+ep --expert-placement reference

finish cli_bench_layouts
