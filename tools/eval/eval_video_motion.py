"""Does a clip move the way its prompt says? Judged from pixels.

For prompts "a COLOR SHAPE moving DIRECTION on a BG background" (directions:
left to right, right to left, top to bottom, bottom to top), moedit video
writes each clip as numbered frames, and the demo tests' motion judge
(tests/test_demo_video.c --judge: the centroid of the object pixels tracked
over the frames, a straight line fitted; at least 0.2 of the side along the
stated axis, in the stated sense, and more than across) gives the verdict.
The (color, shape, background) triples are the held-out ones of
tools/train/data.py (HELDOUT): training drew none of them, in any task.

    python3 tools/eval/eval_video_motion.py --moedit build/moedit \
        --judge build/tests/test_demo_video --model models/demo --out /tmp/motion

Prints the pass rate and writes OUT/results.json.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import data  # noqa: E402

DIRECTIONS = ["left to right", "right to left", "top to bottom", "bottom to top"]


def prompts(count, seed):
    rng = random.Random(seed)
    triples = sorted(data.HELDOUT)
    out = []
    for i in range(count):
        color, shape, bg = rng.choice(triples)
        direction = DIRECTIONS[i % len(DIRECTIONS)]
        out.append((f"{data.article(color)} {color} {shape} moving {direction} on {data.article(bg)} {bg} background",
                    direction))
    return out


def judge(judge_binary, frames_dir, frames, direction):
    line = subprocess.run([judge_binary, "--judge", frames_dir, str(frames), direction], check=True,
                          capture_output=True, text=True).stdout.strip()
    verdict, why, travel = line.split("\t")
    return verdict == "ok", why, [float(v) for v in travel.split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moedit", required=True)
    ap.add_argument("--judge", required=True, help="tests/test_demo_video of a build")
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
        ok, why, travel = judge(args.judge, frames_dir, args.frames, direction)
        results.append({"prompt": prompt, "direction": direction, "pass": ok, "why": why, "travel": travel})
        print(f"{'PASS' if ok else 'fail'}  {prompt}: {why}", flush=True)
    passed = sum(r["pass"] for r in results)
    summary = {"model": args.model, "clips": len(results), "passed": passed, "rate": passed / len(results),
               "frames": args.frames, "size": args.size, "steps": args.steps, "guidance": args.guidance,
               "heldout_triples": True, "seconds": round(time.time() - start, 1), "results": results}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"{passed}/{len(results)} clips move as stated ({100 * passed / len(results):.0f}%), "
          f"{summary['seconds']} s")


if __name__ == "__main__":
    main()
