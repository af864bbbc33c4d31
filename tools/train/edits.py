"""Edit triples (source picture, instruction, result picture) for the demo model's in-context
edit mode (moedit edit --edit-mode context), drawn on the fly like data.py's scenes:

    recolor  make the red circle blue                 (one object of a one- or two-object scene)
    move     move the red circle to the top left corner
    add      add a green star on the right            (beside a positioned object)
    remove   remove the green star                    (of a two-object scene)

Source and result share the background and every untouched object exactly (same center,
size and RGB: data.fix_colors), so the only difference is the edit. No scene on either side
holds a (color, shape, background) triple of data.HELDOUT.
"""
import copy
import random

try:  # only rendering needs PyTorch: edit_triple() (tools/eval/eval_sets.py) needs none
    import torch
except ImportError:
    torch = None

import data

KINDS = [("recolor", 0.4), ("move", 0.2), ("add", 0.2), ("remove", 0.2)]
TO_PHRASE = {"left": "to the left", "right": "to the right", "top": "to the top", "bottom": "to the bottom",
             "center": "to the center", "top left": "to the top left corner",
             "top right": "to the top right corner", "bottom left": "to the bottom left corner",
             "bottom right": "to the bottom right corner"}


def _name(o):
    return f"the {o['color']} {o['shape']}"


def _fixed(rng, scene):
    data.fix_colors(rng, [scene] + scene.objects)
    return scene


def _recolor(rng):
    source = _fixed(rng, data.pair_scene(rng, rng.random() < 0.6) if rng.random() < 0.4 else data.single_scene(rng))
    result = copy.deepcopy(source)
    k = rng.randrange(len(source.objects))
    taken = {source.bg} | {o["color"] for o in source.objects}
    new = rng.choice([c for c in data.COLOR_NAMES if c not in taken])
    result.objects[k]["color"] = new
    data.fix_colors(rng, [result.objects[k]])
    return source, result, f"make {_name(source.objects[k])} {new}"


def _move(rng):
    source = _fixed(rng, data.single_scene(rng, position=True))
    o = source.objects[0]
    target = rng.choice([p for p in data.POSITION_NAMES if p != o["position"]])
    result = copy.deepcopy(source)
    cx, cy = data.POSITIONS[target][0]
    result.objects[0].update(cx=cx + rng.uniform(-data.JITTER, data.JITTER),
                             cy=cy + rng.uniform(-data.JITTER, data.JITTER), position=target)
    return source, result, f"move {_name(o)} {TO_PHRASE[target]}"


def _add(rng):
    first, second = rng.choice(data.POSITION_PAIRS)
    source = data.single_scene(rng, position=first, size=None)
    source.objects[0]["r"] = rng.uniform(0.075, 0.15)
    _fixed(rng, source)
    taken = {source.bg, source.objects[0]["color"]}
    color = rng.choice([c for c in data.COLOR_NAMES if c not in taken])
    shape = rng.choice(data.SHAPES)
    cx, cy = data.POSITIONS[second][0]
    added = dict(shape=shape, color=color, cx=cx + rng.uniform(-data.JITTER, data.JITTER),
                 cy=cy + rng.uniform(-data.JITTER, data.JITTER), r=rng.uniform(0.075, 0.15), position=second)
    data.fix_colors(rng, [added])
    result = copy.deepcopy(source)
    result.objects.append(added)
    phrase = f"{data.article(color)} {color} {shape} {data.POSITIONS[second][1]}"
    return source, result, f"add {phrase}"


def _remove(rng):
    source = _fixed(rng, data.pair_scene(rng, rng.random() < 0.6))
    k = rng.randrange(2)
    result = copy.deepcopy(source)
    del result.objects[k]
    return source, result, f"remove {_name(source.objects[k])}"


MAKERS = {"recolor": _recolor, "move": _move, "add": _add, "remove": _remove}


def edit_triple(rng, kind=None):
    """(kind, source Scene, instruction, result Scene) with colors fixed on both sides."""
    while True:
        kind_now = kind or rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
        source, result, instruction = MAKERS[kind_now](rng)
        if not any(t in data.HELDOUT for s in (source, result) for t in s.triples()):
            return kind_now, source, instruction, result


def edit_batch(rng, batch, size, device, drop=0.0):
    """Sources and results [batch, 3, size, size] in [-1, 1] and the instructions (empty with
    probability drop, for classifier-free guidance)."""
    sources, results, instructions = [], [], []
    for _ in range(batch):
        _, source, instruction, result = edit_triple(rng)
        sources.append(source)
        results.append(result)
        instructions.append("" if rng.random() < drop else instruction)
    seed = rng.randrange(1 << 30)
    return (data.render(sources, size, device, seed=seed), data.render(results, size, device, seed=seed),
            instructions)


if __name__ == "__main__":
    # python3 tools/train/edits.py OUT.png : 8 triples, source | result per row, instructions printed.
    import sys
    from PIL import Image
    src, res, text = edit_batch(random.Random(0), 8, 128, "cpu")
    grid = ((torch.stack([src, res], 1) + 1) * 127.5).round().clamp(0, 255).byte()
    grid = grid.permute(0, 3, 1, 4, 2).reshape(8 * 128, 2 * 128, 3).numpy()
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "edits.png")
    print("\n".join(text))
