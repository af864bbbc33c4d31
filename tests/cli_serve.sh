#!/usr/bin/env bash
# moedit serve on models/tiny-random, as its users' tools reach it:
#  1. curl: /health, /v1/models (401 without or with a wrong key), /metrics;
#     every bad request gets its status and an OpenAI error object naming the
#     parameter (bad JSON, missing prompt, wrong types, sizes off the grid or
#     non-square beyond the transformer's max_resolution (an edit's input too), n
#     too large, unknown fields, an oversized body, unknown paths and methods);
#  2. a generation (n 2, b64_json and a data: URL) is byte for byte the files
#     of `moedit generate` with the same settings, metadata included;
#  3. the official openai Python client's images.generate against base_url;
#     edits (POST /v1/images/edits, multipart): curl and the openai client's
#     images.edit give the pixels of `moedit edit` with the same settings, in
#     strength and context mode; a missing, unreadable, truncated or
#     oversized image, a JSON body, a mask, a strength that leaves no step: 400;
#  4. a bounded load, 5 clients x 4 requests: all answered 200, none lost or
#     duplicated, each image equal to its `moedit generate` twin;
#     three requests of one shape waiting together run as one batch, each
#     image equal to its twin;
#  5. a failure inside one request (its image folder gone): 500 for it, and
#     the next request is answered 200; with one forward for a batch
#     (--batch-size 3), a client that leaves mid-batch has its rows dropped
#     and the other two are answered with their twins' bytes;
#  6. a full queue (--max-queue 1): 429; an edit's upload over --max-upload: 400;
#     a client that leaves (curl --max-time) while its request waits: the
#     request is dropped from the queue, never run; one that leaves while it
#     runs: cancelled between steps (also on 2 ranks with cfg2, where the
#     ranks agree on it), and the next request is served;
#  7. SIGTERM during a request: that request is answered, exit status 0;
#     SIGHUP during a batch likewise, leaving no image folder;
#  8. two ranks with --cfg-parallel-size 2 under mpirun: an answer equal to
#     `mpirun -np 2 moedit generate --cfg-parallel-size 2`'s file, 3 clients x
#     2 requests, an edit equal to `mpirun -np 2 moedit edit`'s pixels,
#     SIGTERM to rank 0: every rank exits 0;
#  9. two ranks with --data-parallel-size 2: two waiting requests run at
#     once, one per replica, each image its moedit generate twin; a client
#     that leaves while its request runs on both replicas: each replica
#     cancels its jobs between steps (replica 1 told by rank 0).
# usage: cli_serve.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
export TMPDIR="$work"

# start_server LOG ARGS...: starts `moedit serve ARGS --port 0` in the
# background (pid in $server), waits for its /health and sets $url.
start_server() {
  local log=$1
  shift
  "$@" --port 0 2>"$log" &
  server=$!
  url=""
  for _ in $(seq 1 600); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1)
    [ -n "$url" ] && curl -sf "$url/health" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  fail "server did not come up: $(cat "$log")"
  return 1
}

# stop_server [SIGNAL]: SIGTERM (or SIGNAL), then the exit status must be 0.
stop_server() {
  local signal=${1:-TERM}
  kill -"$signal" "$server"
  wait "$server"
  local status=$?
  [ "$status" -eq 0 ] && echo "ok   SIG$signal: exit 0" || fail "SIG$signal: exit $status"
}

# expect_http NAME STATUS NEEDLE CURL_ARGS...: the status and an error object
# (or body) containing NEEDLE.
expect_http() {
  local name=$1 want=$2 needle=$3
  shift 3
  local got
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@")
  if [ "$got" = "$want" ] && grep -qF -- "$needle" "$work/body"; then
    echo "ok   $name: $got $(head -c 200 "$work/body" | tr '\n' ' ')"
  else
    fail "$name: status $got (want $want), body: $(head -c 300 "$work/body")"
  fi
}

# same_pixels A B: the two PNGs hold the same pixels (IHDR and IDAT chunks
# equal; both are written by moedit's one PNG writer; the text chunks, which
# name the server's copy of an edit's input, may differ).
same_pixels() {
  python3 - "$1" "$2" <<'PY'
import struct, sys
def pixels(path):
    data, out, i = open(path, "rb").read(), [], 8
    while i + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[i:i + 8])
        if kind in (b"IHDR", b"IDAT"): out.append(kind + data[i + 8:i + 8 + n])
        i += 12 + n
    return b"".join(out)
a, b = pixels(sys.argv[1]), pixels(sys.argv[2])
sys.exit(0 if a and a == b else 1)
PY
}

# decode JSON OUT_PREFIX: writes each data[i] image to OUT_PREFIX-i.png.
decode() {
  python3 - "$1" "$2" <<'PY'
import base64, json, sys
answer = json.load(open(sys.argv[1]))
for i, item in enumerate(answer["data"]):
    text = item.get("b64_json") or item["url"].split("base64,", 1)[1]
    open(f"{sys.argv[2]}-{i}.png", "wb").write(base64.b64decode(text))
PY
}

