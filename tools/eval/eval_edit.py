"""Edit success of a moedit model over held-out pairs, judged from pixels.

Pairs come from tools/train/data.py's held-out single-object prompts (prompt
A); prompt B recolors the object to another named color (never the
background's). moedit generates every source from A (one process,
--prompt-file), then `moedit edit --strength S` edits each with B (--mode
strength), or `moedit edit --edit-mode context` with the instruction "make
the OLD SHAPE NEW" (--mode context: models trained on edit triples); the judge
of tests/test_demo_edit.c (`test_demo_edit --pairs LIST`) says whether B
holds in the result (background, new color, cell, count) and whether the
background outside both objects kept its pixels (PSNR).

    python3 tools/eval/eval_edit.py --moedit build/moedit --judge build/tests/test_demo_edit \
        --model models/demo --out /tmp/edit-eval --count 50 --strength 0.7

Prints the success rate and writes OUT/verdicts.tsv and OUT/results.json.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "train"))
import data  # noqa: E402


def pairs(count, seed):
    rng = random.Random(seed)
    out = []
    shapes = "|".join(data.SHAPES)
    for caption, scene in data.eval_prompts(count * 3, seed=seed + 7):
        if len(scene.objects) != 1 or len(out) == count:
            continue
        old = scene.objects[0]["color"]
        new = rng.choice([c for c in data.COLOR_NAMES if c not in (old, scene.bg)])
        edited = re.sub(rf"\b(a|an) ((small |large )?){old} (?=({shapes})\b)",
                        lambda m: f"{data.article(m.group(2) or new)} {m.group(2)}{new} ", caption, count=1)
        if edited != caption:
            out.append((caption, edited, f"make the {old} {scene.objects[0]['shape']} {new}"))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", required=True)
    ap.add_argument("--judge", required=True, help="the test_demo_edit binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--strength", type=float, default=0.7, help="strength mode's SDEdit strength")
    ap.add_argument("--mode", choices=["strength", "context"], default="strength",
                    help="strength: edit with prompt B (SDEdit); context: in-context tokens with the instruction "
                         "'make the OLD SHAPE NEW' (models trained on edit triples)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-sources", action="store_true", help="keep OUT/source-*.png from an earlier run")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    todo = pairs(args.count, args.seed)
    common = ["--model", args.model, "--height", str(args.size), "--width", str(args.size), "--num-inference-steps",
              str(args.steps), "--guidance-scale", str(args.guidance), "--seed", str(args.seed), "--quiet"]
    start = time.time()
    sources = [os.path.join(args.out, f"source-{i}.png") for i in range(len(todo))]
    if not (args.reuse_sources and all(os.path.exists(s) for s in sources)):
        prompt_file = os.path.join(args.out, "sources.txt")
        with open(prompt_file, "w") as f:
            f.write("\n".join(a for a, _, _ in todo) + "\n")
        subprocess.run([args.moedit, "generate", "--prompt-file", prompt_file, "--output",
                        os.path.join(args.out, "source.png")] + common, check=True)
    edit_start = time.time()
    listing = os.path.join(args.out, "pairs.tsv")
    with open(listing, "w") as f:
        for i, (_, b, instruction) in enumerate(todo):
            edited = os.path.join(args.out, f"edited-{i}.png")
            how = (["--edit-mode", "context", "--prompt", instruction] if args.mode == "context"
                   else ["--prompt", b, "--strength", str(args.strength)])
            # Another seed than the source's: only the input can keep the object's place and size.
            subprocess.run([args.moedit, "edit", "--image", sources[i], "--output", edited] + how + common
                           + ["--seed", str(args.seed + 1)], check=True)
            f.write(f"{sources[i]}\t{edited}\t{b}\n")
    edit_seconds = time.time() - edit_start
    out = subprocess.run([args.judge, "--pairs", listing], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(args.out, "verdicts.tsv"), "w") as f:
        f.write(out)
    # Two kinds of lines: the judge's (ok|MISS, prompt, scores, seen) and the edit's (ok|MISS, prompt, PSNR).
    rows = [line.split("\t") for line in out.splitlines() if line.startswith(("ok\t", "MISS\t"))]
    edits = [r for r in rows if "PSNR" in r[2]]
    judged = [r for r in rows if "PSNR" not in r[2]]
    psnrs = sorted(float(re.search(r"PSNR (\S+) dB", r[2]).group(1)) for r in edits)
    result = {"model": args.model, "pairs": len(todo), "mode": args.mode,
              "strength": args.strength if args.mode == "strength" else 1.0, "steps": args.steps,
              "guidance": args.guidance, "successes": sum(r[0] == "ok" for r in edits),
              "prompt_b_holds": sum(r[0] == "ok" for r in judged),
              "psnr_median": psnrs[len(psnrs) // 2] if psnrs else None,
              "psnr_p10": psnrs[len(psnrs) // 10] if psnrs else None,
              "edit_seconds": round(edit_seconds, 1), "seconds": round(time.time() - start, 1)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(out.splitlines()[-2] if len(out.splitlines()) > 1 else "")
    print(out.splitlines()[-1] if out else "")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
