"""Names the shape of each object in a picture from its pixels: circle, square, triangle,
star, diamond, cross (the demo model's shapes, tools/train/data.py SHAPES), or "none" for a
silhouette that is none of them.

Segmentation, as tests/demo_judge.c does it: the background color is the median of the
8-pixel border; object pixels are farther than OBJECT_DISTANCE (RGB) from it; holes are
filled; 4-connected components of at least MIN_AREA of the picture are objects.

Silhouette measures of one object (A area, P perimeter, R(theta) the radial profile: the
farthest boundary point from the centroid in each of BINS angle bins, over its mean):
    compactness  4 pi A / P^2 (P of the profile's polygon): circle 1, square 0.79, triangle 0.60
    solidity     A / area of the convex hull: convex shapes ~1, cross 0.74, star 0.56
    extent       A / area of the bounding box
    corners      peaks of R(theta) standing CORNER_PROMINENCE above the valleys on both sides:
                 circle 0, triangle 3, square / diamond / cross 4, star 5
The class is the one that the corners and convexity (solidity >= CONVEX_SOLIDITY) allow:
(0, convex) circle, (3, convex) triangle, (4, convex) square or diamond, (4, concave) cross,
(5, concave) star; anything else is "none". The class must then fit its outline: the RMS
distance between R(theta) and the profile of the ideal outline (data.py's geometry, measured
the same way), at the best rotation, at most FIT_TOLERANCE; else "none". Square and diamond
differ only by orientation (the demo draws both upright): a 4-cornered convex outline whose
corners point along the axes is a diamond, one whose sides do is a square. The other shapes
are judged at any rotation.

tests/tool_shape_judge.py checks it on PIL renders (sizes, rotations, colors, blur, noise)
and on silhouettes that are none of these shapes.

    python3 tools/eval/shape_judge.py PICTURE.png ...   # each object's shape and measures
"""
import math
import sys

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
BORDER = 8
OBJECT_DISTANCE = 64.0
MIN_AREA = 0.0035
BINS = 64
CORNER_PROMINENCE = 0.12  # of the mean radius; a square's corners stand 0.35 above its sides, pixel noise < 0.05
# Measured on tests/tool_shape_judge.py's renders: solidity of convex shapes >= 0.91, of star and
# cross <= 0.79; the worst fit of a true shape: circle 0.013, square 0.032, diamond 0.034,
# triangle 0.042, star 0.061, cross 0.077, while a hexagon fits the circle at 0.043.
CONVEX_SOLIDITY = 0.85
FIT_TOLERANCE = {"circle": 0.03, "square": 0.07, "diamond": 0.07, "triangle": 0.09, "star": 0.12, "cross": 0.12}
# The 3 x 3 grid of named positions (data.py POSITIONS): anchors at 1/4, 1/2, 3/4 of the side.
ANCHORS = {"top left": (0.25, 0.25), "top": (0.5, 0.25), "top right": (0.75, 0.25), "left": (0.25, 0.5),
           "center": (0.5, 0.5), "right": (0.75, 0.5), "bottom left": (0.25, 0.75), "bottom": (0.5, 0.75),
           "bottom right": (0.75, 0.75)}


# ------------------------------------------------------------------ outlines (data.py's geometry)

def outline(shape, r, angle=0.0):
    """Vertices (x right, y down, about the center) of data.py's shape of size r, turned by angle
    radians clockwise; a circle is a 96-gon."""
    if shape == "circle":
        pts = [(r * math.cos(t), r * math.sin(t)) for t in np.linspace(0, 2 * math.pi, 96, endpoint=False)]
    elif shape == "square":  # max(|x|, |y|) = 0.85 r
        h = 0.85 * r
        pts = [(-h, -h), (h, -h), (h, h), (-h, h)]
    elif shape == "diamond":  # |x| + |y| = 1.2 r
        h = 1.2 * r
        pts = [(0, -h), (h, 0), (0, h), (-h, 0)]
    elif shape == "triangle":  # pointing up, circumradius 1.15 r, centroid at the center
        pts = [(1.15 * r * math.sin(a), -1.15 * r * math.cos(a)) for a in (0, 2 * math.pi / 3, 4 * math.pi / 3)]
    elif shape == "star":  # five points up, outer radius 1.2 r, inner 0.45 of it
        pts = [((1.2 if k % 2 == 0 else 0.54) * r * math.sin(k * math.pi / 5),
                -(1.2 if k % 2 == 0 else 0.54) * r * math.cos(k * math.pi / 5)) for k in range(10)]
    elif shape == "cross":  # two bars of half-width 0.36 r and half-length r
        w = 0.36 * r
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w),
               (-w, -w)]
    else:
        raise ValueError(f"no shape {shape!r}")
    c, s = math.cos(angle), math.sin(angle)
    return [(x * c - y * s, x * s + y * c) for x, y in pts]