# cancel_running NAME LOG TWIN_COMMAND...: a long request (1000 steps, n 4)
# whose client leaves after 1 s (curl --max-time) is cancelled between
# steps (a log line, answered 499 to nobody), and the next request is
# answered at once, 200, with the file TWIN_COMMAND writes.
cancel_running() {
  local name=$1 log=$2
  shift 2
  curl -s -o /dev/null --max-time 1 -X POST "$url/v1/images/generations" \
    -d '{"prompt": "long", "num_inference_steps": 1000, "size": "128x128", "n": 4, "seed": 90}'
  local gone=$? after
  after=$(curl -s -o "$work/after-cancel.json" -w '%{http_code}' -X POST "$url/v1/images/generations" \
    -d '{"prompt": "after", "seed": 91}')
  rm -f "$work"/after-cancel-*.png
  [ "$after" = 200 ] && decode "$work/after-cancel.json" "$work/after-cancel"
  "$@" --prompt after --seed 91 --output "$work/after-cancel-twin.png"
  if [ "$gone" -eq 28 ] && [ "$after" = 200 ] && grep -q "cancelled after step [0-9]* of 1000: its client left" "$log" &&
     grep -q "128x128, 1000 steps, n 4, seed 90\( on replica [0-9,]*\)\?: 499" "$log" && cmp -s "$work/after-cancel-0.png" "$work/after-cancel-twin.png"; then
    echo "ok   $name: $(grep -o "cancelled after step [0-9]* of 1000" "$log" | tail -1); the next request: its twin's file"
  else
    fail "$name: curl $gone, next request $after: $(tail -4 "$log")"
  fi
}

settings=(--height 32 --width 32 --num-inference-steps 2 --guidance-scale 5)
expect_error "--max-batch -1" "--max-batch -1: must be" "$moedit" serve --model "$model" --max-batch -1
expect_error "--max-batch x --max-images too many" "at most 1024 images" "$moedit" serve --model "$model" --max-batch 300 --port 0
expect_error "--max-upload 0" "--max-upload 0: must be" "$moedit" serve --model "$model" --max-upload 0
# Refused before the model loads (a timeout would show a load first).
expect_error "--batch-size 9" "--batch-size 9: must be 1..8" timeout 5 "$moedit" serve --model "$model" --batch-size 9
expect_error "--max-gpu-memory 0" "--max-gpu-memory 0: expected a positive size" \
  timeout 5 "$moedit" serve --model "$model" --max-gpu-memory 0
# A key no header carries (it served, and no client could ever match it).
expect_error "--api-key with a space" "--api-key: the key holds a space" \
  timeout 20 "$moedit" serve --model "$model" --port 0 --api-key "my key"
# An IPv6 host: the listening line is a URL ("http://::1:PORT" was none). Skipped without IPv6 loopback.
timeout 20 "$moedit" serve --model "$model" "${settings[@]}" --port 0 --host ::1 2>"$work/v6.log" &
v6=$!
for _ in $(seq 1 100); do grep -q "listening\|error" "$work/v6.log" && break; sleep 0.1; done
if grep -q "listening on http://\[::1\]:[0-9]* " "$work/v6.log"; then echo "ok   --host ::1: $(head -1 "$work/v6.log")"
elif grep -q "cannot listen" "$work/v6.log"; then echo "skip --host ::1: $(cat "$work/v6.log")"
else fail "--host ::1: $(cat "$work/v6.log")"; fi
kill -TERM "$v6" 2>/dev/null
wait "$v6"
gen=("$moedit" generate --model "$model" "${settings[@]}" --quiet)
key=secret-key
start_server "$work/serve.log" "$moedit" serve --model "$model" "${settings[@]}" --api-key "$key" --max-queue 8 \
  --max-images 4 --max-batch 4 || finish cli_serve
auth=(-H "Authorization: Bearer $key")
post=(-X POST "$url/v1/images/generations" "${auth[@]}" -H "Content-Type: application/json")

# 1. endpoints and bad requests
expect_http "health" 200 '"status":"ok"' "$url/health"
expect_http "models" 200 '"id":"tiny-random"' "${auth[@]}" "$url/v1/models"
expect_http "models without a key" 401 '"code":"missing_api_key"' "$url/v1/models"
expect_http "wrong key" 401 '"code":"invalid_api_key"' -H "Authorization: Bearer nope" "$url/v1/models"
expect_http "generation without a key" 401 '"code":"missing_api_key"' -X POST "$url/v1/images/generations" -d '{"prompt":"x"}'
expect_http "bad JSON" 400 '"code":"invalid_json"' "${post[@]}" -d '{"prompt": "x",'
expect_http "not an object" 400 '"code":"invalid_json"' "${post[@]}" -d '["x"]'
expect_http "missing prompt" 400 '"param":"prompt"' "${post[@]}" -d '{"n": 1}'
# Bytes that are not UTF-8 in a prompt: a 400 at once (it was a 500 from the tokenizer, after the queue).
expect_http "prompt not UTF-8" 400 '"message":"'"'"'prompt'"'"' is not valid UTF-8 (byte 1)","type":"invalid_request_error","param":"prompt","code":"invalid_value"' \
  "${post[@]}" --data-binary $'{"prompt": "a\xff"}'
