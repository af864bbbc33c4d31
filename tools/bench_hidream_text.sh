#!/usr/bin/env bash
# Issue 29 item 6 in one GPU run: HiDream-I1's text encoders and the whole pipeline, moedit
# against transformers/diffusers, every component with random weights at the HiDream-I1-Full
# shape (tools/make_hidream_shape_model.py; the real weights are tens of GB: same shapes, same
# time and memory).
#   tools/bench_hidream_text.sh MOEDIT_BINARY SHAPE_DIR OUT_DIR [WHEEL_DIR]
# SHAPE_DIR is made here when missing. WHEEL_DIR (optional): wheels of diffusers 0.42.1 and what
# it needs beyond torch + transformers, installed into /tmp/site (huggingface_hub only when the
# machine's is older than diffusers needs); WHEEL_DIR/lib, when present, goes on LD_LIBRARY_PATH.
# Steps, each under its own time limit (the whole run stays under 9 minutes):
#   1. moedit bench-text: CLIP-L, CLIP-G, T5-XXL, Llama-3.1-8B over the prompt and the negative
#      prompt (128 tokens each), kept loaded, 2 warm-up passes + 5 timed -> moedit_text.json
#   2. tools/bench_text_encoders.py: the same in transformers, bf16      -> transformers_text.json
#   3. moedit generate --random-weights, 1024x1024, 50 steps, guidance 5, CFG: prompt to PNG in
#      a cold process (making every random weight included)              -> moedit_e2e.json
#   4. tools/bench_hidream_e2e.py: diffusers' HiDreamImagePipeline, all components resident,
#      one warm-up call, then prompt to PNG timed                        -> diffusers_e2e.json
#   5. when time is left: moedit bench, the same pipeline after a warm-up run in the same process
#      (diffusers' footing)                                              -> moedit_bench_e2e.json
#   6. summary.json: the ratios (targets: encoders >= 1.5x, end to end >= 1.3x) and peak memory.
# GPU memory of steps 3 and 4 is also sampled with nvidia-smi every 100 ms (*_smi_mib.txt):
# the same yardstick for both programs (CUDA context and allocator caches included).
set -u
[ $# -ge 3 ] || { echo "usage: $0 MOEDIT_BINARY SHAPE_DIR OUT_DIR [WHEEL_DIR]" >&2; exit 2; }
moedit=$1
shape=$2
out=$3
wheels=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# The two 1024x1024 PNGs (random weights: noise, a few MB each) stay out of OUT_DIR.
png=${PNG_DIR:-/tmp/hidream_bench_png}
mkdir -p "$png"
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
prompt='A cat holding a sign that says "Hi-Dreams.ai".'
budget=${BUDGET_SECONDS:-530}
# For a dry run on the CPU with a --scale tiny folder: DEVICE=cpu SIZE=64 STEPS=2 WARMUP_STEPS=0.
device=${DEVICE:-cuda}
size=${SIZE:-1024}
steps=${STEPS:-50}
SECONDS=0

log() { echo "[$(printf '%4d' "$SECONDS") s] $*" | tee -a "$out/progress.txt"; }
# The limit of a step: its own cap, or what is left of the budget (less 10 s), whichever is less.
limit() { local left=$((budget - SECONDS - 10)); [ "$1" -lt "$left" ] && echo "$1" || echo $((left > 1 ? left : 1)); }
sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null & echo $!; }
max_of() { sort -n "$1" 2>/dev/null | tail -1; }

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$out/gpu.txt" 2>&1
log "GPU: $(tail -1 "$out/gpu.txt")"
[ -d "$shape/text_encoder_4" ] || python3 "$here/make_hidream_shape_model.py" "$shape" | tee -a "$out/progress.txt"

