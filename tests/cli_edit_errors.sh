#!/usr/bin/env bash
# moedit edit with bad input: missing, corrupt, truncated, empty, gigantic
# (refused from the header) and unsupported images, and bad edit flags: one
# line "moedit: error: ...", exit 1, no output file. Good runs write the
# file asked for at the size the help promises.
# usage: cli_edit_errors.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
input="$fixtures/edit_tiny/input.png" # 64 x 48
out="$work/out.png"

# "W H" of a PNG, from its IHDR chunk.
png_size() {
  od -An -tu1 -j16 -N8 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8 }'
}

# Bad images, made byte by byte.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02\x00\x00\x00garbage' >"$work/corrupt.png"
head -c 300 "$input" >"$work/truncated.png"
: >"$work/empty.png"
# 100000 x 100000 in the IHDR: refused before libpng reads on or anything is allocated.
printf '\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00\x00\x00\x00\x00' >"$work/huge.png"
# A JPEG whose SOF0 says 60000 x 60000.
printf '\xff\xd8\xff\xc0\x00\x11\x08\xea\x60\xea\x60\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01\xff\xd9' >"$work/huge.jpg"
printf 'GIF89a\x10\x00\x10\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff\x2c\x00\x00\x00\x00\x10\x00\x10\x00\x00\x02\x02\x44\x01\x00\x3b' >"$work/picture.gif"
printf 'BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00\x28\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x01\x00\x18\x00' >"$work/picture.bmp"
cp "$input" "$work/input.png"

run=("$moedit" edit --model "$model" --prompt "a red circle" --num-inference-steps 2 --quiet)
expect_error "missing image" "cannot read image .*none.png" "${run[@]}" --image "$work/none.png" --output "$out"
expect_error "corrupt png" "corrupt.png is not a readable PNG" "${run[@]}" --image "$work/corrupt.png" --output "$out"
expect_error "truncated png" "truncated.png is not a readable PNG" "${run[@]}" --image "$work/truncated.png" --output "$out"
expect_error "zero-size image" "empty.png is empty" "${run[@]}" --image "$work/empty.png" --output "$out"
expect_error "a directory as the image" "cannot read image $work: Is a directory" "${run[@]}" --image "$work" --output "$out"
expect_error "gigantic png" "huge.png is 100000 x 100000: larger than moedit accepts" "${run[@]}" --image "$work/huge.png" --output "$out"
expect_error "gigantic jpeg" "huge.jpg is 60000 x 60000: larger than moedit accepts" "${run[@]}" --image "$work/huge.jpg" --output "$out"
expect_error "gif" "picture.gif is neither PNG nor JPEG" "${run[@]}" --image "$work/picture.gif" --output "$out"
expect_error "bmp" "picture.bmp is neither PNG nor JPEG" "${run[@]}" --image "$work/picture.bmp" --output "$out"
expect_error "no image" "edit needs --image" "${run[@]}" --output "$out"
expect_error "no prompt" "edit needs --prompt" "$moedit" edit --model "$model" --image "$input" --output "$out"
expect_error "missing model dir" "does not exist" "$moedit" edit --model "$work/none" --image "$input" --prompt x --output "$out"
expect_error "strength 0" "strength 0: must be in" "${run[@]}" --image "$input" --strength 0 --output "$out"
expect_error "strength 1.5" "strength 1.5: must be in" "${run[@]}" --image "$input" --strength 1.5 --output "$out"
expect_error "strength too low for the steps" "leaves none of the 2 inference steps" "${run[@]}" --image "$input" --strength 1e-300 --output "$out"
expect_error "unknown edit mode" "edit-mode paint: must be strength or context" "${run[@]}" --image "$input" --edit-mode paint --output "$out"
expect_error "height off the grid" "--height 40: must be a multiple of 16" "${run[@]}" --image "$input" --height 40 --width 64 --output "$out"
expect_error "output too large" "larger than moedit accepts" "${run[@]}" --image "$input" --height 16384 --output "$out"
expect_error "unsupported output format" "unsupported image format" "${run[@]}" --image "$input" --output "$work/out.gif"
expect_error "degrees vs ranks" "must equal the number of ranks" "${run[@]}" --image "$input" --ring-degree 2 --output "$out"

# Good runs: the input's size by default; one side keeps the aspect ratio.
good() {
  local name=$1 size=$2
  shift 2
  rm -f "$out"
  if "${run[@]}" "$@" --output "$out" && [ -s "$out" ] && [ "$(png_size "$out")" = "$size" ]; then
    echo "ok   $name: $size"
  else
    echo "FAIL $name: $( [ -e "$out" ] && png_size "$out")"
    failures=$((failures + 1))
  fi
}
good "strength edit at the input's size" "64 48" --image "$input"
good "context edit, height 32 keeps the aspect" "48 32" --image "$input" --edit-mode context --height 32
good "both sides given" "32 64" --image "$input" --height 64 --width 32 --strength 1

# A damaged ancillary chunk (a tEXt with a wrong CRC after the IHDR) is one
# libpng reads past: the edit runs, and libpng's warning must not print.
{ head -c 33 "$input"; printf '\x00\x00\x00\x0dtEXtComment\x00hello\x00\x00\x00\x00'; tail -c +34 "$input"; } >"$work/text-crc.png"
rm -f "$out"
if "${run[@]}" --image "$work/text-crc.png" --output "$out" 2>"$work/err" && [ -s "$out" ] && [ ! -s "$work/err" ]; then
  echo "ok   damaged ancillary chunk: read, nothing on stderr"
else
  fail "damaged ancillary chunk: $(cat "$work/err")"
fi

finish cli_edit_errors