expect_http "prompt of the wrong type" 400 '"param":"prompt","code":"invalid_type"' "${post[@]}" -d '{"prompt": 3}'
expect_http "size off the grid" 400 'multiples of 16' "${post[@]}" -d '{"prompt": "x", "size": "40x32"}'
expect_http "size not WxH" 400 '"param":"size"' "${post[@]}" -d '{"prompt": "x", "size": "big"}'
expect_http "size too large" 400 '"param":"size"' "${post[@]}" -d '{"prompt": "x", "size": "99999x16"}'
# tiny-random's max_resolution is 8 x 8 latent pixels: a non-square image up to 64 x 64 pixels' worth
expect_http "non-square size over max_resolution" 400 '"param":"size","code":"invalid_value"' "${post[@]}" \
  -d '{"prompt": "x", "size": "80x64"}'
expect_http "n too large" 400 '"param":"n"' "${post[@]}" -d '{"prompt": "x", "n": 5}'
expect_http "n not an integer" 400 '"param":"n","code":"invalid_type"' "${post[@]}" -d '{"prompt": "x", "n": "2"}'
expect_http "n fractional" 400 '"param":"n"' "${post[@]}" -d '{"prompt": "x", "n": 1.5}'
expect_http "negative seed" 400 '"param":"seed"' "${post[@]}" -d '{"prompt": "x", "seed": -1}'
expect_http "steps of the wrong type" 400 '"param":"num_inference_steps"' "${post[@]}" -d '{"prompt": "x", "num_inference_steps": [2]}'
expect_http "guidance of the wrong type" 400 '"param":"guidance_scale"' "${post[@]}" -d '{"prompt": "x", "guidance_scale": "high"}'
expect_http "unknown response format" 400 '"param":"response_format"' "${post[@]}" -d '{"prompt": "x", "response_format": "jpeg"}'
expect_http "unknown field" 400 '"code":"unknown_parameter"' "${post[@]}" -d '{"prompt": "x", "colour": "red"}'
expect_http "a NUL in the prompt" 400 'cannot contain a NUL' "${post[@]}" -d '{"prompt": "a red\u0000 circle"}'
expect_http "an escaped backslash before u0000 is text" 200 '"b64_json"' "${post[@]}" -d '{"prompt": "a \\u0000", "seed": 3}'
expect_http "known OpenAI field of the wrong type" 400 '"param":"quality"' "${post[@]}" -d '{"prompt": "x", "quality": 3}'
python3 -c 'print("{\"prompt\": \"" + "x" * (2 << 20) + "\"}")' >"$work/big.json"
expect_http "oversized body" 400 '"code":"body_too_large"' "${post[@]}" --data-binary "@$work/big.json"
expect_http "unknown path" 404 '"code":"not_found"' "$url/v1/nothing"
expect_http "wrong method" 405 '"code":"method_not_allowed"' "${auth[@]}" "$url/v1/images/generations"
expect_http "metrics" 200 'moedit_serve_requests_total{endpoint="images_generations",status="400"}' "$url/metrics"

# 2. the same pixels and bytes as moedit generate
expect_http "generation n 2" 200 '"b64_json"' "${post[@]}" \
  -d '{"prompt": "a red circle", "seed": 7, "n": 2, "size": "32x32", "negative_prompt": "blue"}'
cp "$work/body" "$work/answer.json"
decode "$work/answer.json" "$work/served"
"${gen[@]}" --prompt "a red circle" --negative-prompt blue --seed 7 --num-images-per-prompt 2 --output "$work/gen.png"
if cmp -s "$work/served-0.png" "$work/gen-0.png" && cmp -s "$work/served-1.png" "$work/gen-1.png"; then
  echo "ok   served PNGs (n 2, seeds 7 and 8) are moedit generate's bytes"
else
  fail "served PNGs differ from moedit generate's"
