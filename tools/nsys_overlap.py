#!/usr/bin/env python3
"""Where a rank's GPU time goes in a kernel trace: how long the GPU computed,
how long NCCL's kernels ran, how much of that ran beside compute, how long
the GPU idled, and which kernels took the time, inside the transformer steps.
A trace is an Nsight Systems SQLite export or a tools/kernel_trace.c file
(.tsv, for machines without nsys; it traces PyTorch programs too):

    nsys profile -t cuda -o rank0 --export sqlite moedit ...
    CUDA_INJECTION64_PATH=build/libmoedit_kernel_trace.so MOEDIT_KERNEL_TRACE=rank.%p.tsv moedit ...
    tools/nsys_overlap.py rank0.sqlite rank.1234.tsv ...

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


def kind_of(name):
    """The share a kernel counts in: attention, matrix products, NCCL, or the element-wise rest."""
    lowered = name.lower()
    if is_attention(name):
        return "attention"
    if name.startswith("nccl"):
        return "NCCL"
    if any(word in lowered for word in ("gemm", "nvjet", "xmma", "cutlass", "matmul")):
        return "products"
    return "other"


def idle_by_predecessor(events, threshold=20_000):
    """Gaps over `threshold` ns in which nothing ran, summed by the name of
    the event that ended last before each: {name: [gaps, total ns]}. Events
    are (start, end, name) sorted by start."""
    found, last_end, last_name = {}, None, None
    for start, end, name in events:
        if last_end is not None and start - last_end > threshold:
            entry = found.setdefault(last_name, [0, 0])
            entry[0] += 1
            entry[1] += start - last_end
        if last_end is None or end > last_end:
            last_end, last_name = end, name
    return found


def report_window(label, kernels, copies):
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
    per_name = {}  # name: [total ns, calls]
    for start, end, name in inside:
        entry = per_name.setdefault(name, [0, 0])
        entry[0] += end - start
        entry[1] += 1
    per_kind = {}
    for name, (total, _) in per_name.items():
        kind = kind_of(name)
        per_kind[kind] = per_kind.get(kind, 0) + total
    print("  kernel time by kind: " + ", ".join(f"{kind} {total * ms:.1f} ms" for kind, total in
                                               sorted(per_kind.items(), key=lambda item: -item[1])))
    for name, (total, calls) in sorted(per_name.items(), key=lambda item: -item[1][0])[:15]:
        print(f"  {total * ms:9.1f} ms {calls:6d} calls  {name[:110]}")
    copies = [c for c in copies if c[0] >= t0 and c[1] <= t1]
    print(f"  memcpy in the window: {len(copies)} ({length(union(copies)) * ms:.1f} ms)")
    events = sorted(inside + [(start, end, "(memcpy)") for start, end in copies])
    for name, (count, total) in sorted(idle_by_predecessor(events).items(), key=lambda item: -item[1][1])[:5]:
        print(f"  idle over 20 us after {name[:100]}: {total * ms:.1f} ms in {count} gaps")


def load_nsys(path):
    """(kernels as (start, end, name), memcpys as (start, end)) of an nsys SQLite export."""
    # Read-only: a missing path is an error, not a new empty database.
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = dict(db.execute("SELECT id, value FROM StringIds"))
    kernels = [(start, end, names.get(short, "?"))
               for start, end, short in db.execute("SELECT start, end, shortName FROM CUPTI_ACTIVITY_KIND_KERNEL")]
    return kernels, list(db.execute("SELECT start, end FROM CUPTI_ACTIVITY_KIND_MEMCPY"))


def load_kernel_trace(path):
    """The same from a tools/kernel_trace.c file: kind, start, end, stream, name per line."""
    kernels, copies = [], []
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            fields = line.rstrip("\n").split("\t", 4)
            if len(fields) != 5 or not fields[1].isdigit() or not fields[2].isdigit():
                raise ValueError(f"line {number} is not kind, start, end, stream, name")
            if int(fields[2]) < int(fields[1]):
                raise ValueError(f"line {number} ends before it starts")
            if fields[0] == "kernel":
                kernels.append((int(fields[1]), int(fields[2]), fields[4]))
            elif fields[0] == "memcpy":
                copies.append((int(fields[1]), int(fields[2])))
    return kernels, copies


def report(path):
    kernels, copies = load_kernel_trace(path) if path.endswith(".tsv") else load_nsys(path)
    kernels.sort()
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
        report_window(f"{path} run {i + 1}", run, copies)


if len(sys.argv) < 2:
    sys.exit("usage: tools/nsys_overlap.py TRACE.sqlite|TRACE.tsv ...")
for trace in sys.argv[1:]:
    try:
        report(trace)
    except sqlite3.Error as e:  # missing, not SQLite, or not an nsys export
        sys.exit(f"nsys_overlap.py: {trace}: {e} (an `nsys export --type sqlite` file is needed)")
    except (OSError, ValueError) as e:
        sys.exit(f"nsys_overlap.py: {trace}: {e} (a tools/kernel_trace.c .tsv file is needed)")
