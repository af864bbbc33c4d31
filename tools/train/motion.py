"""Clips of moving shapes for the demo model's video training (moedit video).

A clip is F frames of one object on a plain background. Most clips move the object in a
straight line at constant speed along one axis, captioned

    a red circle moving left to right on a white background

(directions: left to right, right to left, top to bottom, bottom to top); the object travels
from about 0.25 to about 0.75 of the side, with the other coordinate fixed. The rest are still
clips captioned like a still picture ("a red circle on the left on a white background"), so
that motion comes from the word "moving" and not from being a clip. Colors are fixed over the
clip (data.fix_colors); (color, shape, background) triples in data.HELDOUT are never drawn.
"""
import random

import torch

import data

DIRECTIONS = {  # name: (axis 0 = x, 1 = y; sense)
    "left to right": (0, 1),
    "right to left": (0, -1),
    "top to bottom": (1, 1),
    "bottom to top": (1, -1),
}
STILL_SHARE = 0.15


def _triple(rng):
    while True:
        bg = rng.choice(data.COLOR_NAMES)
        color = rng.choice([c for c in data.COLOR_NAMES if c != bg])
        shape = rng.choice(data.SHAPES)
        if (color, shape, bg) not in data.HELDOUT:
            return color, shape, bg


def clip_scenes(rng, frames):
    """(caption, [data.Scene] * frames) of one training clip."""
    if rng.random() < STILL_SHARE:
        while True:
            still = data.single_scene(rng, position=True)
            if not any(t in data.HELDOUT for t in still.triples()):
                break
        data.fix_colors(rng, [still] + still.objects)
        return still.caption, [still] * frames
    color, shape, bg = _triple(rng)
    direction = rng.choice(list(DIRECTIONS))
    axis, sense = DIRECTIONS[direction]
    r = rng.uniform(0.09, 0.16)
    begin, end = rng.uniform(0.18, 0.32), rng.uniform(0.68, 0.82)
    if sense < 0:
        begin, end = 1 - begin, 1 - end
    across = rng.uniform(0.3, 0.7)
    obj = dict(shape=shape, color=color, r=r, position=None)
    caption = f"{data.article(color)} {color} {shape} moving {direction} on {data.article(bg)} {bg} background"
    scene0 = data.Scene(bg, [obj], caption, "clip")
    data.fix_colors(rng, [scene0, obj])
    scenes = []
    for f in range(frames):
        along = begin + (end - begin) * f / max(frames - 1, 1)
        o = dict(obj, cx=along if axis == 0 else across, cy=across if axis == 0 else along)
        s = data.Scene(bg, [o], caption, "clip")
        s.bg_rgb = scene0.bg_rgb
        scenes.append(s)
    return caption, scenes


def clip_batch(rng, batch, frames, size, device, drop=0.0):
    """Pictures [batch, frames, 3, size, size] in [-1, 1] and the captions (empty with
    probability drop, for classifier-free guidance)."""
    captions, scenes = [], []
    for _ in range(batch):
        caption, clip = clip_scenes(rng, frames)
        captions.append("" if rng.random() < drop else caption)
        scenes.extend(clip)
    pictures = data.render(scenes, size, device, seed=rng.randrange(1 << 30))
    return pictures.reshape(batch, frames, 3, size, size), captions


if __name__ == "__main__":
    # python3 tools/train/motion.py OUT.png : 6 training clips of 8 frames, one per row.
    import sys
    from PIL import Image
    pictures, captions = clip_batch(random.Random(0), 6, 8, 128, "cpu")
    grid = ((pictures + 1) * 127.5).round().clamp(0, 255).byte()
    grid = grid.permute(0, 3, 1, 4, 2).reshape(6 * 128, 8 * 128, 3).numpy()
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "clips.png")
    print("\n".join(captions))
