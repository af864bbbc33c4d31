"""tools/nsys_overlap.py on a synthetic trace, once with the SQLite export's
tables and once as tools/kernel_trace.c's TSV lines: two runs 100 ms apart;
in the first an NCCL kernel half overlaps two compute kernels and there is
one 0.1 ms gap after a product (in the second, a gap after a copy), so
every figure is known, and both forms must report the same. Then a missing
path, a text file, a malformed TSV and one whose times run backwards: one
error line, exit 1, nothing created."""
import os
import sqlite3
import subprocess
import sys
import tempfile

MS = 1_000_000  # ns

with tempfile.TemporaryDirectory() as work:
    path = os.path.join(work, "trace.sqlite")
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE StringIds (id INTEGER PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_KERNEL (start INT NOT NULL, end INT NOT NULL, shortName INT NOT NULL)")
    db.execute("CREATE TABLE CUPTI_ACTIVITY_KIND_MEMCPY (start INT NOT NULL, end INT NOT NULL, copyKind INT NOT NULL)")
    db.executemany("INSERT INTO StringIds VALUES (?, ?)",
                   [(1, "cudnn_sm90_fmha_fprop"), (2, "ncclDevKernel_SendRecv"), (3, "sm90_gemm_bf16")])
    kernels = [(0.0, 1.0, 1), (0.5, 2.0, 2), (1.5, 3.0, 3), (3.1, 4.0, 1),  # run 1
               (100.0, 101.0, 1), (101.0, 102.0, 3), (102.5, 103.0, 1)]  # run 2
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_KERNEL VALUES (?, ?, ?)",
                   [(int(a * MS), int(b * MS), n) for a, b, n in kernels])
    copies = [(2.0, 2.1), (102.0, 102.2)]  # run 2's copy ends last before its gap
    db.executemany("INSERT INTO CUPTI_ACTIVITY_KIND_MEMCPY VALUES (?, ?, 2)",
                   [(int(a * MS), int(b * MS)) for a, b in copies])
    db.commit()
    db.close()
    out = subprocess.run([sys.executable, sys.argv[1], path], capture_output=True, text=True, check=True).stdout
    names = {1: "cudnn_sm90_fmha_fprop", 2: "ncclDevKernel_SendRecv", 3: "sm90_gemm_bf16"}
    tsv = os.path.join(work, "trace.tsv")
    with open(tsv, "w") as f:
        for a, b, n in kernels:
            f.write(f"kernel\t{int(a * MS)}\t{int(b * MS)}\t7\t{names[n]}\n")
        for a, b in copies:
            f.write(f"memcpy\t{int(a * MS)}\t{int(b * MS)}\t7\t64 bytes\n")
    out_tsv = subprocess.run([sys.executable, sys.argv[1], tsv], capture_output=True, text=True, check=True).stdout
if out_tsv.replace(tsv, "TRACE") != out.replace(path, "TRACE"):
    print(out)
    print(out_tsv)
    sys.exit("tool_nsys_overlap: the TSV trace and the SQLite trace report differently")
expected = [
    "run 1: 4.0 ms from the first to the last attention kernel, 4 kernels, 2 attention calls",
    "compute busy 3.4 ms, NCCL busy 1.5 ms (beside compute 1.0, alone 0.5)",
    "idle 0.1 ms: 1 gaps over 20 us (0.1 ms), 0 shorter (0.0 ms)",
    "memcpy in the window: 1 (0.1 ms)",
    "kernel time by kind: attention 1.9 ms, NCCL 1.5 ms, products 1.5 ms",
    "idle over 20 us after sm90_gemm_bf16: 0.1 ms in 1 gaps",
    "idle over 20 us after (memcpy): 0.3 ms in 1 gaps",
    "run 2: 3.0 ms from the first to the last attention kernel, 3 kernels, 2 attention calls",
    "idle 0.5 ms: 1 gaps over 20 us (0.5 ms), 0 shorter (0.0 ms)",
]
missing = [line for line in expected if line not in out]
if missing:
    print(out)
    sys.exit("tool_nsys_overlap: missing from the report: " + "; ".join(missing))

# Bad inputs: one line on stderr, exit status 1, and no file made for a missing path.
with tempfile.TemporaryDirectory() as work:
    absent, text = os.path.join(work, "absent.sqlite"), os.path.join(work, "notes.txt")
    malformed = os.path.join(work, "cut.tsv")
    with open(text, "w") as f:
        f.write("not a database\n" * 100)
    with open(malformed, "w") as f:
        f.write("kernel\t100\t200\t7\tsdpa\nkernel\t300\n")  # a line cut short
    reversed_times = os.path.join(work, "reversed.tsv")
    with open(reversed_times, "w") as f:
        f.write("kernel\t500\t300\t7\tsdpa\n")  # ends before it starts
    for path in (absent, text, malformed, reversed_times):
        run = subprocess.run([sys.executable, sys.argv[1], path], capture_output=True, text=True)
        lines = run.stderr.strip().splitlines()
        if run.returncode != 1 or len(lines) != 1 or path not in lines[0] or os.path.exists(absent):
            sys.exit(f"tool_nsys_overlap: {path}: exit {run.returncode}, stderr {run.stderr!r}")
print("tool_nsys_overlap: all checks passed")
