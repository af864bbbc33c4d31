"""Does a clip move the way its prompt says? Judged from pixels.

For prompts "a COLOR SHAPE moving DIRECTION on a BG background" (directions:
left to right, right to left, top to bottom, bottom to top), moedit video
writes each clip as numbered frames; per frame, the object's pixels are those
far from the background color (the median of the frame's border), and their
centroid is tracked across frames. A clip passes when the centroid travels
at least MIN_TRAVEL of the frame side along the stated axis, in the stated
sense, and more along that axis than across it.

    python3 tools/eval/eval_video_motion.py --moedit build/moedit --model models/demo --out /tmp/motion

Prints the pass rate and writes OUT/results.json. Needs numpy and Pillow.
"""
import argparse
import json
import os
import random
import subprocess
import time

import numpy as np
from PIL import Image

DIRECTIONS = {  # name: (axis 0 = x, 1 = y; sense)
    "left to right": (0, 1),
    "right to left": (0, -1),
    "top to bottom": (1, 1),
    "bottom to top": (1, -1),
}
COLORS = ["red", "green", "blue", "yellow", "orange", "purple"]
BACKGROUNDS = ["white", "black", "gray"]
SHAPES = ["circle", "square", "triangle", "star", "diamond"]
MIN_TRAVEL = 0.2
OBJECT_DISTANCE = 80  # RGB distance from the background that counts as object


def prompts(count, seed):
    rng = random.Random(seed)
    out = []
    for i in range(count):
        direction = list(DIRECTIONS)[i % len(DIRECTIONS)]
        color, shape, bg = rng.choice(COLORS), rng.choice(SHAPES), rng.choice(BACKGROUNDS)
        article = "an" if color[0] in "aeiou" else "a"
        out.append((f"{article} {color} {shape} moving {direction} on a {bg} background", direction))
    return out


def centroid(frame):
    """(x, y) in [0, 1] of the pixels far from the border's median color; None when there are none."""
    border = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]]).astype(np.float32)
    bg = np.median(border, axis=0)
    far = np.linalg.norm(frame.astype(np.float32) - bg, axis=2) > OBJECT_DISTANCE
    if far.sum() < 4:
        return None
    ys, xs = np.nonzero(far)
    h, w = far.shape
    return (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h


def judge(frames_dir, frames, direction):
    points = []
    for f in range(frames):
        c = centroid(np.asarray(Image.open(os.path.join(frames_dir, f"frame-{f:04d}.png")).convert("RGB")))
        if c is not None:
            points.append((f, c))
    if len(points) < 2:
        return False, "no object found in at least two frames", None
    t = np.array([p[0] for p in points], dtype=np.float64)
    xy = np.array([p[1] for p in points])
    slope = np.polyfit(t, xy, 1)[0] * (frames - 1)  # fitted travel over the clip, per axis
    axis, sense = DIRECTIONS[direction]
    along, across = slope[axis] * sense, abs(slope[1 - axis])
    ok = bool(along >= MIN_TRAVEL and along > across)
    return ok, f"travel along {along:+.2f}, across {across:.2f}", slope.tolist()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    results, start = [], time.time()
    for i, (prompt, direction) in enumerate(prompts(args.count, args.seed)):
        frames_dir = os.path.join(args.out, f"clip{i:03d}")
        subprocess.run([args.moedit, "video", "--model", args.model, "--prompt", prompt, "--num-frames",
                        str(args.frames), "--height", str(args.size), "--width", str(args.size),
                        "--num-inference-steps", str(args.steps), "--guidance-scale", str(args.guidance),
                        "--seed", str(args.seed + i), "--output", frames_dir + "/", "--quiet"], check=True)
        ok, why, travel = judge(frames_dir, args.frames, direction)
        results.append({"prompt": prompt, "direction": direction, "pass": ok, "why": why, "travel": travel})
        print(f"{'PASS' if ok else 'fail'}  {prompt}: {why}", flush=True)
    passed = sum(r["pass"] for r in results)
    summary = {"model": args.model, "clips": len(results), "passed": passed, "rate": passed / len(results),
               "frames": args.frames, "size": args.size, "steps": args.steps, "guidance": args.guidance,
               "min_travel": MIN_TRAVEL, "seconds": round(time.time() - start, 1), "results": results}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"{passed}/{len(results)} clips move as stated ({100 * passed / len(results):.0f}%), "
          f"{summary['seconds']} s")


if __name__ == "__main__":
    main()