fi
# device memory: rank 0's backend holds the model (in_use > 0), its peak is
# at least that, and the device (the host's RAM for cpu) holds the peak.
if memory=$(curl -s "$url/metrics" | python3 -c '
import re, sys
g = dict(re.findall(r"^moedit_serve_device_memory_bytes\{device=\"cpu\",kind=\"(\w+)\"\} (\d+)$", sys.stdin.read(), re.M))
in_use, peak, total = (int(g.get(k, -1)) for k in ("in_use", "peak", "total"))
print(f"in_use {in_use}, peak {peak}, total {total}")
sys.exit(0 if 0 < in_use <= peak <= total else 1)'); then
  echo "ok   metrics: device memory of cpu: $memory"
else
  fail "metrics: device memory gauges missing or insane: $memory"
fi
expect_http "response_format url" 200 '"url":"data:image/png;base64,' "${post[@]}" \
  -d '{"prompt": "a red circle", "seed": 7, "negative_prompt": "blue", "response_format": "url"}'
decode "$work/body" "$work/url"
cmp -s "$work/url-0.png" "$work/gen-0.png" && echo "ok   data: URL holds the same PNG" || fail "data: URL image differs"

# 3. the openai client
if python3 - "$url" "$key" "$work/openai" <<'PY'; then
import base64, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
result = client.images.generate(prompt="a green square", n=1, size="32x32", response_format="b64_json",
                                extra_body={"seed": 3, "negative_prompt": "blue"})
open(sys.argv[3] + "-0.png", "wb").write(base64.b64decode(result.data[0].b64_json))
PY
  "${gen[@]}" --prompt "a green square" --negative-prompt blue --seed 3 --output "$work/openai-gen.png"
  cmp -s "$work/openai-0.png" "$work/openai-gen.png" && echo "ok   openai client images.generate: moedit generate's bytes" ||
    fail "openai client image differs from moedit generate's"
else
  fail "openai client images.generate failed"
fi

# 3b. edits: the pixels of moedit edit (size: the input's own, 48x32, as moedit edit's default)
edit=("$moedit" edit --model "$model" --num-inference-steps 2 --guidance-scale 5 --quiet)
"${gen[@]}" --prompt "an input" --seed 11 --width 48 --height 32 --output "$work/input.png"
edits=(-X POST "$url/v1/images/edits" "${auth[@]}")
expect_http "edit n 2, strength 0.5" 200 '"b64_json"' "${edits[@]}" -F image=@"$work/input.png" \
  -F prompt="a red circle" -F seed=7 -F n=2 -F strength=0.5 -F negative_prompt=blue
decode "$work/body" "$work/edited"
"${edit[@]}" --image "$work/input.png" --prompt "a red circle" --seed 7 --num-images-per-prompt 2 --strength 0.5 \
  --negative-prompt blue --output "$work/edit.png"
if same_pixels "$work/edited-0.png" "$work/edit-0.png" && same_pixels "$work/edited-1.png" "$work/edit-1.png" &&
   ! same_pixels "$work/edited-0.png" "$work/edit-1.png"; then
  echo "ok   served edits (n 2, seeds 7 and 8) have moedit edit's pixels"
else
  fail "served edits differ from moedit edit's"
fi
python3 -c 'import sys; from PIL import Image; Image.new("RGB", (96, 64), (200, 30, 30)).save(sys.argv[1])' \
  "$work/wide.png"
expect_http "edit of a non-square input over max_resolution" 400 '"param":"image","code":"invalid_value"' \
  "${edits[@]}" -F image=@"$work/wide.png" -F prompt=x
expect_http "edit, context mode at 32x32" 200 '"b64_json"' "${edits[@]}" -F image=@"$work/input.png" \
  -F prompt="a red circle" -F seed=4 -F edit_mode=context -F size=32x32
decode "$work/body" "$work/context"
"${edit[@]}" --image "$work/input.png" --prompt "a red circle" --seed 4 --edit-mode context --width 32 --height 32 \
  --output "$work/context-edit.png"
same_pixels "$work/context-0.png" "$work/context-edit.png" && echo "ok   context-mode edit: moedit edit's pixels" ||
  fail "context-mode edit differs from moedit edit's"
if python3 - "$url" "$key" "$work" <<'PY'; then
import base64, sys
from openai import OpenAI
client = OpenAI(base_url=sys.argv[1] + "/v1", api_key=sys.argv[2])
with open(sys.argv[3] + "/input.png", "rb") as image:
    result = client.images.edit(image=image, prompt="a green square", n=1, response_format="b64_json",
                                extra_body={"seed": 3, "strength": 0.8})
open(sys.argv[3] + "/openai-edit-0.png", "wb").write(base64.b64decode(result.data[0].b64_json))
PY
  "${edit[@]}" --image "$work/input.png" --prompt "a green square" --seed 3 --strength 0.8 --output "$work/openai-edit.png"
  same_pixels "$work/openai-edit-0.png" "$work/openai-edit.png" && echo "ok   openai client images.edit: moedit edit's pixels" ||
    fail "openai client edit differs from moedit edit's"
else
  fail "openai client images.edit failed"
fi
head -c 40 "$work/input.png" >"$work/truncated.png"
echo "not an image" >"$work/text.png"
python3 -c 'import struct, sys, zlib
ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk)' "$work/huge.png"
expect_http "edit without an image" 400 '"param":"image","code":"missing_required_parameter"' "${edits[@]}" -F prompt=x
expect_http "edit of a file that is no image" 400 '"code":"invalid_image"' "${edits[@]}" -F image=@"$work/text.png" -F prompt=x
expect_http "edit of a truncated PNG" 400 '"code":"invalid_image"' "${edits[@]}" -F image=@"$work/truncated.png" -F prompt=x
expect_http "edit of a 20000x20000 PNG" 400 '"code":"invalid_image"' "${edits[@]}" -F image=@"$work/huge.png" -F prompt=x
expect_http "edit with two images" 400 '"param":"image"' "${edits[@]}" -F image=@"$work/input.png" -F image=@"$work/input.png" -F prompt=x
expect_http "edit as JSON" 400 '"code":"invalid_content_type"' "${edits[@]}" -H "Content-Type: application/json" -d '{"prompt": "x"}'
expect_http "edit with a mask" 400 '"param":"mask"' "${edits[@]}" -F image=@"$work/input.png" -F mask=@"$work/input.png" -F prompt=x
expect_http "edit whose prompt is a file" 400 '"param":"prompt","code":"invalid_type"' "${edits[@]}" -F image=@"$work/input.png" -F prompt=@"$work/input.png"
expect_http "edit strength out of range" 400 '"param":"strength"' "${edits[@]}" -F image=@"$work/input.png" -F prompt=x -F strength=1.5
expect_http "edit strength leaving no step" 400 'leaves none of the 2' "${edits[@]}" -F image=@"$work/input.png" -F prompt=x -F strength=1e-20
expect_http "edit n of the wrong type" 400 '"param":"n","code":"invalid_type"' "${edits[@]}" -F image=@"$work/input.png" -F prompt=x -F n=two
expect_http "edit without a key" 401 '"code":"missing_api_key"' -X POST "$url/v1/images/edits" -F image=@"$work/input.png" -F prompt=x
[ -z "$(ls "$work"/moedit-serve-*/ 2>/dev/null)" ] && echo "ok   no uploaded image left in the server's folder" ||
  fail "uploads left behind: $(ls "$work"/moedit-serve-*/)"

