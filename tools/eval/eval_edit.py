"""Edit success of a moedit model over held-out edit pairs, per edit kind, judged from pixels.

The pairs are tools/eval/sets/edits.jsonl (tools/eval/eval_sets.py: 60 a kind of recolor,
move, add and remove, every one holding a (color, shape, background) triple that training
never drew). moedit generates every source from its caption (one process, --prompt-file,
seed 0), then edits each with another seed (only the input can keep the scene):
--mode context: `moedit edit --edit-mode context` with the instruction ("make the red
circle green", "move the red circle to the top", "add a green star on the right", "remove
the green star"); --mode strength: SDEdit (`--strength S`) with the result's caption.

The judge of tests/test_demo_edit.c (`test_demo_edit --pairs LIST`, the same one the ctest
uses) says whether the result's caption holds (background, colors, cells, count), whether
what the edit keeps stayed (the kind's geometry check) and whether the background outside
the objects kept its pixels (PSNR); tools/eval/shape_judge.py names the result's shapes.

    python3 tools/eval/eval_edit.py --moedit build/moedit --judge build/tests/test_demo_edit \
        --model models/demo --out /tmp/edit-eval --mode context
    python3 tools/eval/eval_edit.py ... --out /tmp/edit-eval --mode strength --strength 0.5 --reuse-sources

Prints the success rate per kind and writes OUT/verdicts-MODE.tsv and OUT/results-MODE.json.
"""
import argparse
import json
import os
import re
import subprocess
import time

import eval_sets
import shape_judge

KINDS = ("recolor", "move", "add", "remove")


def selection(kinds, count):
    """(index in edits.jsonl, entry): the first count pairs of each kind asked for."""
    taken = {k: 0 for k in kinds}
    out = []
    for i, e in enumerate(eval_sets.load("edits.jsonl")):
        if e["kind"] in taken and taken[e["kind"]] < count:
            taken[e["kind"]] += 1
            out.append((i, e))
    return out


def generate_sources(args, todo, common):
    sources = [os.path.join(args.out, f"source-{i}.png") for i, _ in todo]
    if args.reuse_sources and all(os.path.exists(s) for s in sources):
        return sources
    prompt_file = os.path.join(args.out, "sources.txt")
    with open(prompt_file, "w") as f:
        f.write("\n".join(e["source"] for _, e in todo) + "\n")
    batch = os.path.join(args.out, "batch.png")
    subprocess.run([args.moedit, "generate", "--prompt-file", prompt_file, "--output", batch] + common, check=True)
    for k, path in enumerate(sources):  # moedit names them batch-K.png in prompt order
        os.replace(os.path.join(args.out, f"batch-{k}.png"), path)
    return sources


def interleaved(todo):
    """Positions in todo, the kinds taken in turn (the first of each kind, then the second...), so that
    an interrupted run has edited the first N pairs of every kind (judge them with --count N)."""
    rank, seen = [], {}
    for _, e in todo:
        seen[e["kind"]] = seen.get(e["kind"], -1) + 1
        rank.append(seen[e["kind"]])
    return sorted(range(len(todo)), key=lambda k: (rank[k], k))


def run_edits(args, todo, sources, common, mode_name):
    edited = [os.path.join(args.out, f"{mode_name}-{i}.png") for i, _ in todo]
    for k in interleaved(todo):
        e, source, out = todo[k][1], sources[k], edited[k]
        if args.resume and os.path.exists(out):
            continue
        how = (["--edit-mode", "context", "--prompt", e["instruction"]] if args.mode == "context"
               else ["--prompt", e["target"], "--strength", str(args.strength)])
        # Another seed than the source's: only the input can keep the objects' places and sizes.
        subprocess.run([args.moedit, "edit", "--image", source, "--output", out + ".part.png"] + how + common
                       + ["--seed", str(args.seed + 1)], check=True)
        os.replace(out + ".part.png", out)
    return edited


