"""tools/eval/shape_judge.py names the demo's shapes from pixels: every shape drawn with PIL
(4x supersampled, so edges are antialiased) at four sizes (data.py's smallest r = 0.075 of the
side to its largest, 0.23), turned (square and diamond by up to 15 degrees, since their
orientation is what tells them apart; the others by any angle), in two palette colors on a
third, a Gaussian blur of radius 0.6-1.5 px and noise of sigma 4 levels, at a random place;
then silhouettes that are none of the shapes (ellipses, 2:1 rectangles, hexagons, pentagons,
six-pointed stars, L shapes, two overlapping disks, random wobbly blobs), which must be judged
"none". Seeded: the same pictures every run. Requires at least 98% right on the shapes and on
the silhouettes, and names each miss. Last, judge_named_objects() on a picture of two objects
(a star at the top left, a square at the bottom right): each named object gets the shape in
its cell, whatever the order named; a third named object is "missing"."""
import math
import os
import random
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
import shape_judge  # noqa: E402

SIDE, SUPER = 256, 4
PALETTE = [(220, 30, 30), (30, 160, 50), (30, 70, 220), (245, 220, 30), (245, 135, 15), (130, 40, 170),
           (250, 140, 200), (245, 245, 245), (20, 20, 20), (128, 128, 128)]  # data.py COLORS
SIZES = (0.075, 0.12, 0.18, 0.23)
PER_SIZE = 10  # pictures per shape and size
MIN_ACCURACY = 0.98


def picture(rng, polygons):
    """polygons: vertex lists in units of the side about (0, 0), drawn at a random place."""
    bg, fg = rng.sample(PALETTE, 2)
    extent = max(max(abs(x), abs(y)) for poly in polygons for x, y in poly)
    cx, cy = (rng.uniform(extent + 0.03, 1 - extent - 0.03) for _ in range(2))
    img = Image.new("RGB", (SIDE * SUPER, SIDE * SUPER), bg)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        draw.polygon([((cx + x) * SIDE * SUPER, (cy + y) * SIDE * SUPER) for x, y in poly], fill=fg)
    img = img.resize((SIDE, SIDE), Image.LANCZOS).filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.5)))
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 4, (SIDE, SIDE, 3))
    return np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)


def turned(points, angle):
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in points]


def regular(n, r, inner=None):
    """A regular n-gon, or with inner (a fraction of r) an n-pointed star."""
    if inner is None:
        return [(r * math.cos(2 * math.pi * k / n), r * math.sin(2 * math.pi * k / n)) for k in range(n)]
    return [((r if k % 2 == 0 else inner * r) * math.cos(math.pi * k / n),
             (r if k % 2 == 0 else inner * r) * math.sin(math.pi * k / n)) for k in range(2 * n)]


def wobbly_blob(rng, r):
    """A radius that wanders by two to four random harmonics, each at least 0.12 of r."""
    harmonics = [(k, rng.uniform(0.12, 0.2), rng.uniform(0, 2 * math.pi)) for k in rng.sample(range(2, 7), rng.randint(2, 4))]
    return [(r * (1 + sum(a * math.cos(k * t + p) for k, a, p in harmonics)) * math.cos(t),
             r * (1 + sum(a * math.cos(k * t + p) for k, a, p in harmonics)) * math.sin(t))
            for t in np.linspace(0, 2 * math.pi, 120, endpoint=False)]


def none_silhouettes(rng, r):
    """Silhouettes that are none of the demo's shapes, each as a list of polygons."""
    a = rng.uniform(0, math.pi)
    return {
        "ellipse 2:1": [turned([(r * math.cos(t), 0.5 * r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 96)], a)],
        "rectangle 2:1": [turned([(-r, -r / 2), (r, -r / 2), (r, r / 2), (-r, r / 2)], a)],
        "hexagon": [turned(regular(6, r), a)],
        "pentagon": [turned(regular(5, r), a)],
        "six-pointed star": [turned(regular(6, r, inner=0.5), a)],
        "L shape": [turned([(-r, -r), (-0.3 * r, -r), (-0.3 * r, 0.4 * r), (r, 0.4 * r), (r, r), (-r, r)], a)],
        "two overlapping disks": [turned([(x - 0.45 * r, y) for x, y in regular(64, 0.55 * r)], a),
                                  turned([(x + 0.45 * r, y) for x, y in regular(64, 0.55 * r)], a)],
        "wobbly blob": [wobbly_blob(rng, r)],
    }


def judged(rgb):
    found = shape_judge.shapes_in(rgb)
    return found[0][0] if len(found) == 1 else f"{len(found)} objects"


def check_named_objects():
    img = Image.new("RGB", (SIDE, SIDE), PALETTE[2])
    draw = ImageDraw.Draw(img)
    for shape, (cx, cy), color in (("star", (0.25, 0.25), PALETTE[3]), ("square", (0.75, 0.75), PALETTE[7])):
        draw.polygon([((cx + x) * SIDE, (cy + y) * SIDE) for x, y in shape_judge.outline(shape, 0.12)], fill=color)
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "two.png")
        img.save(path)
        named = [{"shape": "square", "position": "bottom right"}, {"shape": "star", "position": "top left"},
                 {"shape": "circle", "position": None}]
        got = shape_judge.judge_named_objects(path, named)
    print(f"two objects, named square (bottom right), star (top left), circle: judged {got}")
    return got == ["square", "star", "missing"]


def main():
    placed = check_named_objects()
    rng = random.Random(35)
    misses, total = [], 0
    for shape in shape_judge.SHAPES:
        for size in SIZES:
            for _ in range(PER_SIZE):
                limit = math.radians(15) if shape in ("square", "diamond") else math.pi
                angle = rng.uniform(-limit, limit)
                got = judged(picture(rng, [shape_judge.outline(shape, size, angle)]))
                total += 1
                if got != shape:
                    misses.append(f"{shape} r={size} turned {math.degrees(angle):.0f} deg: judged {got}")
    shape_accuracy = 1 - len(misses) / total
    print(f"shapes: {total - len(misses)}/{total} right ({100 * shape_accuracy:.1f}%)")
    none_misses, none_total = [], 0
    for size in SIZES:
        for _ in range(PER_SIZE // 2):
            for name, polygons in none_silhouettes(rng, size).items():
                got = judged(picture(rng, polygons))
                none_total += 1
                if got != "none":
                    none_misses.append(f"{name} r={size}: judged {got}")
    none_accuracy = 1 - len(none_misses) / none_total
    print(f"none of the shapes: {none_total - len(none_misses)}/{none_total} judged none "
          f"({100 * none_accuracy:.1f}%)")
    for m in misses + none_misses:
        print("  miss:", m)
    if shape_accuracy < MIN_ACCURACY or none_accuracy < MIN_ACCURACY or not placed:
        sys.exit(f"tool_shape_judge: FAIL (at least {100 * MIN_ACCURACY:.0f}% required on each; the two objects "
                 "named by their cells)")
    print("tool_shape_judge: ok")


if __name__ == "__main__":
    main()
