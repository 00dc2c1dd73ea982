"""score_eval_resnet (sequential score evaluation, resnet net), every variant side by side in one
run (DESIGN.md 4, issue 5 op 1).

    .venv/bin/python -m pytest benchmarks/bench_score_resnet.py --benchmark-json=bench_sr.json
    .venv/bin/python benchmarks/bench_score_resnet.py bench_sr.json >> benchmarks/RESULTS.md

Variants: per-agent loop (eager, one model after another, as reference code does it), eager
stacked (the torch backend: one batched launch per layer), torch.compile of the stacked forward
(default, and mode="reduce-overhead" = CUDA graphs on a GPU), triton, cuda; unavailable ones
are skipped with the reason. Production net: H = 512, 2 residual blocks, 16 frequencies,
sequential conditions [o_k, a_<k] with MPE spread widths (obs 18, action 5), eval mode. On a
GPU every round ends with torch.cuda.synchronize(). On the CPU only the torch variants run,
at batches up to 256 per agent (the larger ones take seconds per call there).

Roofline: every row records the FLOPs (2 x multiply-adds of every layer of every model) and
the bytes a perfect kernel must move (the weights once, the inputs and the output once); the
rendered table gives achieved TFLOP/s and the ratio to the roofline time
max(FLOPs / matmul peak, bytes / bandwidth) with the peaks measured on the machine (NOTES.md:
bf16 ~790 TFLOP/s, copy ~3.0 TB/s on an H100), overridable with SCOREDEC_PEAK_TFLOPS and
SCOREDEC_PEAK_TBPS.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

from benchutil import (DEVICE, QUICK, device_line, dtype_name, load_op, score_variant,
                       sequential_score_case, speedup, versions, warmed)

from scoredec.nets import ResNetScoreNet
from scoredec.ops import score_resnet as sr

# Rows per agent; the CPU keeps to modest sizes (torch variants only).
# QUICK (SCOREDEC_BENCH_QUICK=1, scoredec bench --quick): n = 3 and batch 512 (64 on the CPU) only.
AGENTS = (3,) if QUICK else (3, 6)
if DEVICE.type == "cuda":
    BATCHES = (512,) if QUICK else (1, 64, 512, 4096, 16384)
else:
    BATCHES = (64,) if QUICK else (1, 64, 256)
OBS_DIM, ACT_DIM, HIDDEN, BLOCKS = 18, 5, 512, 2
DTYPES = (torch.float32, torch.bfloat16) if DEVICE.type == "cuda" else (torch.float32,)
VARIANTS = ("per-agent-loop", "eager", "compile", "compile-reduce-overhead", "triton", "cuda")
# Peaks of an H100 SXM: bf16 dense matmul and device copy as measured (NOTES.md); fp32 (no TF32:
# the kernels and torch's default run ieee fp32 on the FMA units) from the datasheet, 67 TFLOP/s.
PEAK_TFLOPS = {"float32": 67.0, "bfloat16": 790.0}
PEAK_TBPS = 3.0


def flops(m: int, batch: int, net: ResNetScoreNet) -> int:
    """2 x multiply-adds of every layer of every model (the LayerNorms, activations and the
    Fourier features are a rounding error next to the 2 x H x 4H per block)."""
    layers = [net.time1, net.time2, net.embed, net.trunk_in, *net.up, *net.down, net.head]
    return 2 * m * batch * sum(layer.in_features * layer.out_features for layer in layers)


def min_bytes(m: int, batch: int, net: ResNetScoreNet, dtype: torch.dtype) -> int:
    """Weights read once, inputs (x, t, cond) read once, eps written once."""
    size = torch.finfo(dtype).bits // 8
    weights = sum(p.numel() for p in net.parameters())
    io = m * batch * (2 * net.x_dim + net.cond_dim + 1)
    return size * (weights + io)


def _make_fn(variant: str):
    return score_variant(variant, sr._triton_available, sr._cuda_available)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", AGENTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_score_resnet(benchmark, variant, n, batch, dtype):
    fn, reason = _make_fn(variant)
    if fn is None:
        pytest.skip(reason)

    def build(cond_dim, mask, g):
        return ResNetScoreNet(n, ACT_DIM, cond_dim, in_mask=mask, hidden=HIDDEN, blocks=BLOCKS, generator=g)

    net, x, t, cond = sequential_score_case(build, n, batch, OBS_DIM, ACT_DIM, dtype)
    run = warmed(lambda: fn(net, x, t, cond), 3)
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(op="score_resnet", variant=variant, n=n, batch=batch, hidden=HIDDEN, blocks=BLOCKS,
                                dtype=dtype_name(dtype), flops=flops(n, batch, net),
                                bytes=min_bytes(n, batch, net, dtype))
    benchmark.group = f"score_resnet n={n} batch={batch} {dtype}"
    if DEVICE.type == "cuda":
        rounds = 100 if n * batch < 4096 * 6 else 30
    else:
        rounds = 20 if n * batch <= 64 * 6 else 3
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)


def roofline_seconds(flop: int, nbytes: int, dtype: str) -> float:
    tflops = float(os.environ.get("SCOREDEC_PEAK_TFLOPS", PEAK_TFLOPS.get(dtype, PEAK_TFLOPS["float32"])))
    tbps = float(os.environ.get("SCOREDEC_PEAK_TBPS", PEAK_TBPS))
    return max(flop / (tflops * 1e12), nbytes / (tbps * 1e12))


def render(path: str) -> str:
    """Markdown table of one pytest-benchmark JSON file: median, TFLOP/s, roofline ratio,
    speed-ups vs the per-agent loop and vs eager stacked."""
    if (loaded := load_op(path, "score_resnet", ("dtype", "n", "batch"))) is None:
        return f"_{path}: no score_resnet rows_\n"
    data, info, by_shape = loaded
    lines = [
        f"{device_line(data, info)} | resnet H {info['hidden']}, {info['blocks']} blocks | "
        f"roofline: max(FLOPs / peak matmul, bytes / peak bandwidth)",
        "",
        "| dtype | n | batch/agent | variant | median (us) | TFLOP/s | roofline / time | vs per-agent loop | "
        "vs eager stacked |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (dtype, n, batch), rows in sorted(by_shape.items()):
        loop, eager = rows.get("per-agent-loop"), rows.get("eager")
        for name in VARIANTS:
            if name not in rows:
                continue
            e = rows[name]["extra_info"]
            median = rows[name]["stats"]["median"]
            vs_loop, vs_eager = speedup(loop, median), speedup(eager, median)
            # The peaks are a GPU's: no roofline for CPU rows.
            roof = f"{roofline_seconds(e['flops'], e['bytes'], dtype) / median:.1%}" if e["cuda"] != "-" else "-"
            tflops = e["flops"] / median / 1e12
            lines.append(f"| {dtype} | {n} | {batch} | {name} | {median * 1e6:.1f} | {tflops:.2f} | {roof} | "
                         f"{vs_loop} | {vs_eager} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        sys.stdout.write(render(p))
