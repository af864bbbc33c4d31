"""Prompt adherence of a moedit model on held-out prompts, judged from pixels.

The prompts are tools/eval/sets/prompts.jsonl (tools/eval/eval_sets.py: 72 single
objects with a named position and sometimes a size, 24 positioned pairs, 24 twins
"two red circles ...", every one holding a (color, shape, background) triple that
training never drew). moedit generates them (one process, --prompt-file); the pixel
judge of tests/test_demo_adherence.c (`test_demo_adherence --judge LIST`, the same
judge the ctest uses) names the background, the objects' colors, their cells on the
3 x 3 grid and their count; tools/eval/shape_judge.py names each object's shape.

    python3 tools/eval/eval_adherence.py --moedit build-cpu/moedit \
        --judge build-cpu/tests/test_demo_adherence --model models/demo --out /tmp/eval

Prints the rates (all prompts, singles, pairs, twins) and writes OUT/results.json and
OUT/verdicts.tsv. Needs numpy and Pillow (the shape judge) and tools/train/data.py.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

import eval_sets
import shape_judge

FIELDS = ("background", "color", "position", "count", "shape")


def generate(args, prompts):
    os.makedirs(args.out, exist_ok=True)
    prompt_file = os.path.join(args.out, "prompts.txt")
    with open(prompt_file, "w") as f:
        f.write("\n".join(prompts) + "\n")
    cmd = [args.moedit, "generate", "--model", args.model, "--prompt-file", prompt_file, "--height", str(args.size),
           "--width", str(args.size), "--num-inference-steps", str(args.steps), "--guidance-scale",
           str(args.guidance), "--seed", str(args.seed), "--output", os.path.join(args.out, "img.png"), "--quiet",
           "--json"] + args.moedit_args.split()
    start = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    seconds = time.time() - start
    result = json.loads(out.strip().splitlines()[-1])
    return result["files"], seconds, result.get("seconds", {})


def judge(args, files, entries):
    """The C judge's verdict on background, colors, positions and count, and the shape judge's on shapes."""
    listing = os.path.join(args.out, "list.tsv")
    with open(listing, "w") as f:
        for path, e in zip(files, entries):
            f.write(f"{path}\t{e['prompt']}\n")
    out = subprocess.run([args.judge, "--judge", listing], check=True, capture_output=True, text=True).stdout
    rows, lines = [], []
    for line, path, e in zip([l for l in out.splitlines() if not l.startswith("totals:")], files, entries):
        verdict, prompt, scores, seen = line.split("\t")
        counts = {k: tuple(map(int, re.search(k + r" (\d+)/(\d+)", scores).groups())) for k in FIELDS[:-1]}
        found = shape_judge.judge_named_objects(path, e["objects"])
        named = [o["shape"] for o in e["objects"]]
        counts["shape"] = (sum(f == n for f, n in zip(found, named)), len(named))
        ok = verdict == "ok" and counts["shape"][0] == counts["shape"][1]
        rows.append({"ok": ok, "prompt": prompt, "kind": e["kind"], "scores": counts, "seen": seen, "shapes": found})
        lines.append(f"{'ok' if ok else 'MISS'}\t{prompt}\t{scores} shape {counts['shape'][0]}/{counts['shape'][1]}"
                     f"\t{seen} shapes {','.join(found)}")
    with open(os.path.join(args.out, "verdicts.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return rows


def rates(rows):
    out = {"prompts": len(rows), "all_correct": sum(r["ok"] for r in rows)}
    for k in FIELDS:
        ok = sum(r["scores"][k][0] for r in rows)
        total = sum(r["scores"][k][1] for r in rows)
        out[k] = [ok, total, round(ok / total, 4) if total else None]
    out["all_correct_rate"] = round(out["all_correct"] / len(rows), 4) if rows else None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", default="build-cpu/moedit")
    ap.add_argument("--judge", default="build-cpu/tests/test_demo_adherence")
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--out", default="/tmp/moedit-eval")
    ap.add_argument("--count", type=int, default=120)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--judge-only", action="store_true", help="judge the pictures already in --out")
    ap.add_argument("--moedit-args", default="", help="more flags for moedit generate, e.g. \"--cache block\"")
    args = ap.parse_args()
    entries = eval_sets.load("prompts.jsonl")
    if not 1 <= args.count <= len(entries):
        ap.error(f"--count: 1 to {len(entries)} prompts")
    entries = entries[:args.count]
    prompts = [e["prompt"] for e in entries]
    if args.judge_only:
        files = [os.path.join(args.out, f"img-{i}.png") for i in range(len(prompts))]
        seconds, timing = None, {}
    else:
        files, seconds, timing = generate(args, prompts)
    rows = judge(args, files, entries)
    groups = {"all": rows}
    groups.update({kind + "s": [r for r in rows if r["kind"] == kind] for kind in ("single", "pair", "twin")})
    result = {"model": args.model, "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
              "size": args.size, "generate_seconds": seconds, "moedit_seconds": timing}
    result.update({name: rates(group) for name, group in groups.items() if group})
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    for name in groups:
        if name not in result:
            continue
        r = result[name]
        parts = " ".join(f"{k} {r[k][0]}/{r[k][1]} ({100 * r[k][2]:.1f}%)" for k in FIELDS if r[k][1])
        print(f"{name:8s} {r['prompts']:4d} prompts: {parts}; all correct {r['all_correct']} "
              f"({100 * r['all_correct_rate']:.1f}%)")
    if seconds:
        print(f"generated {len(files)} pictures in {seconds:.0f} s")


if __name__ == "__main__":
    main()
