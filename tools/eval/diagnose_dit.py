"""Where does generation lose the shapes? (issue 35's diagnosis, step 2: the transformer)

grid    moedit generates held-out single-object prompts (tools/eval/sets/prompts.jsonl, the
        first --per-shape of each shape) under several (steps, guidance) settings, and the
        pixel shape judge names the prompt's object (matched as eval_adherence.py does).
sdedit  clean renders of training-distribution scenes (tools/train/data.py's renderer, no
        held-out triple, the radii the VAE keeps best: 0.18 and 0.23) go through
        `moedit edit --edit-mode strength` with their own caption at several strengths: the
        render's latents noised to that level and denoised by the model from there. Strength
        0 is the VAE round trip alone (no transformer step).

    python3 tools/eval/diagnose_dit.py grid --moedit build/moedit --model models/demo --out /tmp/g \
        --settings 20x4,50x2,50x4,50x7
    python3 tools/eval/diagnose_dit.py sdedit --moedit build/moedit --model models/demo --out /tmp/s \
        --strengths 0,0.2,0.4,0.6,0.8,1

Prints, per setting or strength, how many objects the judge names right and the mean
compactness, solidity, corners and fit distance to the asked shape of the matched objects.
"""
import argparse
import json
import os
import random
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "train"))
import data  # noqa: E402
import diagnose_vae  # noqa: E402
import shape_judge  # noqa: E402


def matched_measures(path, objects):
    """The shape judge's name and measures of the object matched to objects[0]."""
    name = shape_judge.judge_named_objects(path, objects)[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    found = shape_judge.shapes_in(rgb)
    pos = objects[0].get("position")
    if pos and found:
        h, w = rgb.shape[:2]
        ax, ay = shape_judge.ANCHORS[pos]
        found.sort(key=lambda f: (f[1]["cx"] / w - ax) ** 2 + (f[1]["cy"] / h - ay) ** 2)
    return name, (found[0][2] if found else None)


def line(key, rows):
    """rows: [(asked shape, judged name, measures or None)]."""
    right = sum(n == s for s, n, _ in rows)
    ms = [(s, m) for s, _, m in rows if m is not None]
    mean = lambda k: np.mean([m[k] for _, m in ms]) if ms else float("nan")
    fit = np.mean([shape_judge.fit(m["profile"], s) for s, m in ms]) if ms else float("nan")
    names = {}
    for s, n, _ in rows:
        if n != s:
            names[n] = names.get(n, 0) + 1
    return (f"{key:14s} right {right:2d}/{len(rows):<2d} compactness {mean('compactness'):.3f} solidity "
            f"{mean('solidity'):.3f} corners {mean('corners'):.2f} fit {fit:.3f}  wrong: {names}")


def grid(args):
    entries = [json.loads(l) for l in open(os.path.join(HERE, "sets", "prompts.jsonl"))]
    picked = []
    for shape in data.SHAPES:
        picked += [e for e in entries if e["kind"] == "single" and e["objects"][0]["shape"] == shape][:args.per_shape]
    os.makedirs(args.out, exist_ok=True)
    prompt_file = os.path.join(args.out, "prompts.txt")
    with open(prompt_file, "w") as f:
        f.write("\n".join(e["prompt"] for e in picked) + "\n")
    for setting in args.settings.split(","):
        steps, guidance = setting.split("x")
        cmd = [args.moedit, "generate", "--model", args.model, "--prompt-file", prompt_file, "--height", "256",
               "--width", "256", "--num-inference-steps", steps, "--guidance-scale", guidance, "--seed",
               str(args.seed), "--output", os.path.join(args.out, f"s{steps}-g{guidance}.png"), "--overwrite",
               "--quiet", "--json"]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        files = json.loads(out.strip().splitlines()[-1])["files"]
        rows = []
        for path, e in zip(files, picked):
            name, m = matched_measures(path, e["objects"])
            rows.append((e["objects"][0]["shape"], name, m))
        print(line(f"steps {steps} g {guidance}", rows), flush=True)


def sdedit(args):
    scenes = [s for s in diagnose_vae.scenes(args.per_cell, args.seed)
              if s.objects[0]["r"] >= 0.18 and not any(t in data.HELDOUT for t in s.triples())]
    per_shape = {}
    for s in scenes:
        per_shape.setdefault(s.objects[0]["shape"], []).append(s)
    scenes = [s for shape in data.SHAPES for s in per_shape.get(shape, [])[:args.per_shape]]
    os.makedirs(args.out, exist_ok=True)
    pictures = diagnose_vae.to_uint8(data.render(scenes, 256, seed=args.seed))
    renders = []
    for i, (s, rgb) in enumerate(zip(scenes, pictures)):
        renders.append(os.path.join(args.out, f"render-{i:02d}.png"))
        Image.fromarray(rgb).save(renders[-1])
    rows = [("render", [(s.objects[0]["shape"],) + matched_measures(p, [{"shape": s.objects[0]["shape"]}])
                        for s, p in zip(scenes, renders)])]
    print(line("render", rows[0][1]), flush=True)
    for strength in args.strengths.split(","):
        results = []
        for i, (s, render) in enumerate(zip(scenes, renders)):
            o = s.objects[0]
            prompt = f"{data.article(o['color'])} {o['color']} {o['shape']} on {data.article(s.bg)} {s.bg} background"
            path = os.path.join(args.out, f"edit-{strength}-{i:02d}.png")
            if float(strength) == 0:  # the VAE round trip: encode and decode with no transformer step
                Image.fromarray(diagnose_vae.to_uint8(args.vae_roundtrip(render))[0]).save(path)
            else:
                subprocess.run([args.moedit, "edit", "--model", args.model, "--image", render, "--prompt", prompt,
                                "--edit-mode", "strength", "--strength", strength, "--num-inference-steps",
                                str(args.steps), "--guidance-scale", str(args.guidance), "--seed", "1", "--output",
                                path, "--overwrite", "--quiet"], check=True, capture_output=True)
            results.append((o["shape"],) + matched_measures(path, [{"shape": o["shape"]}]))
        print(line(f"strength {strength}", results), flush=True)


def vae_roundtrip(model):
    """A function PNG path -> decoded posterior mean [1, 3, H, W] with the model's VAE (diffusers)."""
    import torch
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(os.path.join(model, "vae"), torch_dtype=torch.float32).eval()

    def run(path):
        x = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 127.5 - 1
        with torch.no_grad():
            return vae.decode(vae.encode(x).latent_dist.mean).sample
    return run


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["grid", "sdedit"])
    ap.add_argument("--moedit", required=True)
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--per-shape", type=int, default=2)
    ap.add_argument("--per-cell", type=int, default=6, help="sdedit: diagnose_vae.scenes() per (shape, radius)")
    ap.add_argument("--settings", default="20x4,50x2,50x4,50x7", help="grid: STEPSxGUIDANCE,...")
    ap.add_argument("--strengths", default="0,0.2,0.4,0.6,0.8,1")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    args = ap.parse_args()
    if args.mode == "grid":
        grid(args)
    else:
        args.vae_roundtrip = vae_roundtrip(args.model)
        sdedit(args)


if __name__ == "__main__":
    main()
