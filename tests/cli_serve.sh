#!/usr/bin/env bash
# moedit serve on models/tiny-random, as its users' tools reach it:
#  1. curl: /health, /v1/models (401 without or with a wrong key), /metrics;
#     every bad request gets its status and an OpenAI error object naming the
#     parameter (bad JSON, missing prompt, wrong types, sizes off the grid, n
#     too large, unknown fields, an oversized body, unknown paths and methods);
#  2. a generation (n 2, b64_json and a data: URL) is byte for byte the files
#     of `moedit generate` with the same settings, metadata included;
#  3. the official openai Python client's images.generate against base_url;
#  4. a bounded load, 5 clients x 4 requests: all answered 200, none lost or
#     duplicated, each image equal to its `moedit generate` twin;
#  5. a failure inside one request (its image folder gone): 500 for it, and
#     the next request is answered 200;
#  6. a full queue (--max-queue 1): 429;
#  7. SIGTERM during a request: that request is answered, exit status 0;
#  8. two ranks with --cfg-parallel-size 2 under mpirun: an answer equal to
#     `mpirun -np 2 moedit generate --cfg-parallel-size 2`'s file, 3 clients x
#     2 requests, SIGTERM to rank 0: every rank exits 0.
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

# stop_server: SIGTERM, then the exit status must be 0.
stop_server() {
  kill -TERM "$server"
  wait "$server"
  local status=$?
  [ "$status" -eq 0 ] && echo "ok   SIGTERM: exit 0" || fail "SIGTERM: exit $status"
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

settings=(--height 32 --width 32 --num-inference-steps 2 --guidance-scale 5)
gen=("$moedit" generate --model "$model" "${settings[@]}" --quiet)
key=secret-key
start_server "$work/serve.log" "$moedit" serve --model "$model" "${settings[@]}" --api-key "$key" --max-queue 8 \
  --max-images 4 || finish cli_serve
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
expect_http "prompt of the wrong type" 400 '"param":"prompt","code":"invalid_type"' "${post[@]}" -d '{"prompt": 3}'
expect_http "size off the grid" 400 'multiples of 16' "${post[@]}" -d '{"prompt": "x", "size": "40x32"}'
expect_http "size not WxH" 400 '"param":"size"' "${post[@]}" -d '{"prompt": "x", "size": "big"}'
expect_http "size too large" 400 '"param":"size"' "${post[@]}" -d '{"prompt": "x", "size": "99999x16"}'
expect_http "n too large" 400 '"param":"n"' "${post[@]}" -d '{"prompt": "x", "n": 5}'
expect_http "n not an integer" 400 '"param":"n","code":"invalid_type"' "${post[@]}" -d '{"prompt": "x", "n": "2"}'
expect_http "n fractional" 400 '"param":"n"' "${post[@]}" -d '{"prompt": "x", "n": 1.5}'
expect_http "negative seed" 400 '"param":"seed"' "${post[@]}" -d '{"prompt": "x", "seed": -1}'
expect_http "steps of the wrong type" 400 '"param":"num_inference_steps"' "${post[@]}" -d '{"prompt": "x", "num_inference_steps": [2]}'
expect_http "guidance of the wrong type" 400 '"param":"guidance_scale"' "${post[@]}" -d '{"prompt": "x", "guidance_scale": "high"}'
expect_http "unknown response format" 400 '"param":"response_format"' "${post[@]}" -d '{"prompt": "x", "response_format": "jpeg"}'
expect_http "unknown field" 400 '"code":"unknown_parameter"' "${post[@]}" -d '{"prompt": "x", "colour": "red"}'
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
expect_http "metrics after the load" 200 'moedit_serve_step_seconds_count' "$url/metrics"

# 5. a failure inside one request: 500 for it, the server goes on
folder=$(ls -d "$work"/moedit-serve-* | head -1)
rm -rf "$folder"
expect_http "a request that fails inside (its folder removed)" 500 '"type":"server_error"' "${post[@]}" -d '{"prompt": "x", "seed": 1}'
mkdir "$folder"
expect_http "the next request after a failure" 200 '"b64_json"' "${post[@]}" -d '{"prompt": "x", "seed": 1}'
expect_http "health after a failure" 200 '"status":"ok"' "$url/health"
stop_server

# 6. a full queue: 429. Four slow requests 50 ms apart: one runs, one waits,
# the others find the queue full (each takes far longer than the 150 ms).
start_server "$work/queue.log" "$moedit" serve --model "$model" "${settings[@]}" --max-queue 1 || finish cli_serve
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
rank0=$(grep -o 'pid [0-9]*' "$log2" | head -1 | cut -d' ' -f2)
kill -TERM "$rank0"
wait "$server"
status=$?
[ "$status" -eq 0 ] && echo "ok   2 ranks: SIGTERM to rank 0, every rank exits 0" || fail "2 ranks: exit $status: $(tail -3 "$log2")"
finish cli_serve
