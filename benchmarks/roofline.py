"""The roofline inputs of the current device, measured (DESIGN.md 4): the matmul rate of a large
GEMM and the device-copy bandwidth.

    .venv/bin/python benchmarks/roofline.py [--json roofline.json]

GPU: bf16 and fp32 (torch's default precision, no TF32) 8192^3 matmuls and a 1 GiB device-to-
device copy, CUDA events, the best of 20 after warm-up. CPU: fp32 1024^3 matmul and a 256 MiB
copy, the best of 20. A roof is the attainable peak, so the fastest repetition counts, not the
median (on a shared machine the median measures the other jobs). Copy bandwidth counts the bytes
read plus the bytes written. results_md.py divides a
benchmark's flops by the rate of its dtype and its bytes by the bandwidth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchutil import DEVICE, versions  # noqa: E402


def _best_seconds(fn, reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
        for _ in range(reps):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(times)


def _matmul_seconds(n: int, dtype: torch.dtype, reps: int) -> float:
    a = torch.randn(n, n, device=DEVICE).to(dtype)
    b = torch.randn(n, n, device=DEVICE).to(dtype)
    return _best_seconds(lambda: torch.mm(a, b), reps)


def measure() -> dict:
    gpu = DEVICE.type == "cuda"
    n = 8192 if gpu else 1024
    reps = 20
    dtypes = (torch.bfloat16, torch.float32) if gpu else (torch.float32,)
    rates = {str(dtype).replace("torch.", ""): 2 * n ** 3 / _matmul_seconds(n, dtype, reps) / 1e12
             for dtype in dtypes}
    size = (1 << 30) if gpu else (256 << 20)
    src = torch.empty(size, dtype=torch.uint8, device=DEVICE).fill_(1)
    dst = torch.empty_like(src)
    sec = _best_seconds(lambda: dst.copy_(src), reps)
    info = versions()
    return {"device": info["device"], "torch": info["torch"], "cuda": info["cuda"], "threads": info["threads"],
            "matmul_n": n, "matmul_tflops": rates, "copy_bytes": size, "copy_gbs": 2 * size / sec / 1e9}


def describe(roof: dict) -> str:
    rates = ", ".join(f"{k} {v:.3g} TFLOP/s" for k, v in roof["matmul_tflops"].items())
    return (f"Roofline inputs measured on {roof['device']}: {roof['matmul_n']}^3 matmul {rates}; "
            f"device copy {roof['copy_gbs']:.4g} GB/s (read + write of {roof['copy_bytes'] >> 20} MiB).")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="write the measurements here")
    args = p.parse_args()
    roof = measure()
    print(describe(roof))
    if args.json:
        Path(args.json).write_text(json.dumps(roof, indent=2))
