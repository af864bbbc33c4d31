#!/usr/bin/env bash
# moedit serve's page at / in headless Chromium (Debian's chromium, which
# tools/setup.sh installs): GET / is serve/page.html byte for byte (built into
# the binary) as text/html; a user types a prompt, size, steps, seed and the
# API key, clicks Generate, and the gallery shows the image with its
# settings; that image is the file `moedit generate` writes with the same
# settings. Without chromium the test is reported skipped (exit 77), never
# passed.
# usage: cli_serve_page.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
export TMPDIR="$work"
if ! command -v chromium >/dev/null 2>&1; then
  echo "skip: no chromium on PATH (tools/setup.sh installs it)"
  exit 77
fi
source_dir="$fixtures/../.."
settings=(--num-inference-steps 2 --guidance-scale 5 --negative-prompt blue)
"$moedit" serve --model "$model" --height 32 --width 32 "${settings[@]}" --api-key page-key --port 0 2>"$work/serve.log" &
server=$!
url=""
for _ in $(seq 1 600); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/serve.log" | head -1)
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.1
done
[ -n "$url" ] || { fail "server did not come up: $(cat "$work/serve.log")"; finish cli_serve_page; }

type=$(curl -s -o "$work/page.html" -w '%{content_type}' "$url/")
if [ "$type" = "text/html; charset=utf-8" ] && cmp -s "$work/page.html" "$source_dir/serve/page.html"; then
  echo "ok   GET / is serve/page.html ($(wc -c <"$work/page.html") bytes, $type)"
else
  fail "GET /: $type, $(wc -c <"$work/page.html") bytes, not serve/page.html"
fi

if python3 "$(dirname "$0")/serve_page_chromium.py" "$url" --prompt "a red circle" --size 48x32 --steps 3 --seed 9 \
     --key page-key --timeout 120 >"$work/page.json" 2>"$work/page.err"; then
  python3 - "$work/page.json" "$work/page.png" <<'PY'
import base64, json, sys
found = json.load(open(sys.argv[1]))
open(sys.argv[2], "wb").write(base64.b64decode(found["png_base64"]))
print(found["caption"].replace("\n", "; "))
PY
  caption=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["caption"])' "$work/page.json")
  case "$caption" in
    *"prompt a red circle"*"size 48x32"*"steps 3"*"seed 9"*) echo "ok   chromium: typed, clicked, the gallery shows the image with its settings" ;;
    *) fail "gallery caption: $caption" ;;
  esac
  "$moedit" generate --model "$model" "${settings[@]}" --num-inference-steps 3 --width 48 --height 32 \
    --prompt "a red circle" --seed 9 --quiet --output "$work/twin.png"
  cmp -s "$work/page.png" "$work/twin.png" && echo "ok   the page's image is moedit generate's file" ||
    fail "the page's image differs from moedit generate's"
else
  fail "chromium: $(cat "$work/page.err")"
fi
kill -TERM "$server"
wait "$server"
finish cli_serve_page
