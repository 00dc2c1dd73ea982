"""Machinery the fused-op test files share (test_ops_score_compact, test_ops_score_resnet,
test_ops_sampler): skipping a backend that cannot run here, NaN-filled output buffers, the
tolerance rule, and for the two score evaluation ops their masked inputs, float64 reference,
bad-input table and the BehaviorModel.epsilon check.

Tolerance (flash-attention's rule): a backend's max error against the independent float64
reference is at most twice the error of plain PyTorch in the same dtype (the network's own
module forward, not the op under test), plus a floor; every backend, torch included, is held to
it. Kernels write into
NaN-filled buffers (nan_like), so an element a kernel skips fails the finiteness check instead of
passing on leftover zeros.
"""

from __future__ import annotations

import pytest
import torch

from backend_skips import backend_skip

from scoredec import sde
from scoredec.behavior import BehaviorModel
from scoredec.layout import AgentSpec
from scoredec.ops import registry

from reference import reference_epsilon, score_single
from test_nets import random_batch, small_cfg

HAS_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_GPU else "cpu")


def skip_unless_runs(op: str, backend: str, dtype: torch.dtype = torch.float32) -> None:
    """pytest.skip unless `backend` of `op` runs `dtype` here (torch always does)."""
    if backend != "torch" and (reason := backend_skip(op, backend, dtype, DEVICE)) is not None:
        pytest.skip(reason)


def nan_like(x: torch.Tensor) -> torch.Tensor:
    """An output buffer in which every element a kernel does not write stays NaN."""
    return torch.full_like(x, float("nan"))


def max_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out.cpu().double() - ref).abs().max().item()


def assert_tolerance(out: torch.Tensor, like: torch.Tensor, ref: torch.Tensor, base: torch.Tensor,
                  floor: float) -> None:
    """out has like's shape and dtype, every element written, and max |out - ref| <= 2 x
    max |base - ref| + floor; ref: the float64 reference, base: the torch backend's output."""
    assert out.shape == like.shape and out.dtype == like.dtype
    assert torch.isfinite(out).all(), "non-finite values: an element was not written"
    base_err, err = max_err(base, ref), max_err(out, ref)
    assert err <= 2 * base_err + floor, f"max error {err:.3g} > 2 x torch's {base_err:.3g} + {floor:.3g}"


