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

import json
import sys
from collections import defaultdict

import pytest
import torch

from benchutil import DEVICE, sync, versions

from scoredec import sde
from scoredec.nets import CompactScoreNet
from scoredec.ops import score_compact as sc
from scoredec.ops import score_eval_compact

AGENTS = (3, 6)
BATCHES = (1, 64, 512, 4096)  # rows per agent
OBS_DIM, ACT_DIM, WIDTH, LAYERS = 18, 5, 256, 3
DTYPES = (torch.float32, torch.bfloat16) if DEVICE.type == "cuda" else (torch.float32,)
VARIANTS = ("per-agent-loop", "eager", "compile", "compile-reduce-overhead", "triton", "cuda")


def flops(m: int, batch: int, net: CompactScoreNet) -> int:
    """Multiply-adds x 2 of every layer of every model."""
    widths = [layer.in_features * layer.out_features for layer in net.mlp.layers]
    return 2 * m * batch * sum(widths)


def per_agent_loop(net, x, t, cond):
    """The reference code's way: each agent's network on its own, one after another."""
    return torch.cat([net(x[k:k + 1], t[k:k + 1], cond[k:k + 1], slice(k, k + 1)) for k in range(x.shape[0])])


def _public(backend: str):
    """The public op (validation + dispatch included) on one backend."""
    return lambda net, x, t, cond: score_eval_compact(net, x, t, cond, backend=backend)




def _make_fn(variant: str):
    if variant == "per-agent-loop":
        return per_agent_loop, None
    if variant == "eager":
        return _public("torch"), None
    if variant in ("compile", "compile-reduce-overhead"):
        if variant.endswith("reduce-overhead") and DEVICE.type != "cuda":
            return None, "reduce-overhead (CUDA graphs) needs a GPU"
        mode = "reduce-overhead" if variant.endswith("reduce-overhead") else None
        # A fresh compilation per shape: past dynamo's recompile limit (8 per code object) a
        # shared compiled function would fall back to eager and be timed as "compile".
        torch._dynamo.reset()
        return torch.compile(sc.score_compact_torch, mode=mode, dynamic=False), None
    if variant == "triton":
        if DEVICE.type != "cuda":
            return None, "triton is timed on a GPU only (the CPU interpreter is a correctness tool)"
        ok, reason = sc._triton_available(DEVICE)
        return (_public("triton"), None) if ok else (None, reason)
    if variant == "cuda":
        ok, reason = sc._cuda_available(DEVICE)
        return (_public("cuda"), None) if ok else (None, reason)
    raise ValueError(variant)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", AGENTS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_score_compact(benchmark, variant, n, batch, dtype):
    fn, reason = _make_fn(variant)
    if fn is None:
        pytest.skip(reason)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cond_dim = OBS_DIM + (n - 1) * ACT_DIM
    # Sequential prefixes: model k keeps o_k and the actions of the k agents before it.
    mask = torch.ones(n, ACT_DIM + cond_dim, dtype=torch.bool)
    for k in range(n):
        mask[k, ACT_DIM + OBS_DIM + k * ACT_DIM:] = False
    net = CompactScoreNet(n, ACT_DIM, cond_dim, in_mask=mask, width=WIDTH, layers=LAYERS, generator=g)
    net = net.to(DEVICE, dtype).eval().requires_grad_(False)
    x = torch.randn(n, batch, ACT_DIM, generator=g).to(DEVICE, dtype)
    t = (sde.T_MIN + (1 - sde.T_MIN) * torch.rand(n, batch, generator=g)).to(DEVICE, dtype)
    cond = torch.randn(n, batch, cond_dim, generator=g).to(DEVICE, dtype)

    @torch.no_grad()
    def run():
        out = fn(net, x, t, cond)
        sync()
        return out

    for _ in range(3):  # compile / autotune / graph capture happen here, not in the timing
        run()
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(op="score_compact", variant=variant, n=n, batch=batch, width=WIDTH, layers=LAYERS,
                                dtype=str(dtype).replace("torch.", ""), flops=flops(n, batch, net))
    benchmark.group = f"score_compact n={n} batch={batch} {dtype}"
    rounds = 100 if DEVICE.type == "cuda" else (5 if n * batch >= 4096 * 3 else 20)
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)


def render(path: str) -> str:
    """Markdown table of one pytest-benchmark JSON file: median, GFLOP/s, speed-ups vs the
    per-agent loop and vs eager stacked."""
    data = json.load(open(path))
    benches = [b for b in data["benchmarks"] if b.get("extra_info", {}).get("op") == "score_compact"]
    if not benches:
        return f"_{path}: no score_compact rows_\n"
    info = benches[0]["extra_info"]
    by_shape: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        by_shape[(e["dtype"], e["n"], e["batch"])][e["variant"]] = b
    lines = [
        f"Device: {info['device']} | torch {info['torch']} | CUDA {info['cuda']} | triton {info['triton']} | "
        f"torch threads {info['threads']} | {data.get('datetime', '')[:19]} | width {info['width']}, "
        f"{info['layers']} hidden layers",
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
            vs_loop = f"{loop['stats']['median'] / median:.2f}x" if loop else "-"
            vs_eager = f"{eager['stats']['median'] / median:.2f}x" if eager else "-"
            gflops = rows[name]["extra_info"]["flops"] / median / 1e9
            lines.append(f"| {dtype} | {n} | {batch} | {name} | {median * 1e6:.1f} | {gflops:.1f} | {vs_loop} | "
                         f"{vs_eager} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        sys.stdout.write(render(p))
