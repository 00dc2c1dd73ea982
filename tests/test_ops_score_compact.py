"""Parity, wiring and bad-input tests of scoredec.ops.score_eval_compact on every backend.

The float64 reference is tests/reference.py's score_single: each model rebuilt as its own narrow
network (only the input columns its in_mask keeps). Tolerance (flash-attention's rule): a
kernel's max error against float64 is at most twice the error of the torch backend (the
stacked net's forward) in the same dtype, plus a small floor. Kernels write into NaN-filled
buffers, so a skipped tile fails. Without a GPU the triton backend runs in the interpreter
(tests/conftest.py sets TRITON_INTERPRET=1) in float32/float16 only, with large row blocks to
keep it fast; the cuda backend needs a GPU and is skipped here.
"""

from __future__ import annotations

import pytest
import torch

from backend_skips import backend_skip

from scoredec import sde
from scoredec.behavior import BehaviorModel
from scoredec.layout import AgentSpec
from scoredec.nets import CompactScoreNet
from scoredec.ops import BackendUnavailableError, score_eval_compact
from scoredec.ops import registry
from scoredec.ops import score_compact as sc

from reference import reference_epsilon, score_single
from test_nets import random_batch, small_cfg

HAS_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_GPU else "cpu")
FOURIER = 2 * sde.FOURIER_FREQUENCIES
# Error floors per dtype, on top of 2x the torch backend's own error.
FLOOR = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}

# (m, B, x_dim, cond_dim, width, layers, tile): awkward batches and widths, odd condition
# widths, odd and even depth (odd: the last hidden layer is chained into the head), a width
# that is a multiple of 16 but not a power of two, no hidden WxW layer at all. tile None is the
# launcher's own choice; on the CPU the large batch uses 64-row blocks (interpreter cost grows
# with the number of programs), on a GPU the launcher's choice.
CASES = {
    "m1-B1-d1": (1, 1, 1, 3, 32, 3, None),
    "m2-B3-d2-odd-depth": (2, 3, 2, 5, 64, 2, None),
    "m3-B113-d6": (3, 113, 6, 7, 64, 3, None if HAS_GPU else (64, 32)),
    "m4-B17-d2-W48-no-hidden": (4, 17, 2, 9, 48, 1, None),
    "m2-B5-d6-deep": (2, 5, 6, 11, 32, 4, None),
}


SKIP = {b: (lambda dtype, b=b: backend_skip(sc.OP, b, dtype, DEVICE)) for b in ("triton", "cuda")}
LAUNCH = {"triton": sc.launch_triton, "cuda": sc.launch_cuda}


def make_case(m, B, dx, dc, width, layers, dtype, t_dtype=None, device=DEVICE, seed=0):
    """A masked stack and inputs; masked input columns hold garbage that must not leak."""
    torch.manual_seed(seed + 1000 * m + B)  # the weights come from the global generator
    g = torch.Generator().manual_seed(seed + 1000 * m + B)
    mask = torch.rand(m, dx + dc, generator=g) > 0.3
    mask[:, 0] = True
    net = CompactScoreNet(m, dx, dc, in_mask=mask, width=width, layers=layers, generator=g)
    x = torch.randn(m, B, dx, generator=g)
    cond = torch.randn(m, B, dc, generator=g)
    x = torch.where(mask[:, None, :dx], x, torch.full_like(x, 100.0))
    cond = torch.where(mask[:, None, dx:], cond, torch.full_like(cond, -100.0))
    t = sde.T_MIN + (1 - sde.T_MIN) * torch.rand(m, B, generator=g)
    t[:, 0] = sde.T_MIN
    net = net.to(device, dtype).eval()
    return net, mask, x.to(device, dtype), t.to(device, t_dtype or dtype), cond.to(device, dtype)


def reference64(net, mask, x, t, cond) -> torch.Tensor:
    """Model by model, each at its own narrow input width, in float64 (tests/reference.py)."""
    dx = x.shape[2]
    out = []
    for k in range(x.shape[0]):
        cols = torch.cat([mask[k], torch.ones(FOURIER, dtype=torch.bool)]).nonzero()[:, 0]
        xk = x[k].cpu().double()[:, mask[k, :dx]]
        ck = cond[k].cpu().double()[:, mask[k, dx:]]
        out.append(score_single(net.cpu(), k, xk, t[k].cpu().double(), ck, cols))
    net.to(x.device)
    return torch.stack(out)


