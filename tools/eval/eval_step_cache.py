"""The step cache's quality/speed curve on a moedit model (docs/step-cache.md).

For each setting (a name and moedit generate's cache flags; "none" first, the
reference) and each step count: the README prompt at --size, timed end to end
(`--repeats` runs, the median wall time of the process and of moedit's own
phases), the steps computed and the transformer FLOPs the cached ones skipped
(from --json), and the PSNR of the picture against the uncached one; then,
with --adherence N, tools/eval/eval_adherence.py on its first N held-out
prompts with the same flags (all-criteria rate and colors).

    python3 tools/eval/eval_step_cache.py --moedit build/moedit \\
        --judge build/tests/test_demo_adherence --model models/demo --steps 20 50 --adherence 60 --out /tmp/sc

Prints a markdown table and writes OUT/results.json. Needs numpy and Pillow.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image

PROMPT = "a red circle on a blue background"

# name, flags (the defaults of moedit are in include/moedit.h's MOEDIT_CACHE_*)
SETTINGS = [
    ("none", ""),
    ("block F1B1 t0.2 w3 m3", "--cache block --cache-first-blocks 1 --cache-last-blocks 1 --cache-threshold 0.2 "
                               "--cache-warmup 3 --cache-max-consecutive 3"),
    ("block F1B0 t0.3 w3 m4", "--cache block --cache-first-blocks 1 --cache-last-blocks 0 --cache-threshold 0.3 "
                               "--cache-warmup 3 --cache-max-consecutive 4"),
    ("taylor1 F1B1 t0.2 w3 m3", "--cache taylor --cache-taylor-order 1 --cache-first-blocks 1 --cache-last-blocks 1 "
                                 "--cache-threshold 0.2 --cache-warmup 3 --cache-max-consecutive 3"),
    ("taylor1 F1B0 t0.3 w3 m4", "--cache taylor --cache-taylor-order 1 --cache-first-blocks 1 --cache-last-blocks 0 "
                                 "--cache-threshold 0.3 --cache-warmup 3 --cache-max-consecutive 4"),
    ("taylor2 F1B0 t0.3 w3 m4", "--cache taylor --cache-taylor-order 2 --cache-first-blocks 1 --cache-last-blocks 0 "
                                 "--cache-threshold 0.3 --cache-warmup 3 --cache-max-consecutive 4"),
    ("taylor1 F1B0 t0.5 w2 m6", "--cache taylor --cache-taylor-order 1 --cache-first-blocks 1 --cache-last-blocks 0 "
                                 "--cache-threshold 0.5 --cache-warmup 2 --cache-max-consecutive 6"),
]


def run_once(args, steps, flags, path):
    cmd = [args.moedit, "generate", "--model", args.model, "--prompt", PROMPT, "--height", str(args.size), "--width",
           str(args.size), "--num-inference-steps", str(steps), "--seed", "0", "--output", path, "--quiet", "--json",
           "--overwrite"] + flags.split()
    start = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.time() - start
    return wall, json.loads(out.strip().splitlines()[-1])


def psnr(a_path, b_path):
    a = np.asarray(Image.open(a_path).convert("RGB"), dtype=np.float64)
    b = np.asarray(Image.open(b_path).convert("RGB"), dtype=np.float64)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def adherence(args, steps, name, flags):
    out = os.path.join(args.out, f"adherence-{steps}-{name.replace(' ', '_')}")
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "eval_adherence.py"), "--moedit",
           args.moedit, "--judge", args.judge, "--model", args.model, "--out", out, "--count", str(args.adherence),
           "--steps", str(steps), "--moedit-args=" + (flags + " --overwrite").strip()]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)["all"]
    return {"all_correct": r["all_correct_rate"], "color": r["color"][2], "position": r["position"][2]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", default="build/moedit")
    ap.add_argument("--judge", default="build/tests/test_demo_adherence")
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--out", default="/tmp/moedit-step-cache")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, nargs="+", default=[20, 50])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--adherence", type=int, default=0, help="held-out prompts of the adherence eval (0: none)")
    ap.add_argument("--only", nargs="*", help="names of the settings to run (none always runs)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    settings = [s for s in SETTINGS if s[0] == "none" or not args.only or s[0] in args.only]
    results = []
    for steps in args.steps:
        reference = None
        for name, flags in settings:
            path = os.path.join(args.out, f"{steps}-{name.replace(' ', '_')}.png")
            walls, totals, result = [], [], None
            for _ in range(args.repeats):  # interleaving would be fairer; a busy machine drifts slowly
                wall, result = run_once(args, steps, flags, path)
                walls.append(wall)
                totals.append(result["seconds"]["total"])
            cache = result.get("cache", {})
            row = {"steps": steps, "setting": name, "flags": flags, "wall_s": statistics.median(walls),
                   "total_s": statistics.median(totals), "computed": cache.get("computed", steps),
                   "flops_saved": cache.get("transformer_flops_saved", 0.0),
                   "residual_bytes": cache.get("residual_bytes", 0)}
            if reference is None:
                reference = (path, row)
            row["speedup"] = reference[1]["wall_s"] / row["wall_s"]
            row["psnr_db"] = psnr(reference[0], path)
            if args.adherence:
                row["adherence"] = adherence(args, steps, name, flags)
            results.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print("\n| steps | setting | computed | transformer FLOPs saved | wall s | speedup | PSNR dB | all correct | colors |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        a = r.get("adherence", {})
        fmt = lambda v: f"{100 * v:.1f}%" if isinstance(v, float) else "-"
        print(f"| {r['steps']} | {r['setting']} | {r['computed']}/{r['steps']} | {100 * r['flops_saved']:.0f}% | "
              f"{r['wall_s']:.2f} | {r['speedup']:.2f}x | {r['psnr_db']:.1f} | {fmt(a.get('all_correct'))} | "
              f"{fmt(a.get('color'))} |")


if __name__ == "__main__":
    main()
