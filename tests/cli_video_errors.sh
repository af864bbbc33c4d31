#!/usr/bin/env bash
# moedit video: a good clip is an animated PNG with every frame and the
# metadata, or numbered frames in a directory; bad frame counts, fps, sizes,
# a clip too large for this machine's memory (estimated up front, numbers in
# the message) and outputs that cannot be written give one error line,
# exit 1, and leave no file behind.
# usage: cli_video_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
out="$work/clip.png"
export OMP_NUM_THREADS=1

run=("$moedit" video --model "$model" --prompt "a red circle moving left to right" --height 64 --width 64 \
  --num-inference-steps 2 --quiet)

# Good runs.
if "${run[@]}" --num-frames 3 --fps 6 --output "$out"; then
  # acTL: 3 frames; fcTL of the first frame: delay 1/6 s; the prompt and the frame count as text.
  python3 - "$out" <<'PY' || fail "APNG structure"
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n"
chunks, at = [], 8
while at < len(data):
    n, kind = struct.unpack(">I4s", data[at:at + 8])
    chunks.append((kind, data[at + 8:at + 8 + n]))
    at += 12 + n
kinds = [k for k, _ in chunks]
actl = [c for k, c in chunks if k == b"acTL"][0]
assert struct.unpack(">II", actl) == (3, 0), actl
fctl = [c for k, c in chunks if k == b"fcTL"]
assert len(fctl) == 3 and struct.unpack(">HH", fctl[0][20:24]) == (1, 6), fctl[0]
assert kinds.count(b"fdAT") >= 2 and b"IDAT" in kinds
text = b"".join(c for k, c in chunks if k == b"tEXt")
assert b"frames\x003" in text and b"moving left to right" in text, text
print("ok   APNG: 3 frames at 6 fps, metadata")
PY
else
  fail "3-frame clip to $out"
fi
if "${run[@]}" --num-frames 2 --output "$work/frames/"; then
  [ -f "$work/frames/frame-0000.png" ] && [ -f "$work/frames/frame-0001.png" ] && [ ! -e "$work/frames/frame-0002.png" ] &&
    echo "ok   frames directory: frame-0000.png, frame-0001.png" || fail "frames directory: $(ls "$work/frames")"
else
  fail "2 frames into a directory"
fi
rm -rf "$work/frames"

# The bench's video workload: one forward over 3 frames' tokens.
bench_json=$("$moedit" bench --forward-only --model "$model" --num-frames 3 --height 64 --width 64 --iterations 1 \
  --warmup 0 --json - 2>/dev/null)
echo "$bench_json" | grep -q '"frames":3,"height":64,"width":64,"image_tokens":48,' &&
  echo "ok   bench --forward-only --num-frames 3: 48 image tokens" || fail "bench video workload: $bench_json"
expect_error "bench frames without --forward-only" "add --forward-only" "$moedit" bench --model "$model" --num-frames 3

# Bad input.
expect_error "no frame count" "needs --num-frames" "${run[@]}" --output "$out"
expect_error "zero frames" "--num-frames 0" "${run[@]}" --num-frames 0 --output "$out"
expect_error "negative frames" "--num-frames -2" "${run[@]}" --num-frames -2 --output "$out"
expect_error "absurd frames" "--num-frames 100000: must be 1..1024" "${run[@]}" --num-frames 100000 --output "$out"
expect_error "fps 0" "--fps 0" "${run[@]}" --num-frames 2 --fps 0 --output "$out"
expect_error "too large for memory" "a clip of 1024 frames at 8192x8192 .* GiB of memory needed, .* GiB available on this machine" \
  "$moedit" video --model "$model" --prompt x --num-frames 1024 --height 8192 --width 8192 --output "$out"
expect_error "size off the grid" "multiples of 16" "${run[@]}" --num-frames 2 --height 72 --output "$out"
expect_error "jpeg output" "animated .png" "${run[@]}" --num-frames 2 --output "$work/clip.jpg"
touch "$work/file"
expect_error "frames asked into a file" "but it is a file" "${run[@]}" --num-frames 2 --output "$work/file/"
rm -f "$work/file"
expect_error "frames into a missing parent" "not writable" "${run[@]}" --num-frames 2 --output "$work/none/sub/"
[ -e "$work/none" ] && fail "a failed run made $work/none"
expect_error "missing model" "does not exist" "$moedit" video --model "$work/nomodel" --prompt x --num-frames 2 --output "$out"

finish cli_video_errors