# ------------------------------------------------------------------ segmentation

def _runs(mask):
    """Horizontal runs (y, x0, x1) of True in a 2-D bool array, x1 exclusive."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    ys, xs = np.nonzero(np.diff(padded, axis=1))
    edges = xs.reshape(-1, 2)
    return [(int(y), int(a), int(b)) for y, (a, b) in zip(ys[0::2], edges)]


def label(mask):
    """4-connected components: (labels int32 array, 0 = none, count), by union of overlapping runs."""
    runs = _runs(mask)
    parent = list(range(len(runs)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row = {}
    for i, (y, _, _) in enumerate(runs):
        by_row.setdefault(y, []).append(i)
    for y, row in by_row.items():
        above = by_row.get(y - 1, [])
        j = 0
        for i in row:
            _, a0, a1 = runs[i]
            while j < len(above) and runs[above[j]][2] <= a0:
                j += 1
            k = j
            while k < len(above) and runs[above[k]][1] < a1:
                parent[find(i)] = find(above[k])
                k += 1
    labels = np.zeros(mask.shape, dtype=np.int32)
    ids = {}
    for i, (y, a, b) in enumerate(runs):
        labels[y, a:b] = ids.setdefault(find(i), len(ids) + 1)
    return labels, len(ids)


def object_mask(rgb):
    """Object pixels (holes filled) of an H x W x 3 uint8 picture, and the background color."""
    border = np.concatenate([rgb[:BORDER].reshape(-1, 3), rgb[-BORDER:].reshape(-1, 3),
                             rgb[:, :BORDER].reshape(-1, 3), rgb[:, -BORDER:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    distance = np.sqrt(((rgb.astype(np.float64) - background) ** 2).sum(axis=2))
    mask = distance > OBJECT_DISTANCE
    outside, _ = label(~mask)
    edge = np.unique(np.concatenate([outside[0], outside[-1], outside[:, 0], outside[:, -1]]))
    holes = ~mask & ~np.isin(outside, edge[edge > 0])
    return mask | holes, background


def components(rgb):
    """The objects of a picture, largest first: dicts {mask, area, cx, cy} (pixels)."""
    mask, _ = object_mask(rgb)
    labels, count = label(mask)
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    out = []
    for k in range(1, count + 1):
        if areas[k] < MIN_AREA * mask.size:
            continue
        ys, xs = np.nonzero(labels == k)
        out.append({"mask": labels == k, "area": int(areas[k]), "cx": xs.mean() + 0.5, "cy": ys.mean() + 0.5})
    return sorted(out, key=lambda c: -c["area"])


# ------------------------------------------------------------------ measures

def _hull_area(points):
    """Area of the convex hull of (x, y) points (Andrew's monotone chain, then the shoelace)."""
    pts = sorted(set(points))

    def half(seq):
        chain = []
        for p in seq:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1]) -
                                       (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])) <= 0:
                chain.pop()
            chain.append(p)
        return chain

    hull = half(pts)[:-1] + half(pts[::-1])[:-1]
    x, y = np.array(hull, dtype=np.float64).T
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def radial_profile(mask, cx, cy):
    """R(theta): the farthest boundary pixel edge from (cx, cy) in each of BINS angle bins (0 = right,
    clockwise), empty bins filled by circular interpolation."""
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    ys, xs = np.nonzero(mask & ~inner)
    dx, dy = xs + 0.5 - cx, ys + 0.5 - cy
    bins = ((np.arctan2(dy, dx) % (2 * math.pi)) / (2 * math.pi) * BINS).astype(int) % BINS
    r = np.full(BINS, -1.0)
    np.maximum.at(r, bins, np.hypot(dx, dy) + 0.5)
    filled = np.nonzero(r >= 0)[0]
    if len(filled) < BINS:
        r = np.interp(np.arange(BINS), np.concatenate([filled - BINS, filled, filled + BINS]), np.tile(r[filled], 3))
    return r


def _prominent_peaks(p):
    """Peaks of a circular profile standing at least CORNER_PROMINENCE above the lower of the two
    deepest valleys between it and the nearest higher points on either side."""
    # The tilt breaks ties: of two equal peaks (a square's corners, a cross's arm ends) one is higher.
    smooth = (np.roll(p, 1) + p + np.roll(p, -1)) / 3 + 1e-9 * np.arange(len(p))
    n, peaks = len(smooth), []
    for i in range(n):
        if not (smooth[i] >= smooth[i - 1] and smooth[i] > smooth[(i + 1) % n]):
            continue
        valleys = []
        for step in (1, -1):
            low, j = smooth[i], i
            for _ in range(n - 1):
                j = (j + step) % n
                if smooth[j] > smooth[i]:
                    break
                low = min(low, smooth[j])
            valleys.append(low)
        if smooth[i] - max(valleys) >= CORNER_PROMINENCE:
            peaks.append(i)
    return peaks


