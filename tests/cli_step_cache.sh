#!/usr/bin/env bash
# moedit generate/edit/video/bench with --cache: each bad knob is one error
# line; --cache none, and block or taylor at threshold 0 (every step
# computed), write the very bytes of a run without the flag; a threshold that
# allows it caches steps (models/tiny-random and models/demo), and a captured
# schedule replayed gives the deciding run's bytes.
# usage: cli_step_cache.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
out="$work/out.png"
demo="$fixtures/../../models/demo"

run=("$moedit" generate --model "$model" --prompt "a red circle" --num-inference-steps 8 --height 64 --width 64
     --seed 0 --quiet)
# tiny-random has 2 blocks: F1 B0 is its only cache shape.
cached=(--cache block --cache-last-blocks 0 --cache-warmup 1 --cache-threshold 100)
expect_error "unknown mode" "--cache fast: none, block or taylor" "${run[@]}" --cache fast --output "$out"
expect_error "negative threshold" "--cache-threshold -0.1: must be 0..100" "${run[@]}" --cache block --cache-last-blocks 0 --cache-threshold -0.1 --output "$out"
expect_error "no first block" "--cache-first-blocks 0: must be 1 or more" "${run[@]}" --cache block --cache-first-blocks 0 --output "$out"
expect_error "negative last blocks" "--cache-last-blocks -1: must be 0 or more" "${run[@]}" --cache block --cache-last-blocks -1 --output "$out"
expect_error "negative warm-up" "--cache-warmup -2: must be 0..10000" "${run[@]}" --cache block --cache-last-blocks 0 --cache-warmup -2 --output "$out"
expect_error "zero in a row" "--cache-max-consecutive 0: must be 1..10000" "${run[@]}" --cache block --cache-last-blocks 0 --cache-max-consecutive 0 --output "$out"
expect_error "taylor order 5" "--cache-taylor-order 5: must be 1..4" "${run[@]}" --cache taylor --cache-last-blocks 0 --cache-taylor-order 5 --output "$out"
expect_error "nothing left to skip" "the transformer has 2 blocks" "${run[@]}" --cache block --output "$out"
expect_error "capture and replay" "exclude each other" "${run[@]}" "${cached[@]}" --cache-schedule-capture "$work/s" --cache-schedule-replay "$work/s" --output "$out"
expect_error "replay of a missing file" "--cache-schedule-replay $work/none: no such file" "${run[@]}" "${cached[@]}" --cache-schedule-replay "$work/none" --output "$out"
mkfifo "$work/fifo"  # replaced by a file before (the rename), and a /dev/full as root
expect_error "capture into a FIFO" "--cache-schedule-capture $work/fifo is not a regular file (a FIFO)" \
  timeout 20 "${run[@]}" "${cached[@]}" --cache-schedule-capture "$work/fifo" --output "$out"
[ -p "$work/fifo" ] || fail "the capture replaced the FIFO"
rm -f "$work/fifo"
expect_error "schedule without a cache" "--cache-schedule-capture needs --cache block or taylor" "${run[@]}" --cache-schedule-capture "$work/s" --output "$out"
expect_error "capture into a missing directory" "--cache-schedule-capture $work/none/s: directory" "${run[@]}" "${cached[@]}" --cache-schedule-capture "$work/none/s" --output "$out"
expect_error "bench: unknown mode" "--cache fast: none, block or taylor" "$moedit" bench --model "$model" --height 64 --width 64 --num-inference-steps 2 --layouts serial --cache fast --quiet
expect_error "bench: forward only" "--forward-only times one forward" "$moedit" bench --model "$model" --forward-only --cache block --quiet

