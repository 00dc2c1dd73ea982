"""sample_sequential (the fused sequential sampler, issue 5 op 2): every variant side by side in
one run (DESIGN.md 4).

    .venv/bin/python -m pytest benchmarks/bench_sampler.py --benchmark-json=bench_sampler.json
    .venv/bin/python benchmarks/bench_sampler.py bench_sampler.json >> benchmarks/RESULTS.md

One joint sample = n agents in order, 15 DPM-Solver-2 steps each (30 network evaluations per
agent), each agent conditioned on the earlier agents' samples. Variants:
- eager: the torch reference, the per-agent loop of BehaviorModel.sample (graph=False);
- compile: torch.compile of the score net's forward inside that loop (default mode);
- cuda-graph: the whole n x T loop captured once into a CUDA graph and replayed (GPU only);
- triton, cuda: the persistent fused kernels (compact net only, GPU only).
Batches: 1 (latency; goal < 250 us for n = 3 on an H100) and 64 / 512 / 4096 rows
(throughput). Nets: compact (width 256, 3 layers) and resnet (H 512, 2 blocks), MPE spread
widths (obs 18, action 5). On the CPU only the torch variants run, at modest sizes. On a GPU
every round ends with torch.cuda.synchronize().
"""

from __future__ import annotations

import sys

import pytest
import torch

from benchutil import DEVICE, device_line, dtype_name, load_op, sequential_mask, speedup, versions, warmed

from scoredec import sde
from scoredec.behavior import sample_sequential, sequential_torch
from scoredec.nets import CompactScoreNet, ResNetScoreNet
from scoredec.ops import sampler as ss


GPU = DEVICE.type == "cuda"
AGENTS = (3, 6) if GPU else (3,)
BATCHES = (1, 64, 512, 4096) if GPU else (1, 64)
ARCHS = ("compact", "resnet")
STEPS, SOLVER = 15, "dpm2"
OBS_DIM, ACT_DIM = 18, 5
DTYPES = (torch.float32, torch.bfloat16) if GPU else (torch.float32,)
VARIANTS = ("eager", "compile", "cuda-graph", "triton", "cuda")


def make_net(arch: str, n: int, dtype: torch.dtype):
    """A sequential stack: model k sees o_k and the k earlier agents' actions."""
    g = torch.Generator().manual_seed(0)
    cond_dim = OBS_DIM + (n - 1) * ACT_DIM
    mask = sequential_mask(n, OBS_DIM, ACT_DIM)
    if arch == "compact":
        net = CompactScoreNet(n, ACT_DIM, cond_dim, in_mask=mask, width=256, layers=3, generator=g)
    else:
        net = ResNetScoreNet(n, ACT_DIM, cond_dim, in_mask=mask, hidden=512, blocks=2, generator=g)
    return net.to(DEVICE, dtype).eval().requires_grad_(False)


def evaluations(n: int) -> int:
    return n * STEPS * (2 if SOLVER == "dpm2" else 1)


class _CompiledNet(torch.nn.Module):
    """The net with a compiled forward; the sampler loop around it stays eager."""

    def __init__(self, net, mode):
        super().__init__()
        self.net = net
        self.models, self.x_dim, self.cond_dim, self.freqs = net.models, net.x_dim, net.cond_dim, net.freqs
        self.fwd = torch.compile(net.forward, mode=mode, dynamic=False)

    def forward(self, x, t, cond, models=slice(None)):
        return self.fwd(x, t, cond, models)

    def epsilon(self, x, t, cond, models=slice(None)):
        return self.net.eps_from_output(self.fwd(x, t, cond, models), x, t)


def _skip_reason(variant: str, arch: str, n: int, batch: int) -> str | None:
    if variant in ("triton", "cuda") and arch != "compact":
        return "the kernels take the compact net; the resnet sampler runs as a CUDA graph"
    if variant in ("cuda-graph", "triton", "cuda") and not GPU:
        return f"{variant} is timed on a GPU only"
    if variant == "triton":
        ok, reason = ss._triton_available(DEVICE)
        return None if ok else reason
    if variant == "cuda":
        ok, reason = ss._cuda_available(DEVICE)
        return None if ok else reason
    if not GPU and arch == "resnet" and batch > 1:
        return "resnet on the CPU: batch 1 only (modest sizes)"
    if not GPU and variant == "compile" and (arch != "compact" or batch > 1):
        return "torch.compile on the CPU: compact net, batch 1 only"
    return None


def _runner(variant: str, net, obs, x_T):
    solver = sde.make_solver(SOLVER, STEPS)
    if variant == "eager":
        return lambda: sequential_torch(net, obs, x_T, None, solver, 1.0)
    if variant == "compile":
        compiled = _CompiledNet(net, None)
        return lambda: sequential_torch(compiled, obs, x_T, None, solver, 1.0)
    if variant == "cuda-graph":
        return lambda: sample_sequential(net, obs, x_T, None, solver, backend="torch", graph=True)
    return lambda: sample_sequential(net, obs, x_T, None, solver, backend=variant)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", AGENTS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_sampler(benchmark, variant, arch, n, batch, dtype):
    if (reason := _skip_reason(variant, arch, n, batch)) is not None:
        pytest.skip(reason)
    net = make_net(arch, n, dtype)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, batch, OBS_DIM, generator=g).to(DEVICE, dtype)
    x_T = torch.randn(n, batch, ACT_DIM, generator=g).to(DEVICE, dtype)
    run = warmed(_runner(variant, net, obs, x_T), 2)
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(op="sample_sequential", variant=variant, arch=arch, n=n, batch=batch,
                                steps=STEPS, solver=SOLVER, evaluations=evaluations(n),
                                dtype=dtype_name(dtype))
    benchmark.group = f"sampler {arch} n={n} batch={batch} {dtype}"
    rounds = 50 if GPU else 3
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)


def render(path: str) -> str:
    """Markdown table of one pytest-benchmark JSON file: median per joint sample, joint samples
    per second, speed-up vs eager."""
    if (loaded := load_op(path, "sample_sequential", ("arch", "dtype", "n", "batch"))) is None:
        return f"_{path}: no sample_sequential rows_\n"
    data, info, by_shape = loaded
    lines = [
        f"{device_line(data, info)} | {info['solver']}, {info['steps']} steps per agent",
        "",
        "| net | dtype | n | batch | variant | median (us) | joint samples/s | vs eager |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for (arch, dtype, n, batch), rows in sorted(by_shape.items()):
        eager = rows.get("eager")
        for name in VARIANTS:
            if name not in rows:
                continue
            median = rows[name]["stats"]["median"]
            vs = speedup(eager, median)
            lines.append(f"| {arch} | {dtype} | {n} | {batch} | {name} | {median * 1e6:.1f} | "
                         f"{batch / median:.0f} | {vs} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        sys.stdout.write(render(p))