def assert_compiles_fullgraph(run, *args) -> None:
    """torch.compile(run, fullgraph=True) traces and agrees with run (inductor on a GPU,
    aot_eager on the CPU)."""
    compiled = torch.compile(run, fullgraph=True, backend="inductor" if HAS_GPU else "aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(*args), run(*args))


# ---------------------------------------------------------------------------------------------
# The score evaluation ops: eps = op(net, x [m, B, x_dim], t [m, B], cond [m, B, cond_dim]).
# ---------------------------------------------------------------------------------------------

def score_case(build_net, m: int, B: int, dx: int, dc: int, dtype: torch.dtype, t_dtype=None, device=DEVICE,
               seed: int = 0):
    """(net, mask, x, t, cond): build_net(mask [m, dx + dc] bool, generator) makes the masked
    stack, moved to device and dtype in eval mode; masked input columns hold garbage (+-100) that
    must not leak; t covers (T_MIN, 1] with T_MIN in column 0."""
    torch.manual_seed(seed + 1000 * m + B)  # the weights come from the global generator
    g = torch.Generator().manual_seed(seed + 1000 * m + B)
    mask = torch.rand(m, dx + dc, generator=g) > 0.3
    mask[:, 0] = True
    net = build_net(mask, g)
    x = torch.randn(m, B, dx, generator=g)
    cond = torch.randn(m, B, dc, generator=g)
    x = torch.where(mask[:, None, :dx], x, torch.full_like(x, 100.0))
    cond = torch.where(mask[:, None, dx:], cond, torch.full_like(cond, -100.0))
    t = sde.T_MIN + (1 - sde.T_MIN) * torch.rand(m, B, generator=g)
    t[:, 0] = sde.T_MIN
    net = net.to(device, dtype).eval()
    return net, mask, x.to(device, dtype), t.to(device, t_dtype or dtype), cond.to(device, dtype)


def score_reference64(net, mask, x, t, cond, fourier_columns: int) -> torch.Tensor:
    """Model by model, each at its own narrow input width, in float64 (tests/reference.py);
    fourier_columns: how many always-kept Fourier columns follow the masked inputs in the
    first layer (0 when the features enter elsewhere)."""
    dx = x.shape[2]
    out = []
    for k in range(x.shape[0]):
        cols = torch.cat([mask[k], torch.ones(fourier_columns, dtype=torch.bool)]).nonzero()[:, 0]
        xk = x[k].cpu().double()[:, mask[k, :dx]]
        ck = cond[k].cpu().double()[:, mask[k, dx:]]
        out.append(score_single(net.cpu(), k, xk, t[k].cpu().double(), ck, cols))
    net.to(x.device)
    return torch.stack(out)


def assert_score_parity(out, net, mask, x, t, cond, fourier_columns: int, floors: dict) -> None:
    """A score op's output against the per-model float64 reference (score_reference64), within
    assert_tolerance's rule; the base is the network's module forward in x's dtype. In float64
    the output must agree with the reference to 1e-10."""
    ref = score_reference64(net, mask, x, t, cond, fourier_columns)
    with torch.no_grad():
        base = net(x, t, cond)
    if x.dtype == torch.float64:
        torch.testing.assert_close(out.cpu(), ref, rtol=1e-10, atol=1e-10)
    assert_tolerance(out, x, ref, base, floors[x.dtype])


def score_bad_cases(net, x, t, cond) -> dict:
    """name -> ((x, t, cond), exception, message pattern) of inputs net(x, t, cond, backend=...)
    refuses on every dispatched backend (the error names the argument)."""
    return {
        "x-not-tensor": ((x.tolist(), t, cond), TypeError, "x must be a torch.Tensor"),
        "x-int": ((x.long(), t, cond), TypeError, "x must"),
        "x-half-net-float": ((x.half(), t.half(), cond.half()), TypeError, "net parameters are"),
        "cond-dtype": ((x, t, cond.half()), TypeError, "cond must"),
        "t-dtype": ((x, t.double(), cond), TypeError, "t must"),
        "x-shape": ((x[:1], t, cond), ValueError, "x must be"),
        "x-width": ((x[..., :1].contiguous(), t, cond), ValueError, "x must be"),
        "t-shape": ((x, t[:, :2].contiguous(), cond), ValueError, "t must be"),
        "cond-shape": ((x, t, cond[..., :4].contiguous()), ValueError, "cond must be"),
        "x-noncontiguous": ((x.transpose(0, 1).contiguous().transpose(0, 1), t, cond), ValueError,
                            "x must be contiguous"),
        "t-noncontiguous": ((x, t.t().contiguous().t(), cond), ValueError, "t must be contiguous"),
        "cond-noncontiguous": ((x, t, torch.randn(2, 5, 3).transpose(1, 2)), ValueError,
                               "cond must be contiguous"),
    }


def assert_mixed_devices_named(net, x, t, cond, backend: str) -> None:
    """net, x, t, cond on CUDA: a CPU cond or a CPU net is named in the error."""
    with pytest.raises(ValueError, match="cond is on cpu"):
        net(x, t, cond.cpu(), backend=backend)
    with pytest.raises(ValueError, match="net is on cpu"):
        net.cpu()(x, t, cond, backend=backend)


def assert_behavior_epsilon_fused(arch: str, op: str, key: tuple, backend: str, monkeypatch) -> None:
    """BehaviorModel.epsilon (sequential mode, stage 2's call) of an `arch` model through
    `backend`, selected by SCOREDEC_BACKEND (key: the op's float32 dispatch key), against the
    per-agent float64 loop."""
    spec = AgentSpec((7, 3, 11), (2, 6, 1))
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    model = BehaviorModel(spec, "sequential", small_cfg(arch), order=(2, 0, 1)).double().eval()
    obs, act = random_batch(spec, 5, gen)
    lay = model.layout
    x = torch.randn(lay.models, 5, lay.x_dim, generator=gen, dtype=torch.float64)
    t = torch.rand(lay.models, 5, generator=gen, dtype=torch.float64) * 0.99 + 0.01
    want = reference_epsilon(model, x, t, obs, act)
    model = model.float().to(DEVICE)
    monkeypatch.setenv(registry.ENV_BACKEND, backend)
    assert registry.select_name(op, DEVICE, key) == backend
    with torch.no_grad():
        got = model.epsilon(x.float().to(DEVICE), t.float().to(DEVICE), obs.float().to(DEVICE),
                            act.float().to(DEVICE))
    mask = lay.x_mask()[:, None, :]
    torch.testing.assert_close((got.cpu() * mask).double(), want, rtol=1e-4, atol=1e-4)
