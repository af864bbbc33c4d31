#!/usr/bin/env bash
# moedit serve on 2 ranks (cfg2, models/tiny-random) when a rank goes away,
# with MOEDIT_COLLECTIVE_TIMEOUT=4:
# 1. rank 1 stopped (SIGSTOP: hung) while a long request runs: the request
#    is answered 500 naming rank 1, and the server ends: one "moedit: error:"
#    line naming rank 1 and "the server stops", every rank gone (the stopped
#    one too: rank 0 aborts the job), well within the test's limit;
# 2. rank 1 stopped while the server idles, then a request: the same (rank
#    0's broadcast of the request and its run wait at most the timeout; the
#    idle ranks' own wait has no limit, by design);
# 3. rank 1 killed (kill -9) while a request runs: no hang, every rank gone
#    (Open MPI's mpirun ends the job), the client gets no 200;
# 4. a tensor-parallel group across (posed) hosts: one warning, as moedit
#    generate gives; served, SIGTERM: exit 0.
# After each case no image folder of the ranks (moedit-serve-*) is left, but
# for the one tree of a job that mpirun ends with SIGKILL (case 3).
# The ranks are found by a tag in their environment (MOEDIT_TEST_TAG): ctest
# runs other mpirun tests beside this one.
# usage: cli_serve_faults.sh MOEDIT FIXTURES
. "$(dirname "$0")/common_cli.sh"
export MOEDIT_COLLECTIVE_TIMEOUT=4
# The ranks' image folders (moedit-serve-*) go here, to be counted after each case.
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"

# rank_pid N: the pid of world rank N of this case's server.
rank_pid() {
  tagged_pids "$1" | head -1 | grep .
}

# folders_left NAME [ALLOWED]: fails when more than ALLOWED (default 0)
# image folders are left behind (rank 1's lies inside rank 0's: one tree).
folders_left() {
  local left count
  left=$(ls -d "$TMPDIR"/moedit-serve-* 2>/dev/null | tr '\n' ' ')
  count=$(echo "$left" | wc -w)
  if [ "$count" -le "${2:-0}" ]; then
    echo "ok   $1: $count image folder trees left behind (${2:-0} allowed)"
  else
    fail "$1: image folders left behind: $left"
  fi
  rm -rf "$TMPDIR"/moedit-serve-*
}

# survivors: the pids of this case's ranks still there (after which they are killed).
survivors() {
  local pid left
  left=$(tagged_pids | tr '\n' ' ')
  for pid in $left; do kill -KILL "$pid" 2>/dev/null; done
  echo "$left"
}

# start NAME: the server under mpirun (pid in $launcher, rank 1's in $rank1, $url).
start() {
  export MOEDIT_TEST_TAG="cli_serve_faults-$$-$1"
  timeout 90 mpirun --allow-run-as-root --oversubscribe -x MOEDIT_COLLECTIVE_TIMEOUT -x MOEDIT_TEST_TAG -x TMPDIR -np 2 \
    "$moedit" serve --model "$model" --height 32 --width 32 --num-inference-steps 2 --cfg-parallel-size 2 --port 0 \
    >"$work/stdout" 2>"$work/stderr" &
  launcher=$!
  url="" rank1=""
  for _ in $(seq 600); do
    url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/stderr" | head -1)
    [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
    sleep 0.1
  done
  rank1=$(rank_pid 1)
  [ -n "$url" ] && [ -n "$rank1" ]
}

long='{"prompt": "long", "num_inference_steps": 1000, "size": "128x128", "n": 4}'

# stopped NAME WHEN: rank 1 stopped while a request runs (WHEN=running) or
# before one comes (idle): a 500 naming rank 1, one line, every rank gone.
stopped() {
  local name=$1 when=$2 code status ended left
  if ! start "$when"; then
    fail "$name: the server did not come up: $(cat "$work/stderr")"
    survivors >/dev/null
    return
  fi
  local began=$(date +%s)
  if [ "$when" = running ]; then
    curl -s -o "$work/body" -w '%{http_code}' -X POST "$url/v1/images/generations" -d "$long" >"$work/code" &
    sleep 1.5
    kill -STOP "$rank1"
  else
    kill -STOP "$rank1"
    curl -s -o "$work/body" -w '%{http_code}' -X POST "$url/v1/images/generations" -d '{"prompt": "x"}' >"$work/code" &
  fi
  local client=$!
  wait "$launcher"
  status=$?
  ended=$(($(date +%s) - began))
  wait "$client"
  code=$(cat "$work/code")
  left=$(survivors)
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ]; then
    fail "$name: mpirun exit $status (124: a rank hung): $(cat "$work/stderr")"
  elif [ "$code" != 500 ] || ! grep -q '"message":"the image could not be made: rank 1 did not reach' "$work/body"; then
    fail "$name: the request got $code: $(head -c 300 "$work/body")"
  elif [ "$(grep -c '^moedit: error' "$work/stderr")" -ne 1 ] ||
       ! grep -q "^moedit: error: .*serve: rank 1 did not reach .* within 4 s.*the server stops$" "$work/stderr"; then
    fail "$name: expected one line naming rank 1: $(cat "$work/stderr")"
  elif [ -n "$left" ]; then
    fail "$name: ranks still running after mpirun ended:$left"
  else
    echo "ok   $name: 500 for the request, every rank gone $ended s after the stop: $(grep '^moedit: error' "$work/stderr")"
  fi
}

