#!/usr/bin/env python3
"""Where a parallel layout's step exceeds its share of the serial step, by op.

`MOEDIT_PROFILE_OPS=1` makes every rank print a table of op totals when its
backend ends (ms, calls, the first call apart). Under `moedit bench` with one
layout and `mpirun --output-filename DIR`, rank 0 runs the serial reference
and the layout, the other ranks the layout only. So, per op,

    serial = rank 0's total - rank 1's total      (first calls left out)

and this prints, per kind of op and per denoising step, the serial time over
the layout's ranks, the layout rank's time, and the difference: the work that
did not shrink with the ranks. Steps: the denoising steps each table holds,
untimed ones included: with `--num-inference-steps 2` the reference runs its
2 steps untimed (capturing the routing) and 2 timed, the layout 1 warm-up
step and 2 timed, so 4 and 3.

    python3 tools/eval/profile_compare.py DIR/1/rank.0/stderr DIR/1/rank.1/stderr \\
        --serial-steps 4 --layout-steps 3 --ranks 2

Only for layouts whose ops keep the serial run's shapes (Ulysses, ring, CFG):
under tensor or expert parallelism rank 0's layout ops have other keys
(experts of half the width, or half the experts) and are not subtracted, so
compare the ranks' own tables there instead.
"""
import argparse
import re

ROW = re.compile(r"\s+([\d.]+)\s+[\d.]+%\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(.*)$")

# Kinds of ops, first match wins: (label, test on the op's key).
KINDS = [
    ("routed experts gate/up", lambda op: op.startswith("linear_grouped") and " N6912 " in op + " "),
    ("routed experts down", lambda op: op.startswith("linear_grouped")),
    ("attention", lambda op: op.startswith("attention Sq") and "H1 " not in op),
    ("other products", lambda op: op.startswith("linear")),
    ("Ulysses packing", lambda op: op.startswith(("split_columns", "merge_columns"))),
    ("host transfers", lambda op: op.startswith(("upload", "download"))),
    ("MoE routing and dispatch", lambda op: op.startswith(("moe_route", "moe_dispatch", "host "))),
    ("VAE", lambda op: op.startswith(("conv2d", "group_norm", "upsample")) or "H1 " in op),
    ("setup", lambda op: op.startswith("fill_uniform")),
]


def kind_of(op):
    for label, test in KINDS:
        if test(op):
            return label
    return "element-wise and other"


def read_table(path):
    """{op: ms without its first call} from one rank's profile table."""
    ops = {}
    with open(path) as f:
        for line in f:
            m = ROW.match(line)
            if m:
                ops[m.group(5).strip()] = float(m.group(1)) - float(m.group(4))
    if not ops:
        raise SystemExit(f"{path}: no MOEDIT_PROFILE_OPS table found")
    return ops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rank0", help="profile table of rank 0 (serial reference and the layout)")
    parser.add_argument("rank1", help="profile table of another rank (the layout only)")
    parser.add_argument("--serial-steps", type=int, required=True)
    parser.add_argument("--layout-steps", type=int, required=True)
    parser.add_argument("--ranks", type=int, default=2, help="ranks the layout splits a step's work over")
    args = parser.parse_args()
    rank0, rank1 = read_table(args.rank0), read_table(args.rank1)
    serial, layout = {}, {}
    for op, ms in rank0.items():
        kind = kind_of(op)
        serial[kind] = serial.get(kind, 0.0) + ms - rank1.get(op, 0.0)
    for op, ms in rank1.items():
        kind = kind_of(op)
        layout[kind] = layout.get(kind, 0.0) + ms
    print(f"{'ms a step':<26}{'serial / ' + str(args.ranks):>12}{'layout rank':>13}{'excess':>9}")
    kinds = sorted(set(serial) | set(layout), key=lambda k: -layout.get(k, 0.0))
    total_share = total_layout = 0.0
    for kind in kinds:
        share = serial.get(kind, 0.0) / args.serial_steps / args.ranks
        mine = layout.get(kind, 0.0) / args.layout_steps
        if kind not in ("VAE", "setup"):
            total_share, total_layout = total_share + share, total_layout + mine
        print(f"{kind:<26}{share:>12.1f}{mine:>13.1f}{mine - share:>+9.1f}")
    print(f"{'ops (no VAE, no setup)':<26}{total_share:>12.1f}{total_layout:>13.1f}{total_layout - total_share:>+9.1f}")


if __name__ == "__main__":
    main()
