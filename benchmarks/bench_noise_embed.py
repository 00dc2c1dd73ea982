"""noise_and_embed, every backend side by side in one run (DESIGN.md 4).

    .venv/bin/python -m pytest benchmarks/bench_noise_embed.py --benchmark-json=bench.json
    .venv/bin/python benchmarks/results_md.py bench.json >> benchmarks/RESULTS.md

Backends: torch eager (the reference, scoredec.ops.noise_embed_torch), torch.compile of it
(default, and mode="reduce-overhead" = CUDA graphs on a GPU), triton, cuda; unavailable ones
are skipped with the reason. On a GPU every round ends with torch.cuda.synchronize().
"""

from __future__ import annotations

import pytest
import torch

from benchutil import DEVICE, sync, versions

from scoredec.ops import noise_embed as ne
from scoredec.ops import registry
from scoredec.sde import T_MIN, VPSDE

F = 16
# The training batch (512 rows) times the agent counts of the tasks: 3 and 6 agents.
BATCHES = (512 * 3, 4096 * 3, 16384 * 6)
WIDTHS = (2, 6)
DTYPE = torch.float32
BACKENDS = ("eager", "compile", "compile-reduce-overhead", "triton", "cuda")


def _bytes_moved(B: int, d: int, dtype: torch.dtype) -> int:
    """Compulsory traffic: read a, z, t, freqs; write x_t, temb."""
    es = torch.empty((), dtype=dtype).element_size()
    return 3 * B * d * es + 4 * B + 4 * F + 2 * B * F * es


def _with_coefficients(custom_op):
    """The kernel's custom op on (a, z, t, freqs): the schedule's coefficients from sde.py."""
    coefficients = VPSDE().log_alpha_coefficients()
    return lambda a, z, t, freqs: custom_op(a, z, t, freqs, *coefficients)


def _make_fn(backend: str):
    if backend == "eager":
        return ne.noise_embed_torch, None
    if backend == "compile":
        return torch.compile(ne.noise_embed_torch, dynamic=False), None
    if backend == "compile-reduce-overhead":
        if DEVICE.type != "cuda":
            return None, "reduce-overhead (CUDA graphs) needs a GPU"
        return torch.compile(ne.noise_embed_torch, mode="reduce-overhead", dynamic=False), None
    if backend == "triton":
        ok, reason = registry.triton_available(DEVICE)
        if DEVICE.type != "cuda":
            ok, reason = False, "triton is timed on a GPU only (the CPU interpreter is a correctness tool)"
        return (_with_coefficients(ne.noise_embed_triton), None) if ok else (None, reason)
    if backend == "cuda":
        ok, reason = registry.cuda_available(DEVICE)
        return (_with_coefficients(ne.noise_embed_cuda), None) if ok else (None, reason)
    raise ValueError(backend)


@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_noise_embed(benchmark, backend, B, d):
    fn, reason = _make_fn(backend)
    if fn is None:
        pytest.skip(reason)
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(B, d, generator=g) * 2 - 1).to(DEVICE, DTYPE)
    z = torch.randn(B, d, generator=g).to(DEVICE, DTYPE)
    t = (T_MIN + (1 - T_MIN) * torch.rand(B, generator=g)).to(DEVICE)
    freqs = (torch.randn(F, generator=g) * 30).to(DEVICE)
    args = (a, z, t, freqs)

    def run():
        out = fn(*args)
        sync()
        return out

    for _ in range(3):  # compile / autotune / graph capture happen here, not in the timing
        run()
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(backend=backend, B=B, d=d, F=F, dtype=str(DTYPE).replace("torch.", ""),
                                bytes=_bytes_moved(B, d, DTYPE))
    benchmark.group = f"noise_embed B={B} d={d}"
    benchmark.pedantic(run, rounds=50 if DEVICE.type == "cpu" else 200, iterations=1, warmup_rounds=2)
