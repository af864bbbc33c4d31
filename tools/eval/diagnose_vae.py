"""Does the demo model's VAE keep shapes? (issue 35's diagnosis, step 1)

Renders single-object training scenes with tools/train/data.py's renderer (every shape at
several sizes, seeded colors and positions), encodes them with the model's VAE (diffusers
AutoencoderKL, the exported folder MODEL/vae), decodes the posterior mean, and runs the
pixel shape judge (tools/eval/shape_judge.py) on the originals and on the round-trips.
Prints, per shape and in all, how many objects the judge names right, the round-trips'
PSNR, and the mean compactness, solidity, corners and fit distance of each shape's
largest object; --save DIR writes every original and round-trip as PNG.

    python3 tools/eval/diagnose_vae.py --model models/demo --per-cell 3 --seed 35
    python3 tools/eval/diagnose_vae.py --ckpt .train/vae ...   # a training checkpoint's VAE

Where the round-trips are judged right as often as the originals, the VAE keeps the
shapes and the loss is upstream (the transformer); where they are not, the VAE is a
bottleneck of its own.
"""
import argparse
import math
import os
import random
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import data  # noqa: E402
import shape_judge  # noqa: E402

RADII = (0.09, 0.13, 0.18, 0.23)  # data.py's sizes run from 0.075 ("small") to 0.23 ("large")


def scenes(per_cell, seed):
    """per_cell scenes for every (shape, radius): a random color on a random other background,
    the object somewhere a shape of that radius fits whole."""
    rng = random.Random(seed)
    out = []
    for shape in data.SHAPES:
        for r in RADII:
            for _ in range(per_cell):
                bg = rng.choice(data.COLOR_NAMES)
                color = rng.choice([c for c in data.COLOR_NAMES if c != bg])
                lo, hi = 0.5 - (0.5 - 1.25 * r) * 0.8, 0.5 + (0.5 - 1.25 * r) * 0.8
                obj = dict(shape=shape, color=color, cx=rng.uniform(lo, hi), cy=rng.uniform(lo, hi), r=r,
                           position=None)
                out.append(data.Scene(bg, [obj], f"{data.article(color)} {color} {shape}", "single"))
    return out


def to_uint8(x):
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8, as moedit writes pictures."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def judged(rgb, shape):
    """(the shape judge's name for the largest object, its measures) or ("missing", None)."""
    found = shape_judge.shapes_in(rgb)
    if not found:
        return "missing", None
    name, _, m = found[0]
    return name, m


def object_color(orig, trip, bg_rgb):
    """The named color nearest to the round trip's median inside the original's object pixels
    (farther than the judge's distance from the background), shrunk by 3 px off the outline."""
    mask = np.linalg.norm(orig.astype(float) - np.asarray(bg_rgb, float), axis=-1) > shape_judge.OBJECT_DISTANCE
    for _ in range(3):
        mask = mask & np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
    if not mask.any():
        return "missing"
    rgb = np.median(trip[mask].astype(float), axis=0)
    return min(data.COLORS, key=lambda c: np.linalg.norm(rgb - np.asarray(data.COLORS[c], float)))


def summary(rows, key):
    """Counts of right names and mean measures of rows [(shape, name, measures)]."""
    right = sum(name == shape for shape, name, _ in rows)
    ms = [m for _, _, m in rows if m is not None]
    fits = [shape_judge.fit(m["profile"], shape) for shape, _, m in rows if m is not None]
    mean = lambda k: float(np.mean([m[k] for m in ms])) if ms else float("nan")
    return (f"{key:9s} {right:3d}/{len(rows):<3d} compactness {mean('compactness'):.3f} solidity "
            f"{mean('solidity'):.3f} corners {mean('corners'):.2f} fit-to-own-shape "
            f"{float(np.mean(fits)) if fits else float('nan'):.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--ckpt", default="", help="judge a training checkpoint's vae.safetensors instead of MODEL/vae")
    ap.add_argument("--per-cell", type=int, default=3, help="scenes per (shape, radius)")
    ap.add_argument("--seed", type=int, default=35)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--sample", action="store_true", help="decode a posterior sample instead of the mean")
    ap.add_argument("--save", default="", help="folder for the PNGs (orig-N.png, vae-N.png)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.ckpt:
        import train
        vae = train.load_vae(args.ckpt, torch.device("cpu"))
    else:
        from diffusers import AutoencoderKL
        vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"), torch_dtype=torch.float32).eval()
    batch = scenes(args.per_cell, args.seed)
    x = data.render(batch, args.size, seed=args.seed)
    ys = []
    with torch.no_grad():
        for i in range(0, len(batch), 8):
            post = vae.encode(x[i:i + 8]).latent_dist
            ys.append(vae.decode(post.sample() if args.sample else post.mean).sample)
    y = torch.cat(ys)
    orig, trip = to_uint8(x), to_uint8(y)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    rows = {"original": [], "round-trip": []}
    psnr, colors = [], {}
    for i, s in enumerate(batch):
        named = s.objects[0]["color"]
        kept = object_color(orig[i], trip[i], orig[i][0, 0])
        colors.setdefault(named, []).append(kept)
        shape = s.objects[0]["shape"]
        for key, rgb in (("original", orig[i]), ("round-trip", trip[i])):
            name, m = judged(rgb, shape)
            rows[key].append((shape, name, m, s.objects[0]["r"]))
        mse = np.mean((orig[i].astype(np.float64) - trip[i].astype(np.float64)) ** 2)
        psnr.append(10 * math.log10(255 ** 2 / max(mse, 1e-10)))
        if args.save:
            Image.fromarray(orig[i]).save(os.path.join(args.save, f"orig-{i:03d}.png"))
            Image.fromarray(trip[i]).save(os.path.join(args.save, f"vae-{i:03d}.png"))
    print(f"{len(batch)} scenes ({args.per_cell} per shape and radius {RADII}), {args.size}x{args.size}, seed "
          f"{args.seed}; VAE {'sample' if args.sample else 'mean'} round-trip PSNR median "
          f"{np.median(psnr):.2f} dB, min {np.min(psnr):.2f} dB")
    for key, rs in rows.items():
        print(f"== {key}: judged right")
        print("  " + summary([r[:3] for r in rs], "all"))
        for shape in data.SHAPES:
            print("  " + summary([r[:3] for r in rs if r[0] == shape], shape))
        for r in RADII:
            sub = [row for row in rs if row[3] == r]
            print(f"  r={r:.2f}    {sum(n == s for s, n, _, _ in sub):3d}/{len(sub)}")
        names = {}
        for shape, name, _, _ in rs:
            if name != shape:
                names[name] = names.get(name, 0) + 1
        print(f"  wrong names: {names}")
    print("== object color after the round trip (named color nearest to the median inside the object)")
    right = sum(k == c for c, ks in colors.items() for k in ks)
    print(f"  all {right}/{len(batch)}; " + "; ".join(
        f"{c} {sum(k == c for k in ks)}/{len(ks)}" + (f" (as {', '.join(k for k in ks if k != c)})"
                                                      if any(k != c for k in ks) else "")
        for c, ks in sorted(colors.items())))


if __name__ == "__main__":
    main()