# Every step computed: the same bytes as no cache.
"${run[@]}" --output "$work/plain.png" || fail "plain run"
for flags in "--cache none" "--cache block --cache-last-blocks 0 --cache-threshold 0" \
             "--cache taylor --cache-last-blocks 0 --cache-threshold 0 --cache-taylor-order 2"; do
  # shellcheck disable=SC2086
  if "${run[@]}" $flags --output "$work/same.png" --json >"$work/json" && cmp -s "$work/plain.png" "$work/same.png" &&
     { [ "$flags" = "--cache none" ] || grep -q '"cached":0,' "$work/json"; }; then
    echo "ok   $flags: the uncached bytes"
  else fail "$flags: differs from the uncached run: $(cat "$work/json")"; fi
  rm -f "$work/same.png"
done

# A threshold that allows it: steps are cached, the schedule is written and replays to the same bytes.
if "${run[@]}" "${cached[@]}" --cache-schedule-capture "$work/schedule.safetensors" --output "$work/cached.png" \
     --json >"$work/json" && grep -q '"cached":[1-9]' "$work/json" && [ -s "$work/schedule.safetensors" ] &&
   ! cmp -s "$work/plain.png" "$work/cached.png"; then
  echo "ok   tiny-random caches steps: $(grep -o '"cache":.*' "$work/json")"
else fail "tiny-random cached nothing: $(cat "$work/json")"; fi
if "${run[@]}" "${cached[@]}" --cache-threshold 0 --cache-schedule-replay "$work/schedule.safetensors" \
     --output "$work/replayed.png" && cmp -s "$work/cached.png" "$work/replayed.png"; then
  echo "ok   a replayed schedule: the deciding run's bytes"
else fail "the replayed schedule gives other bytes"; fi
expect_error "replay of another step count" "the schedule has 8 steps, this run 4" "${run[@]}" "${cached[@]}" --num-inference-steps 4 --cache-schedule-replay "$work/schedule.safetensors" --output "$out"

# The demo model (8 blocks) at the defaults' shape: some steps cached at 0.3, none at 0.
demo_run=("$moedit" generate --model "$demo" --prompt "a red circle on a blue background" --height 128 --width 128
          --num-inference-steps 12 --seed 0 --quiet --json --cache block)
if "${demo_run[@]}" --cache-threshold 0.3 --output "$work/demo.png" >"$work/json" && grep -q '"cached":[1-9]' "$work/json"; then
  echo "ok   demo caches steps at threshold 0.3: $(grep -o '"cache":.*' "$work/json")"
else fail "demo at threshold 0.3: $(cat "$work/json")"; fi
if "${demo_run[@]}" --cache-threshold 0 --output "$work/demo0.png" >"$work/json" && grep -q '"cached":0,' "$work/json"; then
  echo "ok   demo caches nothing at threshold 0"
else fail "demo at threshold 0: $(cat "$work/json")"; fi

# edit, video and bench take the flags too.
if "$moedit" edit --model "$model" --image "$work/plain.png" --prompt "a blue square" --num-inference-steps 8 \
     --seed 0 --quiet --json "${cached[@]}" --output "$work/edit.png" >"$work/json" && grep -q '"cached":[1-9]' "$work/json"
then echo "ok   edit caches steps"; else fail "edit: $(cat "$work/json")"; fi
if "$moedit" video --model "$model" --prompt "a red circle moving" --num-frames 2 --height 64 --width 64 \
     --num-inference-steps 8 --seed 0 --quiet --json "${cached[@]}" --output "$work/clip.png" >"$work/json" &&
   grep -q '"cached":[1-9]' "$work/json"; then echo "ok   video caches steps"; else fail "video: $(cat "$work/json")"; fi
if "$moedit" bench --model "$model" --height 64 --width 64 --num-inference-steps 8 --layouts serial --quiet \
     "${cached[@]}" --json "$work/bench.json" >/dev/null && grep -q '"step_cache": "block, first 1 and last 0' "$work/bench.json"
then echo "ok   bench replays the serial schedule: $(grep -o '"step_cache": "[^"]*"' "$work/bench.json")"
else fail "bench: $(cat "$work/bench.json")"; fi
finish cli_step_cache