stopped "rank 1 stopped while a request runs" running
folders_left "rank 1 stopped while a request runs"
stopped "rank 1 stopped while the server idles, then a request" idle
folders_left "rank 1 stopped while the server idles"

# 3. kill -9: Open MPI's mpirun ends the job (SIGTERM, then SIGKILL) at once.
if start killed; then
  curl -s -o "$work/body" -w '%{http_code}' -X POST "$url/v1/images/generations" -d "$long" >"$work/code" &
  client=$!
  sleep 1.5
  began=$(date +%s)
  kill -KILL "$rank1"
  wait "$launcher"
  status=$?
  ended=$(($(date +%s) - began))
  wait "$client"
  left=$(survivors)
  if [ "$status" -eq 0 ] || [ "$status" -eq 124 ] || [ -n "$left" ] || [ "$(cat "$work/code")" = 200 ]; then
    fail "rank 1 killed: mpirun exit $status, left:$left, request $(cat "$work/code"): $(cat "$work/stderr")"
  else
    echo "ok   rank 1 killed while a request runs: mpirun exit $status $ended s later, no rank left, the request got $(cat "$work/code")"
  fi
else
  fail "rank 1 killed: the server did not come up: $(cat "$work/stderr")"
  survivors >/dev/null
fi
# mpirun ends the job with SIGKILL, rank 0 too (it got SIGTERM first, but was
# running the request): no code of the server runs, and its one tree (rank 1's
# folder inside) stays (serve/serve_folder.h names this path).
folders_left "rank 1 killed" 1

# 4. A tensor-parallel group across hosts (two hosts of one rank posed by
# MOEDIT_HOST_ID_FOR_TESTS, Open MPI's MPMD form): serve warns once, as
# moedit generate does, and serves; SIGTERM ends it with status 0.
export MOEDIT_TEST_TAG="cli_serve_faults-$$-hosts"
serve=(serve --model "$model" --height 32 --width 32 --num-inference-steps 2 --tensor-parallel-size 2 --port 0)
timeout 90 mpirun --allow-run-as-root --oversubscribe -x MOEDIT_TEST_TAG -x TMPDIR \
  -np 1 -x MOEDIT_HOST_ID_FOR_TESTS=host-a "$moedit" "${serve[@]}" : \
  -np 1 -x MOEDIT_HOST_ID_FOR_TESTS=host-b "$moedit" "${serve[@]}" >"$work/stdout" 2>"$work/stderr" &
launcher=$!
url=""
for _ in $(seq 600); do
  url=$(grep -o 'http://127.0.0.1:[0-9]*' "$work/stderr" | head -1)
  [ -n "$url" ] && curl -sf "$url/health" >/dev/null && break
  sleep 0.1
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/v1/images/generations" -d '{"prompt": "x"}')
kill -TERM "$(rank_pid 0)"
wait "$launcher"
status=$?
warnings=$(grep -c "^moedit: warning: the tensor-parallel groups (tp 2 x ulysses 1 = 2 consecutive ranks) span hosts" \
  "$work/stderr")
if [ "$code" = 200 ] && [ "$status" -eq 0 ] && [ "$warnings" -eq 1 ] && [ "$(grep -c '^moedit: warning' "$work/stderr")" -eq 1 ]; then
  echo "ok   tp 2 across two hosts: one warning, the request 200, exit 0: $(grep '^moedit: warning' "$work/stderr" | cut -c1-120)..."
else
  fail "tp 2 across two hosts: request $code, exit $status, $warnings warnings: $(cat "$work/stderr")"
fi
survivors >/dev/null
folders_left "tp 2 across two hosts, stopped by SIGTERM"
finish cli_serve_faults
