"""The held-out evaluation sets of the demo model, built from a seed and stored in tools/eval/sets/.

    python3 tools/eval/eval_sets.py            # writes tools/eval/sets/{prompts,edits}.jsonl
    python3 tools/eval/eval_sets.py --check    # rebuilds them in memory; exit 1 if the files differ

prompts.jsonl: 120 generation prompts, one JSON object a line,
    {"prompt", "kind": single|pair|twin, "background", "objects": [{"color", "shape", "position"}]}
  72 single objects (every shape 12 times, every named position 8 times, a size word on a third),
  24 positioned pairs and 24 twins ("two red circles ..."), so that shape, color, position, count
  (one or two) and background are all asked.
edits.jsonl: 60 edit pairs per kind (recolor, move, add, remove), tools/train/edits.py's makers,
    {"kind", "source", "instruction", "target", "source_objects", "target_objects", "background"}
  source: the caption of the source scene (generated first); instruction: what context mode
  gets; target: the caption of the result scene (what SDEdit gets, what the judge checks).

Held out, and how: tools/train/data.py fixes HELDOUT, a seeded 10% of the (color, shape,
background) triples; data.training_scene() and edits.edit_triple() reject every scene that holds
one of them, on either side of an edit, in every task. Every prompt here holds at least one
held-out triple, and every edit pair holds one in its source or its result, so none of these
captions or edits can have been drawn in training (tests/tool_eval_sets.py checks it).
"""
import argparse
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))
import data  # noqa: E402
import edits  # noqa: E402

SETS = os.path.join(HERE, "sets")
SEED = 35  # issue 35
SINGLES, PAIRS, TWINS, EDITS_PER_KIND = 72, 24, 24, 60


def caption(scene):
    """The training captions' grammar, one template: 'a red circle on the left [and ...] on a blue background'."""
    parts = []
    for o in scene.objects:
        text = f"{data.article(o['color'])} {o['color']} {o['shape']}"
        parts.append(text + (" " + data.POSITIONS[o["position"]][1] if o.get("position") else ""))
    return f"{' and '.join(parts)} on {data.article(scene.bg)} {scene.bg} background"


def objects(scene):
    return [{"color": o["color"], "shape": o["shape"], "position": o.get("position")} for o in scene.objects]


def held_out(*scenes):
    return any(t in data.HELDOUT for s in scenes for t in s.triples())


def entry(scene, kind):
    return {"prompt": scene.caption, "kind": kind, "background": scene.bg, "objects": objects(scene)}


def single_prompts(rng, seen):
    """Singles: shape i % 6 and position i % 9 fixed, a held-out triple of that shape."""
    out = []
    for i in range(SINGLES):
        shape, position = data.SHAPES[i % len(data.SHAPES)], data.POSITION_NAMES[i % len(data.POSITION_NAMES)]
        size = ["small", None, "large"][i % 3]
        while True:
            color, _, bg = rng.choice(sorted(t for t in data.HELDOUT if t[1] == shape))
            scene = data.single_scene(rng, position=position, size=size, color=color, shape=shape, bg=bg)
            # One template ("OBJECT POSITION on a BG background"), no caption twice.
            if not scene.caption.startswith(f"{data.article(bg)} {bg} background") and scene.caption not in seen:
                break
        seen.add(scene.caption)
        out.append(entry(scene, "single"))
    return out


def drawn_prompts(rng, seen, count, kind, make):
    out = []
    while len(out) < count:
        scene = make(rng)
        if held_out(scene) and scene.caption not in seen:
            seen.add(scene.caption)
            out.append(entry(scene, kind))
    return out


def prompt_set():
    rng, seen = random.Random(SEED), set()
    out = single_prompts(rng, seen)
    out += drawn_prompts(rng, seen, PAIRS, "pair", lambda r: data.pair_scene(r, positioned=True))
    return out + drawn_prompts(rng, seen, TWINS, "twin", data.twin_scene)


def edit_set():
    rng = random.Random(SEED + 1)
    out = []
    for kind, _ in edits.KINDS:
        seen = set()
        while len(seen) < EDITS_PER_KIND:
            source, result, instruction = edits.MAKERS[kind](rng)
            a, b = caption(source), caption(result)
            if not held_out(source, result) or (a, instruction) in seen:
                continue
            seen.add((a, instruction))
            out.append({"kind": kind, "source": a, "instruction": instruction, "target": b,
                        "source_objects": objects(source), "target_objects": objects(result), "background": source.bg})
    return out


def lines(rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def load(name):
    with open(os.path.join(SETS, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the stored sets are not what the seed builds")
    args = ap.parse_args()
    built = {"prompts.jsonl": lines(prompt_set()), "edits.jsonl": lines(edit_set())}
    if args.check:
        stale = [n for n, text in built.items() if open(os.path.join(SETS, n)).read() != text]
        if stale:
            sys.exit(f"eval_sets: {', '.join(stale)} differ from what seed {SEED} builds")
        print("eval_sets: the stored sets are what the seed builds")
        return
    os.makedirs(SETS, exist_ok=True)
    for name, text in built.items():
        with open(os.path.join(SETS, name), "w") as f:
            f.write(text)
        print(f"{name}: {text.count(chr(10))} lines")


if __name__ == "__main__":
    main()
