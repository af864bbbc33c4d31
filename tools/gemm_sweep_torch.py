#!/usr/bin/env python3
"""PyTorch's side of tools/gemm_sweep.c: torch's F.linear (cuBLAS) at the
routed experts' shapes and a projection's, by row count, x [M, K] times
w [N, K]^T in bf16; median ms of 10 calls after 2 warm ones, one JSON line
each. Needs PyTorch with CUDA:
    python3 tools/gemm_sweep_torch.py
"""
import json

import torch
import torch.nn.functional as F


def median_ms(call, repeats=10):
    times = []
    for i in range(repeats + 2):
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        if i >= 2:
            times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


for n, k, what in ((6912, 2560, "expert gate/up"), (2560, 6912, "expert down"), (2560, 2560, "projection")):
    x = torch.randn(33280, k, device="cuda", dtype=torch.bfloat16) * 0.05
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.05
    for m in (1024, 2048, 4096, 8192, 8320, 16384, 16640, 33280):
        ms = median_ms(lambda: F.linear(x[:m], w))
        print(json.dumps({"torch": what, "m": m, "n": n, "k": k, "ms": round(ms, 4),
                          "tflops": round(2 * m * n * k / ms / 1e9, 1)}), flush=True)
