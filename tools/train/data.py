"""Synthetic shape scenes for the demo model: captions from templates, pictures
rendered on the fly in PyTorch (CPU or GPU, a whole batch at once).

A scene is a background color and one or two objects; an object is a shape
(circle, square, triangle, star, diamond, cross) of a named color at a center
(cx, cy) in [0, 1]^2 (x right, y down) with a radius r (fraction of the side).
Captions say the colors always, and the position, size and background where
the scene fixes them:

    a red circle on a blue background
    a small green star in the top left corner on a white background
    a yellow square on the left and a purple triangle on the right on a gray background
    two orange diamonds on a black background

Held-out split: HELDOUT is a fixed, seeded set of (color, shape, background)
triples (about 10% of them) that training never draws, in any scene;
eval_prompts() builds the evaluation prompts from them only.

The tokenizer is WordLevel over VOCAB (tokenizers' Lowercase normalizer,
Whitespace pre-tokenizer, "[BOS] $A" template): tokenize() is the same rule in
plain Python, checked against the tokenizers library by tools/train/check.py.
"""
import math
import random
import re

try:  # only rendering needs PyTorch: the captions, HELDOUT and tokenize() (tools/eval/eval_sets.py) need none
    import torch
except ImportError:
    torch = None

# Named colors (RGB 0..255). Well apart, so a pixel judge can name them back.
COLORS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 220, 30),
    "orange": (245, 135, 15),
    "purple": (130, 40, 170),
    "pink": (250, 140, 200),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross"]
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
           "diamond": "diamonds", "cross": "crosses"}
# Position name -> (center, phrase). The 3 x 3 grid of anchors at 1/4, 1/2, 3/4.
POSITIONS = {
    "left": ((0.25, 0.5), "on the left"),
    "right": ((0.75, 0.5), "on the right"),
    "top": ((0.5, 0.25), "at the top"),
    "bottom": ((0.5, 0.75), "at the bottom"),
    "center": ((0.5, 0.5), "in the center"),
    "top left": ((0.25, 0.25), "in the top left corner"),
    "top right": ((0.75, 0.25), "in the top right corner"),
    "bottom left": ((0.25, 0.75), "in the bottom left corner"),
    "bottom right": ((0.75, 0.75), "in the bottom right corner"),
}
POSITION_NAMES = list(POSITIONS)
# Opposite pairs for two-object scenes with positions.
POSITION_PAIRS = [("left", "right"), ("top", "bottom"), ("top left", "bottom right"), ("top right", "bottom left")]
SIZES = {"small": (0.075, 0.10), "large": (0.18, 0.23)}
ANY_SIZE = (0.075, 0.23)
JITTER = 0.04        # center jitter around a named position
COLOR_JITTER = 10    # per-channel jitter of a named color

SPECIALS = ["[UNK]", "[BOS]", "[EOS]", "[PAD]"]
BOS, PAD = 1, 3
WORDS = (COLOR_NAMES + SHAPES + list(PLURALS.values()) +
         ["a", "an", "the", "on", "in", "at", "and", "with", "of", "background", "two",
          "small", "large", "left", "right", "top", "bottom", "center", "corner", ",",
         # Clips ("moving left to right") and edit instructions (tools/train/motion.py, edits.py).
         # Appended, so every earlier word keeps its id and a trained encoder only grows rows.
         "moving", "to", "make", "move", "add", "remove"])
VOCAB = {w: i for i, w in enumerate(SPECIALS + WORDS)}