def measures(mask, cx, cy):
    """The silhouette measures of one object (see the top of the file)."""
    area = float(mask.sum())
    r = radial_profile(mask, cx, cy)
    theta = (np.arange(BINS) + 0.5) * 2 * math.pi / BINS
    px, py = r * np.cos(theta), r * np.sin(theta)
    perimeter = np.hypot(np.diff(px, append=px[0]), np.diff(py, append=py[0])).sum()
    corners = [(x, y) for y, x0, x1 in _runs(mask) for x in (x0, x1) for y in (y, y + 1)]
    ys, xs = np.nonzero(mask)
    box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    profile = r / r.mean()
    return {"area": area, "compactness": 4 * math.pi * area / perimeter ** 2, "solidity": area / _hull_area(corners),
            "extent": area / box, "corners": len(_prominent_peaks(profile)), "profile": profile}


# ------------------------------------------------------------------ the ideal profiles and the decision

def _ideal_profiles():
    """Each shape's profile, measured as above on a PIL render of its outline (512 px, r = 100 px)."""
    out = {}
    for shape in SHAPES:
        img = Image.new("L", (512, 512), 0)
        ImageDraw.Draw(img).polygon([(256 + x, 256 + y) for x, y in outline(shape, 100)], fill=255)
        mask = np.asarray(img) > 127
        ys, xs = np.nonzero(mask)
        out[shape] = measures(mask, xs.mean() + 0.5, ys.mean() + 0.5)["profile"]
    return out


IDEAL = _ideal_profiles()
# Square and diamond: turned at most 22.5 degrees (else the one is the other); the rest: any turn.
_QUARTER = BINS // 16
TURNS = {s: range(-_QUARTER, _QUARTER + 1) if s in ("square", "diamond") else range(BINS) for s in SHAPES}
CANDIDATES = {(0, True): ("circle",), (3, True): ("triangle",), (4, True): ("square", "diamond"),
              (4, False): ("cross",), (5, False): ("star",)}


def fit(profile, shape):
    """RMS distance of a profile to the shape's ideal one at its best allowed turn."""
    return min(float(np.sqrt(np.mean((profile - np.roll(IDEAL[shape], t)) ** 2))) for t in TURNS[shape])


def classify(m):
    """(shape or "none", fit distance or None) from measures()."""
    options = CANDIDATES.get((m["corners"], m["solidity"] >= CONVEX_SOLIDITY), ())
    if not options:
        return "none", None
    distance, shape = min((fit(m["profile"], s), s) for s in options)
    return (shape if distance <= FIT_TOLERANCE[shape] else "none"), distance


def shapes_in(rgb):
    """[(shape, component, measures)] for every object of an H x W x 3 uint8 picture, largest first."""
    out = []
    for c in components(rgb):
        m = measures(c["mask"], c["cx"], c["cy"])
        out.append((classify(m)[0], c, m))
    return out


def _cell(v):
    """Row or column of the 3 x 3 grid for a coordinate in [0, 1]: split at 3/8 and 5/8."""
    return 0 if v < 3 / 8 else (1 if v < 5 / 8 else 2)


def judge_named_objects(path, named):
    """The shape found for each named object {"shape", "position" (name or None)}: the largest
    object in the named position's cell (cells split at 3/8 and 5/8 of the side) else the nearest
    to its anchor, or for unpositioned ones the largest left; "missing" when none is left."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = rgb.shape[:2]
    found = shapes_in(rgb)
    left = list(range(len(found)))
    out = []
    for o in named:
        if not left:
            out.append("missing")
            continue
        pick = left[0]
        if o.get("position"):
            ax, ay = ANCHORS[o["position"]]
            where = [(found[i][1]["cx"] / w, found[i][1]["cy"] / h) for i in left]
            same = [i for i, (x, y) in zip(left, where) if (_cell(x), _cell(y)) == (_cell(ax), _cell(ay))]
            pick = same[0] if same else left[min(range(len(left)), key=lambda k: math.dist(where[k], (ax, ay)))]
        left.remove(pick)
        out.append(found[pick][0])
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: shape_judge.py PICTURE.png ...")
    for path in sys.argv[1:]:
        try:
            rgb = np.asarray(Image.open(path).convert("RGB"))
        except (OSError, ValueError) as e:
            sys.exit(f"shape_judge: error: {path}: cannot read the picture ({e})")
        for shape, c, m in shapes_in(rgb):
            distance = classify(m)[1]
            print(f"{path}\t{shape}\tat ({c['cx']:.0f}, {c['cy']:.0f})\tarea {c['area']}\tcompactness "
                  f"{m['compactness']:.2f}\tsolidity {m['solidity']:.2f}\textent {m['extent']:.2f}\tcorners "
                  f"{m['corners']}\tfit {'-' if distance is None else f'{distance:.3f}'}")


if __name__ == "__main__":
    main()
