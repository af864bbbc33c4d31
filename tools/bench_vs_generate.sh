#!/usr/bin/env bash
# Issue 7's agreement check on GPUs: a bench run's figures for a layout
# against standalone `moedit generate` runs of the same layout, model, size,
# steps and prompt embeddings (the bench's random ones, kept by --work-dir).
#   tools/bench_vs_generate.sh MOEDIT OUT_DIR [SIZE] [LAYOUTS] [RANKS] [STEPS] [RUNS]
# Defaults: 1024, serial, 1 rank, 8 steps, 2 standalone runs a layout. LAYOUTS
# uses the bench's names (serial, tp2, ulysses2, cfg2:vae2, tp2+ep, ...); a
# layout of fewer ranks than RANKS runs on the first ones in both. The table
# (OUT_DIR/agreement.md) sets the bench's step median against two standalone
# figures: the denoise time over its steps, which includes the first step's
# one-time costs (cuDNN plans, product heuristics: the bench warms up,
# generate does not), and the steady step, (denoise of 2 x STEPS steps -
# denoise of STEPS) / STEPS, from a run of each length, where those costs
# cancel. Then the bench's text + denoise + decode against generate's (its
# STEPS-step runs). MPI_ARGS adds mpirun options.
set -u
[ $# -ge 2 ] || { echo "usage: $0 MOEDIT OUT_DIR [SIZE] [LAYOUTS] [RANKS] [STEPS] [RUNS]" >&2; exit 2; }
moedit=$1
out=$2
size=${3:-1024}
layouts=${4:-serial}
ranks=${5:-1}
steps=${6:-8}
runs=${7:-2}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
model=$(mktemp -d)
trap 'rm -rf "$model"' EXIT
tools/bench_model.sh "$model" "$size" "$out/diffusers_vae.jsonl" || exit 1
launch() { # RANKS COMMAND...
  local ranks=$1
  shift
  mpirun --allow-run-as-root -np "$ranks" ${MPI_ARGS:-} -x NCCL_NVLS_ENABLE -x LD_LIBRARY_PATH "$@"
}
launch "$ranks" "$moedit" bench --model "$model" --random-weights --device cuda --height "$size" --width "$size" \
  --num-inference-steps "$steps" --layouts "$layouts" --work-dir "$out/work" --json "$out/bench.json" \
  >"$out/bench.log" 2>&1 || { echo "bench failed: $(tail -1 "$out/bench.log")"; exit 1; }

# generate's options for a bench layout name: TERM[xTERM...][+ep][:vaeK].
layout_options() {
  local name=$1 terms term
  case $name in *:vae*) echo -n "--vae-patch-parallel-size ${name##*:vae} "; name=${name%%:vae*} ;; esac
  case $name in *+ep) echo -n "--enable-expert-parallel "; name=${name%+ep} ;; esac
  [ "$name" = serial ] && return
  IFS=x read -ra terms <<<"$name"
  for term in "${terms[@]}"; do
    case $term in
    tp*) echo -n "--tensor-parallel-size ${term#tp} " ;;
    ulysses*) echo -n "--ulysses-degree ${term#ulysses} " ;;
    ring*) echo -n "--ring-degree ${term#ring} " ;;
    cfg*) echo -n "--cfg-parallel-size ${term#cfg} " ;;
    dp*) echo -n "--data-parallel-size ${term#dp} " ;;
    esac
  done
}

layout_ranks() { # ranks a layout uses: the product of its degrees
  local name=${1%%:vae*} n=1 terms term
  name=${name%+ep}
  [ "$name" = serial ] && { echo 1; return; }
  IFS=x read -ra terms <<<"$name"
  for term in "${terms[@]}"; do n=$((n * ${term//[a-z]/})); done
  echo $n
}

# The layouts the bench ran (a skipped or failed one has no figures to check).
ran=$(python3 -c 'import json, sys
for l in json.load(open(sys.argv[1]))["layouts"]:
    if l["status"] in ("ok", "wrong", "reference"): print(l["name"])
    else: print(l["name"] + ": " + l["status"] + " in the bench, not checked", file=sys.stderr)' "$out/bench.json")
IFS=, read -ra asked <<<"$layouts"
names=()
for name in "${asked[@]}"; do grep -qx -- "$name" <<<"$ran" && names+=("$name"); done
[ ${#names[@]} -gt 0 ] || { echo "no layout of $layouts ran in the bench"; exit 1; }
for name in "${names[@]}"; do
  for run in $(seq "$runs"); do
    for n in "$steps" $((2 * steps)); do
      launch "$(layout_ranks "$name")" "$moedit" generate --model "$model" --random-weights --device cuda --height "$size" --width "$size" \
        --num-inference-steps "$n" --prompt-embeds "$out/work/random_embeds.safetensors" \
        $(layout_options "$name") --quiet --json --overwrite --output "$out/generate.png" >>"$out/generate_${name}_$n.jsonl" \
        2>>"$out/generate.log" || { echo "generate $name failed: $(tail -1 "$out/generate.log")"; exit 1; }
    done
  done
done
python3 - "$out" "$steps" "${names[@]}" <<'PY'
import json, sys
out, steps, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
bench = {l["name"]: l for l in json.load(open(f"{out}/bench.json"))["layouts"]}
rows = ["| layout | bench step ms (median) | standalone denoise / steps, ms | standalone steady step, ms "
        "| bench text + denoise + decode s | standalone text + denoise + decode s |", "|---|---|---|---|---|---|"]
def runs(name, n):
    return [json.loads(line)["seconds"] for line in open(f"{out}/generate_{name}_{n}.jsonl") if line.strip()]
for name in names:
    b, short, long = bench[name], runs(name, steps), runs(name, 2 * steps)
    per_step = ", ".join(f"{1000 * r['denoise'] / steps:.1f}" for r in short)
    steady = ", ".join(f"{1000 * (l['denoise'] - r['denoise']) / steps:.1f}" for r, l in zip(short, long))
    total = ", ".join(f"{r['text'] + r['denoise'] + r['decode']:.3f}" for r in short)
    s = b["seconds"]
    rows.append(f"| {name} | {b['step_ms']['median']:.1f} | {per_step} | {steady} | "
                f"{s['text'] + s['denoise'] + s['vae_decode']:.3f} | {total} |")
open(f"{out}/agreement.md", "w").write("\n".join(rows) + "\n")
print("\n".join(rows))
PY