# 4. load: clients x requests, all answered, none lost or duplicated, each equal to its twin
load() { # load URL KEY CLIENTS REQUESTS DIR
  python3 - "$@" <<'PY'
import base64, json, sys, threading, urllib.request
url, key, clients, per_client, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
answers, errors = {}, []
def client(c):
    for r in range(per_client):
        prompt = f"load {c} {r}"
        body = json.dumps({"prompt": prompt, "seed": 5, "negative_prompt": "blue"}).encode()
        request = urllib.request.Request(url + "/v1/images/generations", body,
                                         {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                data = json.load(response)["data"]
        except Exception as e:
            errors.append(f"{prompt}: {e}")
            continue
        if len(data) != 1 or data[0]["revised_prompt"] != prompt or data[0]["seed"] != 5:
            errors.append(f"{prompt}: answered {[(d['revised_prompt'], d['seed']) for d in data]}")
        answers.setdefault(prompt, []).append(base64.b64decode(data[0]["b64_json"]))
threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
[t.start() for t in threads]
[t.join() for t in threads]
prompts = [f"load {c} {r}" for c in range(clients) for r in range(per_client)]
open(folder + "/prompts.txt", "w").write("\n".join(prompts) + "\n")
for i, p in enumerate(prompts):
    if len(answers.get(p, [])) != 1:
        errors.append(f"{p}: {len(answers.get(p, []))} answers")
    else:
        open(f"{folder}/load-{i}.png", "wb").write(answers[p][0])
print("; ".join(errors[:5]) if errors else f"{len(prompts)} requests answered once each")
sys.exit(1 if errors else 0)
PY
}
# twins DIR COUNT GENERATE...: each load-i.png equals the twin moedit generate writes for prompt line i.
twins() {
  local dir=$1 count=$2 same=0
  shift 2
  "$@" --prompt-file "$dir/prompts.txt" --seed 5 --negative-prompt blue --output "$dir/twin.png" || return 1
  for i in $(seq 0 $((count - 1))); do cmp -s "$dir/load-$i.png" "$dir/twin-$i.png" && same=$((same + 1)); done
  [ "$same" -eq "$count" ]
}
mkdir -p "$work/load"
if message=$(load "$url" "$key" 5 4 "$work/load"); then
  echo "ok   load 5 clients x 4 requests: $message"
  twins "$work/load" 20 "${gen[@]}" && echo "ok   load: all 20 images equal their moedit generate twins" ||
    fail "load: images differ from their moedit generate twins"
else
  fail "load: $message"
fi
# 4b. batching: three requests of one shape wait behind a slow one of
# another shape and run as one batch (--max-batch 4), each
# with its own prompt, seed and n; every image is its moedit generate twin.
curl -s -o /dev/null -X POST "$url/v1/images/generations" "${auth[@]}" \
  -d '{"prompt": "slow", "num_inference_steps": 1000, "size": "64x64", "n": 4}' &
slow_client=$!
sleep 0.5
batch_clients=()
for spec in "first:21:1" "second:31:2" "third:41:1"; do
  IFS=: read -r prompt seed n <<<"$spec"
  curl -s -o "$work/batch-$prompt.json" "${post[@]}" \
    -d "{\"prompt\": \"$prompt\", \"seed\": $seed, \"n\": $n, \"negative_prompt\": \"blue\"}" &
  batch_clients+=($!)
  sleep 0.1
done
wait "$slow_client" "${batch_clients[@]}"
batched=0
for seed in 21 31 41; do grep -q "seed $seed (batched): 200" "$work/serve.log" && batched=$((batched + 1)); done
same=0
for spec in "first:21:1" "second:31:2" "third:41:1"; do
  IFS=: read -r prompt seed n <<<"$spec"
  decode "$work/batch-$prompt.json" "$work/batched-$prompt"
  "${gen[@]}" --prompt "$prompt" --negative-prompt blue --seed "$seed" --num-images-per-prompt "$n" \
    --output "$work/batch-twin-$prompt.png"
  for i in $(seq 0 $((n - 1))); do
    twin="$work/batch-twin-$prompt.png"
    [ "$n" -gt 1 ] && twin="$work/batch-twin-$prompt-$i.png"
    cmp -s "$work/batched-$prompt-$i.png" "$twin" && same=$((same + 1))
  done
done
if [ "$batched" -eq 3 ] && [ "$same" -eq 4 ]; then
  echo "ok   3 waiting requests ran as one batch; all 4 images equal their moedit generate twins"
else
  fail "batching: $batched batched answers, $same of 4 images equal their twins: $(tail -5 "$work/serve.log")"
fi
expect_http "metrics after the load" 200 'moedit_serve_step_seconds_count' "$url/metrics"

# 5. a failure inside one request: 500 for it, the server goes on
folder=$(ls -d "$work"/moedit-serve-* | head -1)
rm -rf "$folder"
expect_http "a request that fails inside (its folder removed)" 500 '"type":"server_error"' "${post[@]}" -d '{"prompt": "x", "seed": 1}'
mkdir "$folder"
expect_http "the next request after a failure" 200 '"b64_json"' "${post[@]}" -d '{"prompt": "x", "seed": 1}'
expect_http "health after a failure" 200 '"status":"ok"' "$url/health"
stop_server

# 5b. one forward for a batch (--max-batch 3 --batch-size 3): three requests
# wait behind a blocker (whose client then leaves: cancelled) and run as one
# denoising batch; once it runs, the second client leaves: its rows are dropped
# at the next step boundary, the other two run on and are answered 200 with
# their moedit generate twins' bytes; the metrics count the two 499s.
# Each step is waited for in the log, not guessed by sleeps.
wait_log() { # wait_log LOG PATTERN: up to 30 s
  for _ in $(seq 1 300); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  return 1
}
# One OpenMP thread here: 32x32 images gain nothing from two, and lose much
# when the cores are shared (the bits are the same for any thread count).
start_server "$work/batch.log" env OMP_NUM_THREADS=1 "$moedit" serve --model "$model" "${settings[@]}" \
  --max-batch 3 --batch-size 3 || finish cli_serve
curl -s -o /dev/null -X POST "$url/v1/images/generations" \
  -d '{"prompt": "blocker", "num_inference_steps": 1000, "size": "128x128", "seed": 50}' &
blocker=$!
sleep 0.3
batch_clients=()
for seed in 51 52 53; do
  curl -s -o "$work/drop-$seed.json" -w '%{http_code}' -X POST "$url/v1/images/generations" \
    -d "{\"prompt\": \"row $seed\", \"seed\": $seed, \"num_inference_steps\": 1000}" >"$work/drop-$seed.status" &
  batch_clients+=($!)
  sleep 0.05
done
sleep 0.2
kill "$blocker"
wait_log "$work/batch.log" "seed 50: 499" # the batch starts at once after it
sleep 0.05
kill "${batch_clients[1]}"
wait "$blocker" "${batch_clients[@]}" 2>/dev/null
same=0
for seed in 51 53; do
  [ "$(cat "$work/drop-$seed.status")" = 200 ] && decode "$work/drop-$seed.json" "$work/drop-$seed" &&
    OMP_NUM_THREADS=1 "${gen[@]}" --num-inference-steps 1000 --prompt "row $seed" --seed "$seed" --output "$work/drop-twin-$seed.png" &&
    cmp -s "$work/drop-$seed-0.png" "$work/drop-twin-$seed.png" && same=$((same + 1))
done
if [ "$same" -eq 2 ] && [ "$(grep -c "cancelled after step [0-9]* of 1000: its client left" "$work/batch.log")" -eq 2 ] &&
   grep -q "seed 52 (batched): 499" "$work/batch.log" && grep -q "seed 51 (batched): 200" "$work/batch.log" &&
   curl -s "$url/metrics" | grep -q 'moedit_serve_requests_total{endpoint="images_generations",status="499"} 2'; then
  echo "ok   --batch-size 3: a client gone mid-batch: its rows dropped ($(grep -o "cancelled after step [0-9]*" \
    "$work/batch.log" | tail -1)); the other two: 200, their twins' bytes"
else
  fail "--batch-size 3, a client gone mid-batch: $same of 2 twins: $(tail -5 "$work/batch.log")"
fi
stop_server

# 6. a full queue: 429. Four slow requests 50 ms apart: one runs, one waits,
# the others find the queue full (each takes far longer than the 150 ms).
start_server "$work/queue.log" "$moedit" serve --model "$model" "${settings[@]}" --max-queue 1 --max-upload 1 ||
  finish cli_serve
head -c 1500000 /dev/urandom >"$work/big.png"
expect_http "edit upload over --max-upload 1" 400 '"code":"body_too_large"' -X POST "$url/v1/images/edits" \
  -F image=@"$work/big.png" -F prompt=x
slow='{"prompt": "slow", "num_inference_steps": 1000, "size": "64x64"}'
clients=()
for i in 0 1 2 3; do
  curl -s -o /dev/null -w '%{http_code}\n' -X POST "$url/v1/images/generations" -d "$slow" >"$work/queue-$i" &
  clients+=($!)
  sleep 0.05
done
wait "${clients[@]}"
codes=$(cat "$work"/queue-* | sort | tr '\n' ' ')
case "$codes" in
  "200 200 429 429 " | "200 429 429 429 ") echo "ok   --max-queue 1, four at once: $codes" ;;
  *) fail "full queue: statuses $codes: $(cat "$work/queue.log")" ;;