def judge(args, todo, sources, edited, mode_name):
    """Rows {kind, ok, prompt_ok, shapes_ok, line} from the C judge and the shape judge."""
    listing = os.path.join(args.out, f"pairs-{mode_name}.tsv")
    with open(listing, "w") as f:
        for (_, e), source, result in zip(todo, sources, edited):
            f.write(f"{source}\t{result}\t{e['target']}\t{e['kind']}\n")
    out = subprocess.run([args.judge, "--pairs", listing], check=True, capture_output=True, text=True).stdout
    # Per pair two lines: the prompt judge's (ok|MISS, prompt, scores, seen) and the edit's (ok|MISS, prompt, PSNR).
    lines = [line.split("\t") for line in out.splitlines() if line.startswith(("ok\t", "MISS\t"))]
    judged, edits = lines[0::2], lines[1::2]
    rows = []
    for (_, e), result, j, d in zip(todo, edited, judged, edits):
        found = shape_judge.judge_named_objects(result, e["target_objects"])
        shapes_ok = found == [o["shape"] for o in e["target_objects"]]
        psnr = float(re.search(r"PSNR (\S+) dB", d[2]).group(1))
        rows.append({"kind": e["kind"], "ok": d[0] == "ok", "prompt_ok": j[0] == "ok", "shapes_ok": shapes_ok,
                     "psnr": psnr, "line": "\t".join(d + [j[2], j[3], "shapes " + ",".join(found)])})
    with open(os.path.join(args.out, f"verdicts-{mode_name}.tsv"), "w") as f:
        f.write("\n".join(r["line"] for r in rows) + "\n")
    return rows


def summary(rows):
    psnrs = sorted(r["psnr"] for r in rows)
    return {"pairs": len(rows), "successes": sum(r["ok"] for r in rows),
            "successes_with_shapes": sum(r["ok"] and r["shapes_ok"] for r in rows),
            "prompt_holds": sum(r["prompt_ok"] for r in rows), "shapes_hold": sum(r["shapes_ok"] for r in rows),
            "psnr_median": psnrs[len(psnrs) // 2] if psnrs else None,
            "psnr_p10": psnrs[len(psnrs) // 10] if psnrs else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", required=True)
    ap.add_argument("--judge", required=True, help="the test_demo_edit binary")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=60, help="pairs per kind (at most 60)")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, of " + ",".join(KINDS))
    ap.add_argument("--mode", choices=["strength", "context"], default="context",
                    help="context: in-context tokens with the instruction; strength: SDEdit with the result's caption")
    ap.add_argument("--strength", type=float, default=0.5, help="strength mode's SDEdit strength")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-sources", action="store_true", help="keep OUT/source-*.png from an earlier run")
    ap.add_argument("--resume", action="store_true", help="keep the edited pictures already in OUT")
    ap.add_argument("--judge-only", action="store_true", help="judge the pictures already in OUT")
    args = ap.parse_args()
    kinds = args.kinds.split(",")
    if any(k not in KINDS for k in kinds):
        ap.error(f"--kinds: each of {','.join(KINDS)}")
    if not 1 <= args.count <= eval_sets.EDITS_PER_KIND:
        ap.error(f"--count: 1 to {eval_sets.EDITS_PER_KIND} pairs per kind")
    os.makedirs(args.out, exist_ok=True)
    todo = selection(kinds, args.count)
    mode_name = "context" if args.mode == "context" else f"strength{args.strength:g}"
    common = ["--model", args.model, "--height", str(args.size), "--width", str(args.size), "--num-inference-steps",
              str(args.steps), "--guidance-scale", str(args.guidance), "--seed", str(args.seed), "--quiet"]
    start = time.time()
    if args.judge_only:
        sources = [os.path.join(args.out, f"source-{i}.png") for i, _ in todo]
        edited = [os.path.join(args.out, f"{mode_name}-{i}.png") for i, _ in todo]
    else:
        sources = generate_sources(args, todo, common)
        edited = run_edits(args, todo, sources, common, mode_name)
    rows = judge(args, todo, sources, edited, mode_name)
    result = {"model": args.model, "mode": args.mode, "strength": args.strength if args.mode == "strength" else 1.0,
              "steps": args.steps, "guidance": args.guidance, "seconds": round(time.time() - start, 1),
              "all": summary(rows)}
    result.update({k: summary([r for r in rows if r["kind"] == k]) for k in kinds})
    with open(os.path.join(args.out, f"results-{mode_name}.json"), "w") as f:
        json.dump(result, f, indent=1)
    for name in ["all"] + kinds:
        r = result[name]
        print(f"{mode_name} {name:8s} {r['successes']}/{r['pairs']} succeed ({100 * r['successes'] / r['pairs']:.0f}%); "
              f"with the shapes {r['successes_with_shapes']}; prompt holds {r['prompt_holds']}, shapes hold "
              f"{r['shapes_hold']}; background PSNR median {r['psnr_median']:.1f} dB, 10th percentile "
              f"{r['psnr_p10']:.1f} dB")


if __name__ == "__main__":
    main()
