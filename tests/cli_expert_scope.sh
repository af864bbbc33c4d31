#!/usr/bin/env bash
# Expert parallelism over the world (--expert-parallel-scope world, DP2EP):
# 1. bad input is one "moedit: error:" line on every rank count: a scope
#    that is neither branch nor world, a scope without EP, EP on a dense
#    transformer, experts that do not divide over the world (4 over 3 ranks),
#    images that do not divide over dp replicas sharing experts, and a step
#    cache whose replicas would decide apart;
# 2. cfg2 over two ranks with world scope writes the image, its layout named
#    in the PNG as "cfg2 +EP(world)";
# 3. moedit bench on two ranks: cfg2+epw and dp2+epw run (no longer "EP over
#    one rank") and hold half the expert weights per rank of cfg2 and dp2.
# usage: cli_expert_scope.sh MOEDIT FIXTURES
source "$(dirname "$0")/common_cli.sh"
export OMP_NUM_THREADS=1
tiny=("$moedit" generate --model "$model" --prompt "a red circle" --height 64 --width 64 --num-inference-steps 1)
world=(--enable-expert-parallel --expert-parallel-scope world)

# expect_mpi_error NAME RANKS NEEDLE ARGS...: under mpirun, exactly one
# "moedit: error:" line, containing NEEDLE, and a failed exit.
expect_mpi_error() {
  local name=$1 ranks=$2 needle=$3
  shift 3
  mpirun --allow-run-as-root --oversubscribe -np "$ranks" "$@" >/dev/null 2>"$work/err"
  local status=$?
  if [ "$status" -ne 0 ] && [ "$(grep -c '^moedit: error' "$work/err")" = 1 ] &&
     grep -q "^moedit: error: .*$needle" "$work/err"; then
    echo "ok   $name: $(grep '^moedit: error' "$work/err")"
  else
    fail "$name: exit $status: $(cat "$work/err")"
  fi
}

# 1. Bad input.
expect_error "a scope that is neither" "'wide' is not branch or world" \
  "${tiny[@]}" --enable-expert-parallel --expert-parallel-scope wide --output "$work/a.png"
# On 2 ranks without layout flags too: the error alone, no note of the default layout before it.
mpirun --allow-run-as-root --oversubscribe -np 2 "${tiny[@]}" --enable-expert-parallel --expert-parallel-scope wide \
  --output "$work/a.png" >/dev/null 2>"$work/err" && fail "a scope that is neither, two ranks: exit 0"
[ "$(grep -c '^moedit:' "$work/err")" = 1 ] && grep -q "^moedit: error: .*'wide' is not branch or world" "$work/err" &&
  echo "ok   a scope that is neither, two ranks: one line" || fail "a scope that is neither, two ranks: $(cat "$work/err")"
expect_error "a scope without EP" "--expert-parallel-scope world needs --enable-expert-parallel" \
  "${tiny[@]}" --expert-parallel-scope world --output "$work/a.png"
cp -r "$model" "$work/dense"
python3 - "$work/dense/transformer/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["num_routed_experts"] = 0; json.dump(c, open(sys.argv[1], "w"))
PY
expect_mpi_error "world EP on a dense transformer, two ranks" 2 "the transformer is dense" \
  "$moedit" generate --model "$work/dense" --prompt x --height 64 --width 64 --cfg-parallel-size 2 "${world[@]}" \
  --output "$work/d.png"
expect_mpi_error "4 experts over a world of 3" 3 "4 routed experts do not divide over the 3 rank(s) of the expert-parallel group (--expert-parallel-scope world" \
  "${tiny[@]}" --data-parallel-size 3 --num-images-per-prompt 3 "${world[@]}" --output "$work/e.png"
expect_mpi_error "3 images over 2 replicas sharing experts" 2 "3 image(s) do not divide over the replicas" \
  "${tiny[@]}" --data-parallel-size 2 --num-images-per-prompt 3 "${world[@]}" --output "$work/f.png"
expect_mpi_error "a step cache deciding per replica" 2 "each replica would skip blocks on steps of its own" \
  "${tiny[@]}" --data-parallel-size 2 --num-images-per-prompt 2 "${world[@]}" --cache block --output "$work/g.png"
expect_mpi_error "serve with replicas sharing experts" 2 "serve: --expert-parallel-scope world with --data-parallel-size 2" \
  timeout 60 "$moedit" serve --model "$model" --port 0 --data-parallel-size 2 "${world[@]}"
ls "$work" | grep -q '\.png$' && fail "a refused run left a PNG: $(ls "$work")"

# 2. cfg2 with the experts over both branches.
if mpirun --allow-run-as-root --oversubscribe -np 2 "${tiny[@]}" --cfg-parallel-size 2 "${world[@]}" --seed 1 \
     --output "$work/cfg.png" --quiet 2>"$work/err" >/dev/null; then
  layout=$(python3 - "$work/cfg.png" <<'PY'
import struct, sys
data, at = open(sys.argv[1], "rb").read(), 8
while at < len(data):
    n, kind = struct.unpack(">I4s", data[at:at + 8])
    if kind == b"tEXt":
        key, _, value = data[at + 8:at + 8 + n].partition(b"\0")
        if key == b"parallel_layout": print(value.decode())
    at += 12 + n
PY
)
  [ "$layout" = "cfg2 +EP(world)" ] && echo "ok   cfg2 +EP(world) wrote its image" || fail "cfg2 world layout: '$layout'"
else
  fail "cfg2 world: $(cat "$work/err")"
fi

# 3. The bench: the experts per rank halve.
mpirun --allow-run-as-root --oversubscribe -np 2 "$moedit" bench --model "$model" --layouts cfg2,cfg2+epw,dp2,dp2+epw \
  --height 64 --width 64 --num-inference-steps 2 --json-output "$work/bench.json" >/dev/null 2>"$work/err" ||
  fail "bench: $(cat "$work/err")"
python3 - "$work/bench.json" <<'PY' && echo "ok   bench: cfg2+epw and dp2+epw hold half the expert weights of cfg2 and dp2" || fail "bench expert weights"
import json, sys
layouts = {l["name"]: l for l in json.load(open(sys.argv[1]))["layouts"]}
for plain, wide in (("cfg2", "cfg2+epw"), ("dp2", "dp2+epw")):
    a, b = layouts[plain], layouts[wide]
    assert a["status"] == "ok" and b["status"] == "ok", (a["status"], b["status"], b.get("reason"))
    assert b["degrees"]["expert_scope"] == "world" and b["check"]["correct"]
    full, half = a["memory_mib"]["expert_weights_max"], b["memory_mib"]["expert_weights_max"]
    print(f"     {plain}: {full} MiB of experts per rank, {wide}: {half}")
    assert full > 0 and abs(half - full / 2) < 1e-6, (full, half)
PY
finish cli_expert_scope