esac

# 6b. a client that leaves while its request waits (curl --max-time): the
# request leaves the queue and never runs, so with --max-queue 1 the next
# request finds room (200, not 429); the metrics count it as 499.
curl -s -o /dev/null -X POST "$url/v1/images/generations" \
  -d '{"prompt": "slow", "num_inference_steps": 1000, "size": "64x64", "n": 4}' &
slow_client=$!
sleep 0.5
curl -s -o /dev/null --max-time 1 -X POST "$url/v1/images/generations" -d '{"prompt": "gone", "seed": 77}'
gone_status=$?
sleep 0.3
after=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/images/generations" -d '{"prompt": "after", "seed": 78}')
wait "$slow_client"
if [ "$gone_status" -eq 28 ] && [ "$after" = 200 ] && grep -q "dropped from the queue .*: its client left" "$work/queue.log" &&
   ! grep -q "seed 77: " "$work/queue.log" &&
   curl -s "$url/metrics" | grep -q 'moedit_serve_requests_total{endpoint="images_generations",status="499"} 1'; then
  echo "ok   a client gone after 1 s: its request dropped from the queue, never run; the next one found room (200)"
else
  fail "client that left: curl $gone_status, next request $after: $(tail -4 "$work/queue.log"); metrics: $(curl -s "$url/metrics" | grep 'status="4')"