if [ -n "$wheels" ]; then
  # WHEEL_DIR/lib: shared libraries the machine may lack (the tokenizers' libpcre2-8, libutf8proc).
  [ -d "$wheels/lib" ] && export LD_LIBRARY_PATH=$(cd "$wheels/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  site=/tmp/site
  mkdir -p "$site"
  hub_ok=$(python3 -c 'import huggingface_hub as h; from packaging.version import Version as V; print(int(V(h.__version__) >= V("1.32")))' 2>/dev/null || echo 0)
  for w in "$wheels"/*.whl; do
    case "$(basename "$w")" in huggingface_hub-*) [ "$hub_ok" = 1 ] && continue ;; esac
    python3 -m pip install -q --no-index --no-deps --target "$site" "$w" 2>&1 | tail -2
  done
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
ldd "$moedit" 2>&1 | grep -i "not found" | tee -a "$out/progress.txt"
python3 -c 'import torch, transformers, diffusers, huggingface_hub; print("torch", torch.__version__, "transformers", transformers.__version__, "diffusers", diffusers.__version__, "hub", huggingface_hub.__version__)' 2>&1 | tail -1 | tee -a "$out/progress.txt"

log "1/5 moedit bench-text"
timeout "$(limit 120)" "$moedit" bench-text --model "$shape" --random-weights --device "$device" --prompt "$prompt" \
  --negative-prompt "" --warmup 2 --iterations 5 --json >"$out/moedit_text.json" 2>"$out/moedit_text.err"
log "    exit $? $(head -c 600 "$out/moedit_text.json") $(tail -2 "$out/moedit_text.err")"

log "2/5 transformers text encoders"
timeout "$(limit 150)" python3 "$here/bench_text_encoders.py" --model "$shape" --device "$device" --prompt "$prompt" --negative-prompt "" \
  --warmup 2 --iterations 5 --out "$out/transformers_text.json" >/dev/null 2>"$out/transformers_text.err"
log "    exit $? $(grep -h 'ms per pass' "$out/transformers_text.err" | tr '\n' ';') $(grep -iE 'error|Traceback' "$out/transformers_text.err" | tail -2)"

log "3/5 moedit generate ${size}x${size}, $steps steps, CFG 5"
smi=$(sample_memory "$out/moedit_e2e_smi_mib.txt")
start=$(date +%s.%N)
timeout "$(limit 200)" "$moedit" generate --model "$shape" --random-weights --device "$device" --prompt "$prompt" \
  --negative-prompt "" --height "$size" --width "$size" --num-inference-steps "$steps" --guidance-scale 5 \
  --output "$png/moedit_e2e.png" --json --quiet >"$out/moedit_e2e.json" 2>"$out/moedit_e2e.err"
status=$?
awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "{\"process_wall_seconds\": %.3f}\n", b - a }' >"$out/moedit_e2e_wall.json"
kill "$smi" 2>/dev/null
log "    exit $status $(cat "$out/moedit_e2e.json") wall $(cat "$out/moedit_e2e_wall.json") smi max $(max_of "$out/moedit_e2e_smi_mib.txt") MiB $(tail -2 "$out/moedit_e2e.err")"

log "4/5 diffusers HiDreamImagePipeline ${size}x${size}, $steps steps, CFG 5"
smi=$(sample_memory "$out/diffusers_e2e_smi_mib.txt")
timeout "$(limit 300)" python3 "$here/bench_hidream_e2e.py" --model "$shape" --device "$device" --prompt "$prompt" \
  --negative-prompt "" --height "$size" --width "$size" --steps "$steps" --guidance 5 --warmup-steps "${WARMUP_STEPS:-2}" --output "$png/diffusers_e2e.png" \
  --out "$out/diffusers_e2e.json" >/dev/null 2>"$out/diffusers_e2e.err"
status=$?
kill "$smi" 2>/dev/null
log "    exit $status $(cat "$out/diffusers_e2e.json" 2>/dev/null | head -c 700) smi max $(max_of "$out/diffusers_e2e_smi_mib.txt") MiB $(grep -iE 'error|Traceback' "$out/diffusers_e2e.err" | tail -2)"

# 5. (when 100 s are left) moedit warm, as diffusers' figure is: moedit bench runs the pipeline
# (the same code as generate) after an untimed 2-step run in the same process, twice (its serial
# reference, then the serial layout); its encoders are still made per run (not kept).
if [ $((budget - SECONDS)) -ge 100 ]; then
  log "5/5 moedit bench (warm process) ${size}x${size}, $steps steps, CFG 5"
  timeout "$(limit 200)" "$moedit" bench --model "$shape" --random-weights --device "$device" --prompt "$prompt" \
    --height "$size" --width "$size" --num-inference-steps "$steps" --guidance-scale 5 --warmup-steps 2 \
    --layouts serial --comm-timing off --quiet --json "$out/moedit_bench_e2e.json" >"$out/moedit_bench_e2e.txt" \
    2>"$out/moedit_bench_e2e.err"
  log "    exit $? $(grep -A3 '| serial' "$out/moedit_bench_e2e.txt" | head -3 | cut -c1-300) $(tail -2 "$out/moedit_bench_e2e.err")"
else
  log "5/5 skipped (less than 100 s left)"
fi

python3 - "$out" <<'PY' | tee "$out/summary.json"
import json, os, sys
out = sys.argv[1]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception as e:  # a step that failed: its figures are absent
        return {"missing": str(e)}
def smi_max(name):
    try:
        with open(os.path.join(out, name)) as f:
            return max(int(x) for x in f.read().split() if x.strip().isdigit())
    except Exception:
        return None
m_text, t_text = load("moedit_text.json"), load("transformers_text.json")
m_e2e, d_e2e, wall = load("moedit_e2e.json"), load("diffusers_e2e.json"), load("moedit_e2e_wall.json")
s = {"encoders": {}, "targets": {"encoders_total": 1.5, "end_to_end": 1.3}}
for k in ("clip_l", "clip_g", "t5", "llama"):
    m = m_text.get("encoders", {}).get(k, {}).get("ms_median")
    t = t_text.get("encoders", {}).get(k, {}).get("ms_median")
    s["encoders"][k] = {"moedit_ms": m, "transformers_ms": t,
                        "speedup": round(t / m, 3) if m and t else None,
                        "moedit_peak_bytes": m_text.get("encoders", {}).get(k, {}).get("peak_bytes"),
                        "transformers_peak_bytes": t_text.get("encoders", {}).get(k, {}).get("peak_bytes")}
mt, tt = m_text.get("total_ms_median"), t_text.get("total_ms_median")
s["encoders_total"] = {"moedit_ms": mt, "transformers_ms": tt, "speedup": round(tt / mt, 3) if mt and tt else None}
sec = m_e2e.get("seconds", {})
moedit_run = sec["total"] - sec["load"] if "total" in sec else None
d = d_e2e.get("prompt_to_png_seconds")
s["end_to_end"] = {
    "moedit_prompt_to_png_seconds": round(moedit_run, 3) if moedit_run else None,
    "moedit_seconds": sec, "moedit_process_wall_seconds": wall.get("process_wall_seconds"),
    "moedit_text_encoders": m_e2e.get("text_encoders"),
    "diffusers_prompt_to_png_seconds": d,
    "diffusers_build_seconds": d_e2e.get("build_seconds"),
    "speedup": round(d / moedit_run, 3) if d and moedit_run else None,
    "speedup_moedit_whole_process": round(d / sec["total"], 3) if d and sec.get("total") else None,
    "moedit_peak_smi_mib": smi_max("moedit_e2e_smi_mib.txt"),
    "diffusers_peak_smi_mib": smi_max("diffusers_e2e_smi_mib.txt"),
    "diffusers_peak_allocated_bytes": d_e2e.get("peak_allocated_bytes"),
    "diffusers_peak_reserved_bytes": d_e2e.get("peak_reserved_bytes")}
# Making the encoders' random weights is inside moedit's end-to-end figures (diffusers' encoders
# are built before its timed call): bench-text's first pass less a timed pass estimates it.
making = [e.get("first_pass_seconds", 0) - e.get("ms_median", 0) / 1e3 for e in m_text.get("encoders", {}).values()]
if making and moedit_run:
    s["end_to_end"]["moedit_encoder_weight_making_seconds_estimate"] = round(sum(making), 3)
    s["end_to_end"]["speedup_without_encoder_weight_making_estimate"] = round(d / (moedit_run - sum(making)), 3) if d else None
try:
    with open(os.path.join(out, "moedit_bench_e2e.json")) as f:
        bench = json.load(f)
    ref = next(l for l in bench["layouts"] if l.get("reference"))
    warm = ref["seconds"]["end_to_end"]
    s["end_to_end"].update(moedit_warm_seconds=ref["seconds"], moedit_warm_step_ms=ref.get("step_ms"),
                           moedit_warm_memory_mib=ref.get("memory_mib"),
                           speedup_warm=round(d / warm, 3) if d and warm else None)
except Exception as e:
    s["end_to_end"]["moedit_warm"] = f"absent: {e}"
s["gpu"] = t_text.get("gpu") or d_e2e.get("gpu")
print(json.dumps(s, indent=1))
PY
log "done"