def max_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out.cpu().double() - ref).abs().max().item()


def assert_parity(out, net, mask, x, t, cond):
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.isfinite(out).all(), "non-finite values: an element was not written"
    ref = reference64(net, mask, x, t, cond)
    base_err = max_err(sc.score_compact_torch(net, x, t, cond), ref)
    err = max_err(out, ref)
    assert err <= 2 * base_err + FLOOR[x.dtype], f"max error {err:.3g} > 2 x torch's {base_err:.3g} + floor"


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_parity(backend, dtype, case):
    if (reason := SKIP[backend](dtype)) is not None:
        pytest.skip(reason)
    m, B, dx, dc, width, layers, tile = CASES[case]
    net, mask, x, t, cond = make_case(m, B, dx, dc, width, layers, dtype)
    out = torch.full_like(x, float("nan"))
    kwargs = {"tile": tile} if backend == "triton" else {}
    with torch.no_grad():
        LAUNCH[backend](x, t, cond, *sc.pack_weights(net), out, **kwargs)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_float32_time_with_16bit_inputs(backend, dtype):
    """t may stay float32 while x, cond and the net are 16-bit (features computed in fp32)."""
    if backend != "torch" and (reason := SKIP[backend](dtype)) is not None:
        pytest.skip(reason)
    net, mask, x, t, cond = make_case(2, 7, 2, 5, 32, 3, dtype, t_dtype=torch.float32)
    with torch.no_grad():
        out = score_eval_compact(net, x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_public_function_matches_reference(backend):
    if backend != "torch" and (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    net, mask, x, t, cond = make_case(3, 9, 6, 7, 64, 3, torch.float32)
    with torch.no_grad():
        out = score_eval_compact(net, x, t, cond, backend=backend)
    assert_parity(out, net, mask, x, t, cond)


def test_torch_backend_is_the_stacked_forward():
    net, _, x, t, cond = make_case(2, 5, 2, 5, 32, 3, torch.float64, device="cpu")
    torch.testing.assert_close(score_eval_compact(net, x, t, cond, backend="torch"), net(x, t, cond),
                               rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_empty_batch(backend):
    if backend != "torch" and (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 3, torch.float32)
    with torch.no_grad():
        out = score_eval_compact(net, x[:, :0], t[:, :0], cond[:, :0], backend=backend)
    assert out.shape == (2, 0, 2)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_behavior_epsilon_takes_the_fused_path(backend, monkeypatch):
    """BehaviorModel.epsilon (sequential mode, stage 2's call) through the kernel, selected by
    SCOREDEC_BACKEND, against the per-agent float64 loop."""
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    spec = AgentSpec((7, 3, 11), (2, 6, 1))
    gen = torch.Generator().manual_seed(3)
    torch.manual_seed(0)
    model = BehaviorModel(spec, "sequential", small_cfg("compact"), order=(2, 0, 1)).double().eval()
    obs, act = random_batch(spec, 5, gen)
    lay = model.layout
    x = torch.randn(lay.models, 5, lay.x_dim, generator=gen, dtype=torch.float64)
    t = torch.rand(lay.models, 5, generator=gen, dtype=torch.float64) * 0.99 + 0.01
    want = reference_epsilon(model, x, t, obs, act)
    model = model.float().to(DEVICE)
    monkeypatch.setenv(registry.ENV_BACKEND, backend)
    assert registry.select_name(sc.OP, DEVICE, (torch.float32, torch.float32, torch.float32, 32)) == backend
    with torch.no_grad():
        got = model.epsilon(x.float().to(DEVICE), t.float().to(DEVICE), obs.float().to(DEVICE),
                            act.float().to(DEVICE))
    mask = lay.x_mask()[:, None, :]
    torch.testing.assert_close((got.cpu() * mask).double(), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_opcheck(backend):
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    op = {"triton": torch.ops.scoredec.score_compact_triton, "cuda": torch.ops.scoredec.score_compact_cuda}[backend]
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    with torch.no_grad():
        packed = tuple(p.detach() for p in sc.pack_weights(net))
    torch.library.opcheck(op.default, (x, t, cond, *packed))


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_torch_compile_fullgraph(backend):
    """Backend choice, weight packing and the custom op trace without graph breaks (inductor on
    a GPU; aot_eager on the CPU)."""
    if backend != "torch" and (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)

    def run(x, t, cond):
        return score_eval_compact(net, x, t, cond, backend=backend) * 2.0

    compiled = torch.compile(run, fullgraph=True, backend="inductor" if HAS_GPU else "aot_eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x, t, cond), run(x, t, cond))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_backward_raises_forward_only(backend):
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    net, _, x, t, cond = make_case(1, 3, 2, 5, 32, 2, torch.float32)
    out = score_eval_compact(net, x, t, cond, backend=backend)
    with pytest.raises(RuntimeError, match="forward only"):
        out.sum().backward()


# ---------------------------------------------------------------------------------------------
# Bad inputs: validated before any backend runs; the error names the argument.
# ---------------------------------------------------------------------------------------------

def _bad_cases():
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cpu")
    return {
        "net-type": ((torch.nn.Linear(2, 2), x, t, cond), TypeError, "net must be"),
        "x-not-tensor": ((net, x.tolist(), t, cond), TypeError, "x must be a torch.Tensor"),
        "x-int": ((net, x.long(), t, cond), TypeError, "x must"),
        "x-half-net-float": ((net, x.half(), t.half(), cond.half()), TypeError, "net parameters are"),
        "cond-dtype": ((net, x, t, cond.half()), TypeError, "cond must"),
        "t-dtype": ((net, x, t.double(), cond), TypeError, "t must"),
        "x-shape": ((net, x[:1], t, cond), ValueError, "x must be"),
        "x-width": ((net, x[..., :1].contiguous(), t, cond), ValueError, "x must be"),
        "t-shape": ((net, x, t[:, :2].contiguous(), cond), ValueError, "t must be"),
        "cond-shape": ((net, x, t, cond[..., :4].contiguous()), ValueError, "cond must be"),
        "x-noncontiguous": ((net, x.transpose(0, 1).contiguous().transpose(0, 1), t, cond), ValueError,
                            "x must be contiguous"),
        "t-noncontiguous": ((net, x, t.t().contiguous().t(), cond), ValueError, "t must be contiguous"),
        "cond-noncontiguous": ((net, x, t, torch.randn(2, 5, 3).transpose(1, 2)), ValueError,
                               "cond must be contiguous"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda", None])
def test_bad_input_names_argument(backend, case):
    args, exc, match = BAD[case]
    with pytest.raises(exc, match=match):
        score_eval_compact(*args, backend=backend)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device to mix devices")
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_mixed_devices_name_argument(backend):
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32, device="cuda")
    with pytest.raises(ValueError, match="cond is on cpu"):
        score_eval_compact(net, x, t, cond.cpu(), backend=backend)
    with pytest.raises(ValueError, match="net is on cpu"):
        score_eval_compact(net.cpu(), x, t, cond, backend=backend)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_limits_name_argument(backend):
    """float64 and over-wide nets run on the torch backend only; a kernel request says so."""
    net64, _, x, t, cond = make_case(1, 3, 2, 5, 32, 2, torch.float64)
    wide, _, xw, tw, cw = make_case(1, 3, 2, 5, 528, 1, torch.float32)
    try:
        with pytest.raises(TypeError, match="x must be float32/float16/bfloat16 for the kernel"):
            score_eval_compact(net64, x, t, cond, backend=backend)
        with pytest.raises(ValueError, match="width 528"):
            score_eval_compact(wide, xw, tw, cw, backend=backend)
    except BackendUnavailableError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_custom_op_validates_packed_weights(backend):
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    net, _, x, t, cond = make_case(2, 3, 2, 5, 32, 2, torch.float32)
    with torch.no_grad():
        freqs, w0, b0, wh, bh, wo, bo = (p.detach() for p in sc.pack_weights(net))
    op = {"triton": sc.score_compact_triton, "cuda": sc.score_compact_cuda}[backend]
    with pytest.raises(ValueError, match="w0 must be"):
        op(x, t, cond, freqs, w0[:, 1:].contiguous(), b0, wh, bh, wo, bo)
    with pytest.raises(TypeError, match="wo must have the dtype"):
        op(x, t, cond, freqs, w0, b0, wh, bh, wo.half(), bo)
    with pytest.raises(ValueError, match="output must be"):
        LAUNCH[backend](x, t, cond, freqs, w0, b0, wh, bh, wo, bo, x.new_empty(2, 3, 3))