fi

# 6c. a client that leaves while its request runs: cancelled between steps
cancel_running "a client gone while its request ran" "$work/queue.log" "${gen[@]}"

# 7. SIGTERM while a request runs (four images of 1000 steps): it is
# answered, after the "stopping" line, and the exit status is 0.
curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/images/generations" \
  -d '{"prompt": "slow", "num_inference_steps": 1000, "size": "64x64", "n": 4}' >"$work/last" &
client=$!
sleep 0.3
stop_server
wait "$client"
[ "$(cat "$work/last")" = 200 ] && echo "ok   the request running at SIGTERM was answered" || fail "request at SIGTERM: $(cat "$work/last")"
if grep -A1 "stopping" "$work/queue.log" | tail -1 | grep -q "n 4, .*: 200"; then
  echo "ok   SIGTERM came while the request ran: $(tail -1 "$work/queue.log")"
else
  fail "SIGTERM did not come during the request: $(cat "$work/queue.log")"
fi

# 7b. SIGHUP while a batch runs (two requests, one forward for both): the
# same stop; its default action killed the server (exit 129) and left its
# image folder behind.
start_server "$work/hup.log" "$moedit" serve --model "$model" --height 64 --width 64 --num-inference-steps 4 \
  --max-batch 2 --batch-size 2
for i in 1 2; do
  curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/images/generations" \
    -d '{"prompt": "slow", "num_inference_steps": 1000, "n": 2}' >"$work/hup-$i" &
done
sleep 0.3
stop_server HUP
wait
[ "$(cat "$work/hup-1" "$work/hup-2")" = 200200 ] && echo "ok   the batch running at SIGHUP was answered" ||
  fail "requests at SIGHUP: $(cat "$work/hup-1" "$work/hup-2")"
ls -d "$work"/moedit-serve-* 2>/dev/null && fail "SIGHUP left the image folder"

# 8. two ranks, CFG parallel
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
log2="$work/mpi.log"
start_server "$log2" "${mpi[@]}" "$moedit" serve --model "$model" "${settings[@]}" --cfg-parallel-size 2 ||
  finish cli_serve
