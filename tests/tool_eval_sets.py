"""The held-out evaluation sets (tools/eval/sets/, built by tools/eval/eval_sets.py): the
stored files are what the seed builds; there are at least 120 prompts and 60 edit pairs of
each kind; together the prompts ask every shape, color, background, named position and both
counts; every prompt and every edit pair holds a (color, shape, background) triple of
tools/train/data.py's HELDOUT, and none of them is drawn by the training generators
(data.training_scene, edits.edit_triple) in 10000 scenes and 4000 edit triples."""
import collections
import os
import random
import subprocess
import sys

tool = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.dirname(tool))
import eval_sets  # noqa: E402
from eval_sets import data, edits  # noqa: E402

failures = []


def check(ok, what):
    if not ok:
        failures.append(what)


stored = subprocess.run([sys.executable, tool, "--check"], capture_output=True, text=True)
check(stored.returncode == 0, "stored sets: " + (stored.stdout + stored.stderr).strip())

prompts, pairs = eval_sets.load("prompts.jsonl"), eval_sets.load("edits.jsonl")
check(len(prompts) >= 120, f"{len(prompts)} prompts")
kinds = collections.Counter(p["kind"] for p in pairs)
check(all(kinds[k] >= 60 for k, _ in edits.KINDS), f"edit pairs per kind: {dict(kinds)}")

asked = collections.defaultdict(set)
for p in prompts:
    asked["background"].add(p["background"])
    asked["count"].add(len(p["objects"]))
    for o in p["objects"]:
        asked["shape"].add(o["shape"]), asked["color"].add(o["color"]), asked["position"].add(o["position"])
check(asked["shape"] == set(data.SHAPES), f"shapes asked: {sorted(asked['shape'])}")
check(asked["color"] == set(data.COLOR_NAMES), f"colors asked: {sorted(asked['color'])}")
check(asked["background"] == set(data.COLOR_NAMES), f"backgrounds asked: {sorted(asked['background'])}")
check(set(data.POSITION_NAMES) <= asked["position"], f"positions asked: {sorted(map(str, asked['position']))}")
check(asked["count"] == {1, 2}, f"counts asked: {asked['count']}")


def triples(objects, background):
    return {(o["color"], o["shape"], background) for o in objects}


for p in prompts:
    check(triples(p["objects"], p["background"]) & data.HELDOUT, f"no held-out triple: {p['prompt']}")
for e in pairs:
    both = triples(e["source_objects"], e["background"]) | triples(e["target_objects"], e["background"])
    check(both & data.HELDOUT, f"no held-out triple: {e['kind']} {e['source']} -> {e['instruction']}")

# An edit pair is held out as a whole: its source alone may be a training picture (a recolor
# into a held-out triple starts from a seen one), the edit from it never is.
rng = random.Random(1)
training = {s.caption for s in (data.training_scene(rng) for _ in range(10000))}
drawn = [p["prompt"] for p in prompts if p["prompt"] in training]
training_edits = set()
for _ in range(4000):
    _, source, instruction, result = edits.edit_triple(rng)
    training_edits.add((eval_sets.caption(source), instruction))
drawn += [e["source"] + " / " + e["instruction"] for e in pairs if (e["source"], e["instruction"]) in training_edits]
check(not drawn, f"drawn in training: {drawn[:3]}")

for f in failures:
    print("FAIL:", f)
print(f"tool_eval_sets: {len(prompts)} prompts, {len(pairs)} edit pairs; {len(failures)} failures")
sys.exit(1 if failures else 0)
