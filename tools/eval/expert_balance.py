#!/usr/bin/env python3
"""How evenly expert parallelism would load its ranks, from a routing file.

moedit records every token's chosen experts (`moedit generate --routing-capture
FILE`, or the routing.safetensors a `moedit bench --work-dir DIR` run leaves):
one int32 tensor [rows, top_k] per (step, CFG branch, MoE layer). Under EP a
layer's step waits for the rank whose experts got the most rows, so the cost
of imbalance is per layer: sum over layer calls of the busiest rank's rows,
over the same sum of the mean. This prints that ratio for experts in id order
(rank r holds experts [r E/ep, (r+1) E/ep), moedit's placement without
--expert-placement) and for the best fixed placement per layer (each layer's
experts dealt to ranks in equal numbers so that its calls' busiest-rank rows
add up least: what --expert-placement computes in moe/moe_placement.c, here
independently, as a check), next to the ratio of whole-run totals (which
lets layers cancel out; `moedit bench` reports the per-call figure instead).

    python3 tools/eval/expert_balance.py ROUTING.safetensors --ep 2
"""
import argparse
import itertools
import re
import sys

import numpy as np
from safetensors.numpy import load_file


def partitions(experts, ranks):
    """Every way to deal `experts` ids to `ranks` equal groups (as rank-of-expert lists), up to rank order."""
    size = len(experts) // ranks
    if ranks == 1:
        yield [tuple(experts)]
        return
    first, rest = experts[0], experts[1:]
    for mates in itertools.combinations(rest, size - 1):
        group = (first,) + mates
        remaining = [e for e in rest if e not in mates]
        for others in partitions(remaining, ranks - 1):
            yield [group] + others


def busiest_sum(counts, groups):
    """Sum over calls of the busiest group's rows; counts is [calls, experts]."""
    loads = np.stack([counts[:, list(g)].sum(axis=1) for g in groups], axis=1)
    return loads.max(axis=1).sum()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("routing", help="routing safetensors file (stepS.branchB.layerL: int32 [rows, top_k])")
    parser.add_argument("--ep", type=int, required=True, help="expert parallel group size")
    parser.add_argument("--experts", type=int, help="routed experts per layer (default: the largest id + 1)")
    args = parser.parse_args()
    try:
        tensors = load_file(args.routing)
    except Exception as error:  # any unreadable file: one line, not a traceback
        sys.exit(f"expert_balance: cannot read {args.routing}: {error}")
    by_layer = {}
    for name, chosen in tensors.items():
        match = re.fullmatch(r"step(\d+)\.branch(\d+)\.layer(\d+)", name)
        if not match:
            sys.exit(f"expert_balance: {args.routing}: unexpected tensor {name}")
        by_layer.setdefault(int(match.group(3)), []).append(chosen.reshape(-1))
    if not by_layer:
        sys.exit(f"expert_balance: {args.routing} holds no routing")
    experts = args.experts or 1 + max(int(c.max()) for calls in by_layer.values() for c in calls)
    if args.ep < 1 or experts % args.ep:
        sys.exit(f"expert_balance: --ep {args.ep} must divide the {experts} experts")
    size = experts // args.ep
    contiguous = [tuple(range(r * size, (r + 1) * size)) for r in range(args.ep)]
    choices = list(partitions(list(range(experts)), args.ep))
    mean = fixed = best = 0.0
    totals = np.zeros(args.ep)
    print(f"layer  calls  contiguous  best placement")
    for layer in sorted(by_layer):
        counts = np.stack([np.bincount(c, minlength=experts) for c in by_layer[layer]])
        layer_mean = counts.sum() / args.ep
        layer_fixed = busiest_sum(counts, contiguous)
        layer_best, groups = min((busiest_sum(counts, g), g) for g in choices)
        mean, fixed, best = mean + layer_mean, fixed + layer_fixed, best + layer_best
        totals += [counts[:, list(g)].sum() for g in contiguous]
        print(f"{layer:5d}  {len(counts):5d}  {layer_fixed / layer_mean:10.3f}  {layer_best / layer_mean:.3f} {groups}")
    print(f"per-layer load, experts in id order:                {fixed / mean:.3f}")
    print(f"per-layer load, best fixed placement per layer:      {best / mean:.3f}")
    print(f"whole-run totals, experts in id order:               {totals.max() / totals.mean():.3f}")


if __name__ == "__main__":
    main()