expect_http "2 ranks: guidance 1 refused" 400 '"param":"guidance_scale"' -X POST "$url/v1/images/generations" \
  -d '{"prompt": "x", "guidance_scale": 1}'
mkdir -p "$work/load2"
if message=$(load "$url" none 3 2 "$work/load2"); then
  echo "ok   2 ranks cfg2, load 3 clients x 2 requests: $message"
  twins "$work/load2" 6 "${mpi[@]}" "${gen[@]}" --cfg-parallel-size 2 &&
    echo "ok   2 ranks cfg2: all 6 images equal mpirun -np 2 moedit generate --cfg-parallel-size 2's" ||
    fail "2 ranks: images differ from their moedit generate twins"
else
  fail "2 ranks load: $message"
fi
expect_http "2 ranks: an edit" 200 '"b64_json"' -X POST "$url/v1/images/edits" -F image=@"$work/input.png" \
  -F prompt="a red circle" -F seed=7 -F strength=0.5
decode "$work/body" "$work/edited2"
"${mpi[@]}" "${edit[@]}" --cfg-parallel-size 2 --image "$work/input.png" --prompt "a red circle" --seed 7 \
  --strength 0.5 --output "$work/edit2.png"
same_pixels "$work/edited2-0.png" "$work/edit2.png" && echo "ok   2 ranks cfg2: an edit has mpirun moedit edit's pixels" ||
  fail "2 ranks: the edit differs from mpirun moedit edit's"
cancel_running "2 ranks cfg2: a client gone while its request ran" "$log2" "${mpi[@]}" "${gen[@]}" --cfg-parallel-size 2
rank0=$(grep -o 'pid [0-9]*' "$log2" | head -1 | cut -d' ' -f2)
kill -TERM "$rank0"
wait "$server"
status=$?
[ "$status" -eq 0 ] && echo "ok   2 ranks: SIGTERM to rank 0, every rank exits 0" || fail "2 ranks: exit $status: $(tail -3 "$log2")"
# 9. two data-parallel replicas: two requests waiting together (behind a
# slow one) run at once, one on each replica, in one run; their images are
# the files of mpirun -np 2 moedit generate --data-parallel-size 2.
log3="$work/dp.log"
start_server "$log3" "${mpi[@]}" "$moedit" serve --model "$model" "${settings[@]}" --data-parallel-size 2 ||
  finish cli_serve
curl -s -o /dev/null -X POST "$url/v1/images/generations" \
  -d '{"prompt": "slow", "num_inference_steps": 1000, "size": "64x64", "n": 4}' &
slow_client=$!
sleep 0.5
mkdir -p "$work/dp"
dp_clients=()
for i in 0 1; do
  curl -s -o "$work/dp/answer-$i.json" -X POST "$url/v1/images/generations" \
    -d "{\"prompt\": \"replica $i\", \"seed\": 5, \"negative_prompt\": \"blue\"}" &
  dp_clients+=($!)
  sleep 0.1
done
wait "$slow_client" "${dp_clients[@]}"
printf 'replica 0\nreplica 1\n' >"$work/dp/prompts.txt"
for i in 0 1; do decode "$work/dp/answer-$i.json" "$work/dp/served-$i"; mv "$work/dp/served-$i-0.png" "$work/dp/load-$i.png"; done
if grep -q "seed 5 (batched) on replica 0: 200" "$log3" && grep -q "seed 5 (batched) on replica 1: 200" "$log3" &&
   twins "$work/dp" 2 "${mpi[@]}" "${gen[@]}" --data-parallel-size 2; then
  echo "ok   2 replicas: two waiting requests ran at once, one per replica, each its moedit generate twin"
else
  fail "2 replicas: $(tail -3 "$log3")"
fi
# A client that leaves while its request (n 4: jobs 0 and 2 on replica 0, 1
# and 3 on replica 1) runs: rank 0 cancels its own jobs and tells replica 1's
# first rank, whose ranks drop theirs between steps (its own log line).
cancel_running "2 replicas: a client gone while its request ran on both" "$log3" "${mpi[@]}" "${gen[@]}" \
  --data-parallel-size 2
if grep -q "replica 1 asked to cancel it" "$log3" &&
   grep -q "rank 1 (replica 1): job 1 of request batch [0-9]* cancelled after step" "$log3"; then
  echo "ok   2 replicas: replica 1 cancelled its job too: $(grep -o "rank 1 (replica 1): job 1 .*" "$log3" | head -1)"
else
  fail "2 replicas: replica 1 did not cancel its job: $(tail -5 "$log3")"
fi
rank0=$(grep -o 'pid [0-9]*' "$log3" | head -1 | cut -d' ' -f2)
kill -TERM "$rank0"
wait "$server"
status=$?
[ "$status" -eq 0 ] && echo "ok   2 replicas: SIGTERM to rank 0, every rank exits 0" || fail "2 replicas: exit $status"
finish cli_serve
