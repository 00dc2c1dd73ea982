"""Shared by the benchmark files: the device, versions for the results rows, a sync, the
warm-up, and for the sequential score ops their nets' masks, inputs, variants and tables."""

from __future__ import annotations

import json
import os
import platform
from collections import defaultdict
from typing import Any, Callable

import torch

from scoredec import sde

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def versions() -> dict:
    """Device and library versions recorded with every benchmark row."""
    info = {"device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda or "-", "triton": "-",
            "threads": torch.get_num_threads()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    return info


def sync() -> None:
    """Wait for queued GPU work so a timer measures it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


# SCOREDEC_BENCH_QUICK=1 (scoredec bench --quick): the files that honour it time fewer shapes.
QUICK = os.environ.get("SCOREDEC_BENCH_QUICK", "") not in ("", "0")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def warmed(fn: Callable[[], Any], warmup: int) -> Callable[[], Any]:
    """fn under no_grad followed by sync(), called `warmup` times first so that compilation,
    autotuning and graph capture happen before the timing."""
    @torch.no_grad()
    def run():
        out = fn()
        sync()
        return out

    for _ in range(warmup):
        run()
    return run


# ---------------------------------------------------------------------------------------------
# Sequential score stacks (bench_score_compact, bench_score_resnet, bench_sampler).
# ---------------------------------------------------------------------------------------------

def sequential_mask(n: int, obs_dim: int, act_dim: int) -> torch.Tensor:
    """[n, act_dim + cond_dim] in_mask of a sequential stack, cond_dim = obs_dim + (n-1) act_dim:
    model k keeps its x, o_k and the actions of the k agents before it."""
    mask = torch.ones(n, act_dim + obs_dim + (n - 1) * act_dim, dtype=torch.bool)
    for k in range(n):
        mask[k, act_dim + obs_dim + k * act_dim:] = False
    return mask


def sequential_score_case(build_net, n: int, batch: int, obs_dim: int, act_dim: int, dtype: torch.dtype):
    """(net, x [n, batch, act_dim], t [n, batch] in [T_MIN, 1], cond [n, batch, cond_dim]) on
    DEVICE in `dtype`, seeded: build_net(cond_dim, mask, generator) makes the stack of n models
    with in_mask sequential_mask(n, obs_dim, act_dim); it is put in eval mode without gradients."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cond_dim = obs_dim + (n - 1) * act_dim
    net = build_net(cond_dim, sequential_mask(n, obs_dim, act_dim), g)
    net = net.to(DEVICE, dtype).eval().requires_grad_(False)
    x = torch.randn(n, batch, act_dim, generator=g).to(DEVICE, dtype)
    t = (sde.T_MIN + (1 - sde.T_MIN) * torch.rand(n, batch, generator=g)).to(DEVICE, dtype)
    cond = torch.randn(n, batch, cond_dim, generator=g).to(DEVICE, dtype)
    return net, x, t, cond


def per_agent_loop(net, x, t, cond):
    """The reference code's way: each agent's network on its own, one after another."""
    return torch.cat([net(x[k:k + 1], t[k:k + 1], cond[k:k + 1], slice(k, k + 1)) for k in range(x.shape[0])])


def score_variant(variant: str, triton_available, cuda_available):
    """(fn(net, x, t, cond), None) of one variant of a score evaluation, or (None, why it is
    skipped): the network's forward on `backend` (ScoreNet.forward: the module path for torch,
    the network's fused op otherwise); *_available: the op's availability checks."""
    def on(backend):
        return lambda net, x, t, cond: net(x, t, cond, backend=backend)

    def module_forward(net, x, t, cond):
        return net(x, t, cond)

    if variant == "per-agent-loop":
        return per_agent_loop, None
    if variant == "eager":
        return on("torch"), None
    if variant in ("compile", "compile-reduce-overhead"):
        if variant.endswith("reduce-overhead") and DEVICE.type != "cuda":
            return None, "reduce-overhead (CUDA graphs) needs a GPU"
        mode = "reduce-overhead" if variant.endswith("reduce-overhead") else None
        # A fresh compilation per shape: past dynamo's recompile limit (8 per code object) a
        # shared compiled function would fall back to eager and be timed as "compile".
        torch._dynamo.reset()
        return torch.compile(module_forward, mode=mode, dynamic=False), None
    if variant == "triton":
        if DEVICE.type != "cuda":
            return None, "triton is timed on a GPU only (the CPU interpreter is a correctness tool)"
        ok, reason = triton_available(DEVICE)
        return (on("triton"), None) if ok else (None, reason)
    if variant == "cuda":
        ok, reason = cuda_available(DEVICE)
        return (on("cuda"), None) if ok else (None, reason)
    raise ValueError(variant)


# ---------------------------------------------------------------------------------------------
# The bench files' own Markdown tables (`python benchmarks/bench_<op>.py bench.json`).
# ---------------------------------------------------------------------------------------------

def load_op(path: str, op: str, shape_keys: tuple[str, ...]):
    """(data, info, by_shape) of one pytest-benchmark JSON file: by_shape maps the values of
    shape_keys to {variant: row} for the rows of `op`, info is the first row's extra_info; None
    when the file has no row of `op`."""
    data = json.load(open(path))
    benches = [b for b in data["benchmarks"] if b.get("extra_info", {}).get("op") == op]
    if not benches:
        return None
    by_shape: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        by_shape[tuple(e[k] for k in shape_keys)][e["variant"]] = b
    return data, benches[0]["extra_info"], by_shape


def device_line(data: dict, info: dict) -> str:
    """The table header's device, versions and date."""
    return (f"Device: {info['device']} | torch {info['torch']} | CUDA {info['cuda']} | triton {info['triton']} | "
            f"torch threads {info['threads']} | {data.get('datetime', '')[:19]}")


def speedup(base: dict | None, median: float) -> str:
    """base's median over `median` ("2.00x"), "-" without a base row."""
    return f"{base['stats']['median'] / median:.2f}x" if base else "-"