_heldout_rng = random.Random(20251123)
_TRIPLES = [(c, s, b) for c in COLOR_NAMES for s in SHAPES for b in COLOR_NAMES if c != b]
# The README's prompt ("a red circle on a blue background") stays in training.
HELDOUT = set(t for t in _heldout_rng.sample(_TRIPLES, len(_TRIPLES) // 10) if t != ("red", "circle", "blue"))


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def tokenize(text):
    """WordLevel ids: lowercase, split into \\w+ and runs of other non-space characters, [BOS] first."""
    words = re.findall(r"\w+|[^\w\s]+", text.lower())
    return [BOS] + [VOCAB.get(w, 0) for w in words]


class Scene:
    """bg: color name; objects: list of dicts {shape, color, cx, cy, r, position (name or None)}."""

    def __init__(self, bg, objects, caption, kind):
        self.bg, self.objects, self.caption, self.kind = bg, objects, caption, kind

    def triples(self):
        return [(o["color"], o["shape"], self.bg) for o in self.objects]


def _object_phrase(size, color, shape):
    words = ([size] if size else []) + [color, shape]
    return f"{article(words[0])} {' '.join(words)}"


def _place(rng, name, r):
    if name is None:
        lo, hi = 0.5 - (0.5 - r) * 0.8, 0.5 + (0.5 - r) * 0.8
        return rng.uniform(lo, hi), rng.uniform(lo, hi)
    (x, y), _ = POSITIONS[name]
    return x + rng.uniform(-JITTER, JITTER), y + rng.uniform(-JITTER, JITTER)


def _apart(a, b):
    return math.hypot(a["cx"] - b["cx"], a["cy"] - b["cy"]) > 1.1 * (a["r"] + b["r"]) + 0.03


def _colors(rng, count, exclude):
    return rng.sample([c for c in COLOR_NAMES if c not in exclude], count)


def single_scene(rng, position=True, size=None, bg_said=True, color=None, shape=None, bg=None):
    """One object. position: True (random named), a name, or None (anywhere)."""
    bg = bg or rng.choice(COLOR_NAMES)
    color = color or _colors(rng, 1, {bg})[0]
    shape = shape or rng.choice(SHAPES)
    pos = rng.choice(POSITION_NAMES) if position is True else position
    r = rng.uniform(*(SIZES[size] if size else ANY_SIZE))
    cx, cy = _place(rng, pos, r)
    obj = dict(shape=shape, color=color, cx=cx, cy=cy, r=r, position=pos)
    phrase = _object_phrase(size, color, shape)
    if pos:
        phrase += " " + POSITIONS[pos][1]
    if not bg_said:
        caption = phrase
    elif pos and rng.random() < 0.3:
        caption = f"{article(bg)} {bg} background with {phrase}"
    else:
        caption = f"{phrase} on {article(bg)} {bg} background"
    return Scene(bg, [obj], caption, "single")


def pair_scene(rng, positioned=True):
    """Two objects of different colors; positioned: an opposite pair of named positions."""
    bg = rng.choice(COLOR_NAMES)
    c1, c2 = _colors(rng, 2, {bg})
    s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
    if positioned:
        p1, p2 = rng.choice(POSITION_PAIRS)
        if rng.random() < 0.5:
            p1, p2 = p2, p1
    else:
        p1 = p2 = None
    for _ in range(100):
        objs = []
        for c, s, p in ((c1, s1, p1), (c2, s2, p2)):
            r = rng.uniform(0.075, 0.15)
            cx, cy = _place(rng, p, r)
            objs.append(dict(shape=s, color=c, cx=cx, cy=cy, r=r, position=p))
        if _apart(*objs):
            break
    parts = []
    for o in objs:
        text = _object_phrase(None, o["color"], o["shape"])
        parts.append(text + (" " + POSITIONS[o["position"]][1] if o["position"] else ""))
    caption = f"{parts[0]} and {parts[1]} on {article(bg)} {bg} background"
    return Scene(bg, objs, caption, "pair")


def twin_scene(rng):
    """Two objects of the same color and shape: 'two red circles'."""
    bg = rng.choice(COLOR_NAMES)
    color = _colors(rng, 1, {bg})[0]
    shape = rng.choice(SHAPES)
    for _ in range(100):
        objs = []
        for _ in range(2):
            r = rng.uniform(0.075, 0.14)
            cx, cy = _place(rng, None, r)
            objs.append(dict(shape=shape, color=color, cx=cx, cy=cy, r=r, position=None))
        if _apart(*objs):
            break
    caption = f"two {color} {PLURALS[shape]} on {article(bg)} {bg} background"
    return Scene(bg, objs, caption, "twin")


def random_scene(rng):
    u = rng.random()
    if u < 0.58:
        size = rng.choice([None, None, "small", "large"])
        position = True if rng.random() < 0.75 else None
        return single_scene(rng, position=position, size=size, bg_said=rng.random() < 0.85)
    if u < 0.88:
        return pair_scene(rng, positioned=rng.random() < 0.6)
    return twin_scene(rng)


def training_scene(rng):
    """A random scene with no held-out (color, shape, background) triple."""
    while True:
        s = random_scene(rng)
        if not any(t in HELDOUT for t in s.triples()):
            return s


def eval_prompts(count=120, seed=7):
    """Held-out prompts: single objects with a position (and sometimes a size), then
    positioned pairs, each with at least one held-out triple. Returns (caption, scene)."""
    rng = random.Random(seed)
    triples = sorted(HELDOUT)
    out, seen = [], set()
    singles = count * 5 // 6
    while len(out) < singles:
        c, s, b = rng.choice(triples)
        size = rng.choice([None, None, "small", "large"])
        scene = single_scene(rng, position=True, size=size, color=c, shape=s, bg=b)
        if scene.caption.startswith(f"{article(b)} {b} background"):
            continue  # the eval set keeps one template
        if scene.caption not in seen:
            seen.add(scene.caption)
            out.append((scene.caption, scene))
    while len(out) < count:
        scene = pair_scene(rng, positioned=True)
        if any(t in HELDOUT for t in scene.triples()) and scene.caption not in seen:
            seen.add(scene.caption)
            out.append((scene.caption, scene))
    return out


def _rgb(rng, name):
    return [max(0, min(255, v + rng.randint(-COLOR_JITTER, COLOR_JITTER))) for v in COLORS[name]]


def _fixed_or_jittered(rng, name, rgb):
    """rgb when the scene fixes it (the frames of a clip, the two sides of an edit keep their
    colors), else the named color jittered; the draw happens either way, so fixing one color
    leaves the others' jitter as it was."""
    jittered = _rgb(rng, name)
    return list(rgb) if rgb is not None else jittered


def fix_colors(rng, scenes_or_objects):
    """Jittered RGB values drawn once and stored (bg_rgb on a scene, rgb on an object)."""
    for x in scenes_or_objects:
        if isinstance(x, Scene):
            x.bg_rgb = _rgb(rng, x.bg)
        else:
            x["rgb"] = _rgb(rng, x["color"])


SHAPE_ID = {s: i for i, s in enumerate(SHAPES)}
_STAR_OUTER, _STAR_INNER = 1.0, 0.45


def _star_sdf(dx, dy, r):
    """Signed distance (approximate outside) to a 5-point star pointing up, outer radius r."""
    theta = torch.atan2(dx, -dy)  # 0 = up, clockwise
    sector = 2 * math.pi / 5
    phi = torch.remainder(theta + sector / 2, sector) - sector / 2
    phi = phi.abs()
    rho = torch.sqrt(dx * dx + dy * dy)
    px, py = rho * torch.cos(phi), rho * torch.sin(phi)
    ax, ay = _STAR_OUTER, 0.0
    half = sector / 2
    bx, by = _STAR_INNER * math.cos(half), _STAR_INNER * math.sin(half)
    ex, ey = bx - ax, by - ay
    norm = math.hypot(ex, ey)
    nx, ny = ey / norm, -ex / norm  # outward normal of edge A->B
    if nx * ax + ny * ay < 0:
        nx, ny = -nx, -ny
    return (nx * (px - ax * r) + ny * (py - ay * r))


def _sdf(shape_id, dx, dy, r):
    """Signed distance to each shape kind; shape_id [B, 1, 1] picks one per sample."""
    adx, ady = dx.abs(), dy.abs()
    circle = torch.sqrt(dx * dx + dy * dy) - r
    square = torch.maximum(adx, ady) - 0.85 * r
    diamond = (adx + ady - 1.2 * r) / math.sqrt(2)
    # Upward equilateral triangle, circumradius 1.15 r, centroid at the center.
    R = 1.15 * r
    s3 = math.sqrt(3) / 2
    triangle = torch.maximum(torch.maximum(dy, -s3 * dx - 0.5 * dy), s3 * dx - 0.5 * dy) - R / 2
    star = _star_sdf(dx, dy, 1.2 * r)
    w = 0.36 * r
    cross = torch.minimum(torch.maximum(adx - w, ady - r), torch.maximum(adx - r, ady - w))
    all_sdf = torch.stack([circle, square, triangle, star, diamond, cross], 0)  # [6, B, H, W]
    idx = shape_id.reshape(1, -1, 1, 1).expand(1, *all_sdf.shape[1:])
    return all_sdf.gather(0, idx)[0]


def render(scenes, size, device="cpu", seed=0):
    """Pictures of the scenes: [B, 3, size, size] floats in [-1, 1]."""
    rng = random.Random(seed)
    B = len(scenes)
    bg = torch.tensor([_fixed_or_jittered(rng, s.bg, getattr(s, "bg_rgb", None)) for s in scenes],
                      dtype=torch.float32, device=device) / 127.5 - 1
    img = bg[:, :, None, None].expand(B, 3, size, size).clone()
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    yy, xx = coords[None, :, None], coords[None, None, :]
    for k in range(2):
        has = [len(s.objects) > k for s in scenes]
        if not any(has):
            break
        objs = [s.objects[k] if h else s.objects[0] for s, h in zip(scenes, has)]
        t = lambda key: torch.tensor([o[key] for o in objs], dtype=torch.float32, device=device)[:, None, None]
        shape_id = torch.tensor([SHAPE_ID[o["shape"]] for o in objs], device=device)
        d = _sdf(shape_id, xx - t("cx"), yy - t("cy"), t("r"))
        alpha = (0.5 - d * size).clamp(0, 1)
        alpha = alpha * torch.tensor(has, dtype=torch.float32, device=device)[:, None, None]
        color = torch.tensor([_fixed_or_jittered(rng, o["color"], o.get("rgb")) for o in objs],
                             dtype=torch.float32, device=device) / 127.5 - 1
        img = img * (1 - alpha[:, None]) + color[:, :, None, None] * alpha[:, None]
    return img


def batch_ids(captions, device="cpu"):
    """Right-padded ids [B, L] and a mask [B, L] (True on real tokens)."""
    ids = [tokenize(c) for c in captions]
    L = max(len(i) for i in ids)
    out = torch.full((len(ids), L), PAD, dtype=torch.long)
    mask = torch.zeros((len(ids), L), dtype=torch.bool)
    for b, row in enumerate(ids):
        out[b, :len(row)] = torch.tensor(row)
        mask[b, :len(row)] = True
    return out.to(device), mask.to(device)


if __name__ == "__main__":
    # python3 tools/train/data.py OUT.png : a grid of 16 training scenes and their captions.
    import sys
    from PIL import Image
    rng = random.Random(0)
    scenes = [training_scene(rng) for _ in range(16)]
    img = render(scenes, 256, seed=1)
    grid = ((img + 1) * 127.5).round().clamp(0, 255).byte().reshape(4, 4, 3, 256, 256)
    grid = grid.permute(0, 3, 1, 4, 2).reshape(1024, 1024, 3).numpy()
    Image.fromarray(grid).save(sys.argv[1] if len(sys.argv) > 1 else "scenes.png")
    for i, s in enumerate(scenes):
        print(i, s.caption, tokenize(s.caption))
    print(len(HELDOUT), "held-out triples of", len(_TRIPLES))
