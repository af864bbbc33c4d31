#!/usr/bin/env python3
"""Where a rank's GPU time goes in an Nsight Systems trace (its SQLite export):
how long the GPU computed, how long NCCL's kernels ran, how much of that ran
beside compute, and how long the GPU idled, inside the transformer steps.

    nsys profile -t cuda -o rank0 --export sqlite moedit ...
    tools/nsys_overlap.py rank0.sqlite [more.sqlite ...]

A trace is cut into runs where the GPU idles for over 50 ms (set-up, the VAE,
another program's turn); each run with attention kernels is reported over
the span from its first to its last attention kernel (cuDNN's fused
attention or moedit's flash kernels): the denoising steps without the
weights' set-up or the VAE decode. NCCL kernels are those whose name starts
with "nccl". Idle gaps longer than 20 us are counted apart: they are
the host round trips (each MoE layer's routing offsets) and waits on peers.
"""
import sqlite3
import sys


def union(intervals):
    """Sorted, merged copy of [start, end) intervals."""
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def length(intervals):
    return sum(end - start for start, end in intervals)


def intersect(a, b):
    """Total overlap of two merged interval lists."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def is_attention(name):
    lowered = name.lower()
    return "fmha" in lowered or "sdpa" in lowered or "flash" in lowered or "attention" in lowered


def report_window(db, label, kernels):
    attention = [k for k in kernels if is_attention(k[2])]
    t0, t1 = min(k[0] for k in attention), max(k[1] for k in attention)
    inside = [k for k in kernels if k[0] >= t0 and k[1] <= t1]
    nccl = union([k[:2] for k in inside if k[2].startswith("nccl")])
    compute = union([k[:2] for k in inside if not k[2].startswith("nccl")])
    busy = union([k[:2] for k in inside])
    window = t1 - t0
    gaps = [b[0] - a[1] for a, b in zip(busy, busy[1:])]
    long_gaps = [g for g in gaps if g > 20_000]
    both = intersect(nccl, compute)
    ms = 1e-6
    print(f"{label}: {window * ms:.1f} ms from the first to the last attention kernel, {len(inside)} kernels, "
          f"{len(attention)} attention calls")
    print(f"  compute busy {length(compute) * ms:.1f} ms, NCCL busy {length(nccl) * ms:.1f} ms "
          f"(beside compute {both * ms:.1f}, alone {(length(nccl) - both) * ms:.1f})")
    print(f"  idle {(window - length(busy)) * ms:.1f} ms: {len(long_gaps)} gaps over 20 us "
          f"({sum(long_gaps) * ms:.1f} ms), {len(gaps) - len(long_gaps)} shorter ({(sum(gaps) - sum(long_gaps)) * ms:.1f} ms)")
    per_name = {}
    for start, end, name in inside:
        per_name[name] = per_name.get(name, 0) + end - start
    for name, total in sorted(per_name.items(), key=lambda item: -item[1])[:12]:
        print(f"  {total * ms:9.1f} ms  {name[:100]}")
    copies = list(db.execute("SELECT start, end FROM CUPTI_ACTIVITY_KIND_MEMCPY WHERE start >= ? AND end <= ?", (t0, t1)))
    print(f"  memcpy in the window: {len(copies)} ({length(union(copies)) * ms:.1f} ms)")


def report(path):
    # Read-only: a missing path is an error, not a new empty database.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = dict(db.execute("SELECT id, value FROM StringIds"))
    kernels = sorted((start, end, names.get(short, "?"))
                     for start, end, short in db.execute("SELECT start, end, shortName FROM CUPTI_ACTIVITY_KIND_KERNEL"))
    runs, last_end = [], None
    for k in kernels:
        if last_end is None or k[0] - last_end > 50_000_000:
            runs.append([])
        runs[-1].append(k)
        last_end = k[1] if last_end is None else max(last_end, k[1])
    runs = [r for r in runs if any(is_attention(k[2]) for k in r)]
    if not runs:
        print(f"{path}: no attention kernels found")
    for i, run in enumerate(runs):
        report_window(db, f"{path} run {i + 1}", run)


if len(sys.argv) < 2:
    sys.exit("usage: tools/nsys_overlap.py TRACE.sqlite [more.sqlite ...]")
for trace in sys.argv[1:]:
    try:
        report(trace)
    except sqlite3.Error as e:  # missing, not SQLite, or not an nsys export
        sys.exit(f"nsys_overlap.py: {trace}: {e} (an `nsys export --type sqlite` file is needed)")
