"""score_eval_compact (sequential score evaluation, compact net), every variant side by side in
one run (DESIGN.md 4, issue 5 op 1).

    .venv/bin/python -m pytest benchmarks/bench_score_compact.py --benchmark-json=bench_sc.json
    .venv/bin/python benchmarks/bench_score_compact.py bench_sc.json >> benchmarks/RESULTS.md

Variants: per-agent loop (eager, one model after another, as reference code does it), eager
stacked (the torch backend: one batched launch per layer), torch.compile of the stacked forward
(default, and mode="reduce-overhead" = CUDA graphs on a GPU), triton, cuda; unavailable ones
are skipped with the reason. Production net: width 256, 3 hidden layers, 16 frequencies,
sequential conditions [o_k, a_<k] with MPE spread widths (obs 18, action 5). On a GPU every
round ends with torch.cuda.synchronize().
"""

from __future__ import annotations

import sys

import pytest
import torch

from benchutil import (DEVICE, device_line, dtype_name, load_op, score_variant, sequential_score_case,
                       speedup, versions, warmed)

from scoredec.nets import CompactScoreNet
from scoredec.ops import score_compact as sc

AGENTS = (3, 6)
BATCHES = (1, 64, 512, 4096)  # rows per agent
OBS_DIM, ACT_DIM, WIDTH, LAYERS = 18, 5, 256, 3
DTYPES = (torch.float32, torch.bfloat16) if DEVICE.type == "cuda" else (torch.float32,)
VARIANTS = ("per-agent-loop", "eager", "compile", "compile-reduce-overhead", "triton", "cuda")


def flops(m: int, batch: int, net: CompactScoreNet) -> int:
    """Multiply-adds x 2 of every layer of every model."""
    widths = [layer.in_features * layer.out_features for layer in net.mlp.layers]
    return 2 * m * batch * sum(widths)


def _make_fn(variant: str):
    return score_variant(variant, sc._triton_available, sc._cuda_available)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", AGENTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_score_compact(benchmark, variant, n, batch, dtype):
    fn, reason = _make_fn(variant)
    if fn is None:
        pytest.skip(reason)

    def build(cond_dim, mask, g):
        return CompactScoreNet(n, ACT_DIM, cond_dim, in_mask=mask, width=WIDTH, layers=LAYERS, generator=g)

    net, x, t, cond = sequential_score_case(build, n, batch, OBS_DIM, ACT_DIM, dtype)
    run = warmed(lambda: fn(net, x, t, cond), 3)
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(op="score_compact", variant=variant, n=n, batch=batch, width=WIDTH, layers=LAYERS,
                                dtype=dtype_name(dtype), flops=flops(n, batch, net))
    benchmark.group = f"score_compact n={n} batch={batch} {dtype}"
    rounds = 100 if DEVICE.type == "cuda" else (5 if n * batch >= 4096 * 3 else 20)
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)


def render(path: str) -> str:
    """Markdown table of one pytest-benchmark JSON file: median, GFLOP/s, speed-ups vs the
    per-agent loop and vs eager stacked."""
    if (loaded := load_op(path, "score_compact", ("dtype", "n", "batch"))) is None:
        return f"_{path}: no score_compact rows_\n"
    data, info, by_shape = loaded
    lines = [
        f"{device_line(data, info)} | width {info['width']}, {info['layers']} hidden layers",
        "",
        "| dtype | n | batch/agent | variant | median (us) | GFLOP/s | vs per-agent loop | vs eager stacked |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for (dtype, n, batch), rows in sorted(by_shape.items()):
        loop, eager = rows.get("per-agent-loop"), rows.get("eager")
        for name in VARIANTS:
            if name not in rows:
                continue
            median = rows[name]["stats"]["median"]
            vs_loop, vs_eager = speedup(loop, median), speedup(eager, median)
            gflops = rows[name]["extra_info"]["flops"] / median / 1e9
            lines.append(f"| {dtype} | {n} | {batch} | {name} | {median * 1e6:.1f} | {gflops:.1f} | {vs_loop} | "
                         f"{vs_eager} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        sys.stdout.write(render(p))
