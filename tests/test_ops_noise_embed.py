"""Parity, autograd and bad-input tests of scoredec.ops.noise_and_embed on every backend.

The float64 reference is tests/reference.py's noise_embed64, the closed form written out
independently of scoredec/sde.py. Tolerance (flash-attention's rule): every backend's max error
against it, the torch backend included, must be at most twice the error of the plain PyTorch
formula in the same dtype (naive below), plus a small floor; in float64 the torch backend
agrees with it to 1e-12. Kernels write into NaN-filled buffers, so a skipped element
fails instead of passing on leftover memory. Without a GPU the triton backend runs in the
interpreter (tests/conftest.py sets TRITON_INTERPRET=1) in float32/float16 only.
"""

from __future__ import annotations

import os

import pytest
import torch

from backend_skips import backend_skip
from reference import noise_embed64

from scoredec.ops import BackendUnavailableError, noise_and_embed
from scoredec.ops import noise_embed as ne
from scoredec.ops import registry
from scoredec.sde import BETA_0, BETA_1, T_MIN, VPSDE, fourier_features

HAS_GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda" if HAS_GPU else "cpu")
INTERPRET = registry.triton_interpreting()

BATCHES = (1, 3, 7, 113, 3000)
WIDTHS = (1, 2, 6)
FREQS = (16, 5)
# Error floors per dtype, on top of 2x the torch backend's own error.
FLOOR = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}


SKIP = {b: (lambda dtype, b=b: backend_skip(ne.OP, b, dtype, DEVICE)) for b in ("triton", "cuda")}
LAUNCH = {"triton": ne.launch_triton, "cuda": ne.launch_cuda}


def make_inputs(B: int, d: int, F: int, dtype: torch.dtype, device=DEVICE, seed: int = 0):
    """a in [-1, 1], z ~ N(0, 1), t ~ U(T_MIN, 1) with both ends present, freqs ~ N(0, 30^2)."""
    g = torch.Generator().manual_seed(seed + 1000 * B + 10 * d + F)
    a = torch.rand(B, d, generator=g) * 2 - 1
    z = torch.randn(B, d, generator=g)
    t = T_MIN + (1 - T_MIN) * torch.rand(B, generator=g)
    t[0] = T_MIN
    if B > 1:
        t[-1] = 1.0
    freqs = torch.randn(F, generator=g) * 30.0
    return a.to(device, dtype), z.to(device, dtype), t.to(device), freqs.to(device)


def naive(a, z, t, freqs, beta_0: float = BETA_0, beta_1: float = BETA_1):
    """Plain PyTorch in t's precision, cast to a's dtype: the tolerance's base."""
    log_alpha = -0.25 * t ** 2 * (beta_1 - beta_0) - 0.5 * t * beta_0
    alpha, sigma = torch.exp(log_alpha), torch.sqrt(-torch.expm1(2 * log_alpha))
    x_t = (alpha[:, None] * a + sigma[:, None] * z).to(a.dtype)
    proj = 2 * torch.pi * t[:, None] * freqs[None, :]
    return x_t, torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1).to(a.dtype)


def max_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return (out.cpu().double() - ref).abs().max().item()


def assert_parity(outs, a, z, t, freqs, beta_0: float = BETA_0, beta_1: float = BETA_1):
    ref = noise_embed64(a, z, t, freqs, beta_0, beta_1)
    base = naive(a, z, t, freqs, beta_0, beta_1)
    for name, out, r, b in zip(("x_t", "temb"), outs, ref, base):
        assert out.dtype == a.dtype and out.shape == r.shape, name
        assert torch.isfinite(out).all(), f"{name}: non-finite values (an element was not written)"
        err, base_err = max_err(out, r), max_err(b, r)
        if a.dtype == torch.float64:
            assert err <= 1e-12, f"{name}: float64 max error {err:.3g}"
        bound = 2 * base_err + FLOOR[a.dtype]
        assert err <= bound, f"{name}: max error {err:.3g} > 2 x plain torch's {base_err:.3g} + floor"


@pytest.mark.parametrize("F", FREQS)
@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_torch_backend_parity(dtype, B, d, F):
    a, z, t, freqs = make_inputs(B, d, F, dtype, device="cpu", seed=11)
    if dtype == torch.float64:
        t, freqs = t.double(), freqs.double()
    assert_parity(noise_and_embed(a, z, t, freqs, backend="torch"), a, z, t, freqs)


@pytest.mark.parametrize("F", FREQS)
@pytest.mark.parametrize("d", WIDTHS)
@pytest.mark.parametrize("B", BATCHES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_parity(backend, dtype, B, d, F):
    if (reason := SKIP[backend](dtype)) is not None:
        pytest.skip(reason)
    a, z, t, freqs = make_inputs(B, d, F, dtype)
    x_t = torch.full_like(a, float("nan"))
    temb = torch.full((B, 2 * F), float("nan"), dtype=dtype, device=a.device)
    LAUNCH[backend](a, z, t, freqs, x_t, temb, *VPSDE().log_alpha_coefficients())
    assert_parity((x_t, temb), a, z, t, freqs)


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_public_function_matches_reference(backend):
    dtype = torch.float32
    if backend != "torch" and (reason := SKIP[backend](dtype)) is not None:
        pytest.skip(reason)
    a, z, t, freqs = make_inputs(113, 6, 16, dtype)
    outs = noise_and_embed(a, z, t, freqs, beta_0=0.2, beta_1=15.0, backend=backend)
    assert_parity(outs, a, z, t, freqs, 0.2, 15.0)


def test_torch_backend_is_sde_py():
    """The torch backend is sde.py itself, also in float64."""
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float64)
    t = t.double()
    x_t, temb = noise_and_embed(a, z, t, freqs.double(), backend="torch")
    torch.testing.assert_close(x_t, VPSDE().noise(a, t, z), rtol=0, atol=0)
    torch.testing.assert_close(temb, fourier_features(t, freqs.double()), rtol=0, atol=0)


def test_empty_batch():
    a, z, t, freqs = make_inputs(1, 2, 16, torch.float32)
    x_t, temb = noise_and_embed(a[:0], z[:0], t[:0], freqs, backend="torch")
    assert x_t.shape == (0, 2) and temb.shape == (0, 32)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_autograd(backend):
    dtype = torch.float32
    if (reason := SKIP[backend](dtype)) is not None:
        pytest.skip(reason)
    a, z, t, freqs = make_inputs(7, 6, 5, dtype)
    grads = {}
    for name in ("torch", backend):
        a_ = a.clone().requires_grad_()
        z_ = z.clone().requires_grad_()
        x_t, temb = noise_and_embed(a_, z_, t, freqs, backend=name)
        (x_t * torch.arange(1.0, 7.0, device=a.device)).sum().backward()
        grads[name] = (a_.grad, z_.grad)
    for g_kernel, g_ref in zip(grads[backend], grads["torch"]):
        torch.testing.assert_close(g_kernel, g_ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_opcheck(backend):
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    op = {"triton": torch.ops.scoredec.noise_embed_triton, "cuda": torch.ops.scoredec.noise_embed_cuda}[backend]
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float32)
    coefficients = VPSDE().log_alpha_coefficients()
    torch.library.opcheck(op.default, (a, z, t, freqs, *coefficients))
    torch.library.opcheck(op.default, (a.requires_grad_(), z.requires_grad_(), t, freqs, *coefficients))


@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_torch_compile_fullgraph(backend):
    """Backend choice and the custom ops trace without graph breaks (inductor on a GPU;
    aot_eager on the CPU, which checks dynamo + fake + autograd without a C++ compile)."""
    if backend != "torch" and (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    a, z, t, freqs = make_inputs(113, 6, 16, torch.float32)

    def loss(a, z, t, freqs):
        x_t, temb = noise_and_embed(a, z, t, freqs, backend=backend)
        return x_t.square().sum() + temb.sum()

    compiled = torch.compile(loss, fullgraph=True, backend="inductor" if HAS_GPU else "aot_eager")
    a_ = a.clone().requires_grad_()
    out = compiled(a_, z, t, freqs)
    out.backward()
    torch.testing.assert_close(out, loss(a, z, t, freqs))
    alpha, _ = VPSDE().alpha_sigma(t)
    torch.testing.assert_close(a_.grad, 2 * alpha[:, None] * noise_and_embed(a, z, t, freqs, backend="torch")[0])


# ---------------------------------------------------------------------------------------------
# Bad inputs: every backend validates before launching, and the error names the argument.
# ---------------------------------------------------------------------------------------------

def _bad_cases():
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float32, device="cpu")
    return {
        "a-int": ((a.long(), z, t, freqs), TypeError, "a must"),
        "a-not-tensor": ((a.tolist(), z, t, freqs), TypeError, "a must be a torch.Tensor"),
        "z-dtype": ((a, z.half(), t, freqs), TypeError, "z must"),
        "z-shape": ((a, z[:3], t, freqs), ValueError, "z must"),
        "a-3d": ((a[None], z[None], t, freqs), ValueError, "a must"),
        "t-shape": ((a, z, t[:3], freqs), ValueError, "t must"),
        "t-int": ((a, z, t.long(), freqs), TypeError, "t must"),
        "freqs-2d": ((a, z, t, freqs[None]), ValueError, "freqs must"),
        "freqs-half": ((a, z, t, freqs.half()), TypeError, "freqs must"),
        "a-noncontiguous": ((a.t().contiguous().t(), z, t, freqs), ValueError, "a must be contiguous"),
        "z-noncontiguous": ((a, torch.randn(2, 7).t(), t, freqs), ValueError, "z must be contiguous"),
        "t-noncontiguous": ((a, z, torch.rand(14)[::2], freqs), ValueError, "t must be contiguous"),
    }


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda", None])
def test_bad_input_names_argument(backend, case):
    args, exc, match = BAD[case]
    if backend is not None and backend != "torch" and HAS_GPU:
        args = tuple(x.cuda() if isinstance(x, torch.Tensor) else x for x in args)
    with pytest.raises(exc, match=match):
        noise_and_embed(*args, backend=backend)


@pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA device to mix devices")
@pytest.mark.parametrize("backend", ["torch", "triton", "cuda"])
def test_mixed_devices_name_argument(backend):
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float32, device="cuda")
    with pytest.raises(ValueError, match="z is on cpu"):
        noise_and_embed(a, z.cpu(), t, freqs, backend=backend)
    with pytest.raises(ValueError, match="freqs is on cpu"):
        noise_and_embed(a, z, t, freqs.cpu(), backend=backend)


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_kernel_dtypes_name_argument(backend):
    """float64 runs on the torch backend only; requesting a kernel for it names the argument."""
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float32)
    cases = [((a.double(), z.double(), t, freqs), "a must"), ((a, z, t.double(), freqs), "t must be float32"),
             ((a, z, t, freqs.double()), "freqs must be float32")]
    for args, match in cases:
        try:
            with pytest.raises(TypeError, match=match):
                noise_and_embed(*args, backend=backend)
        except BackendUnavailableError as e:
            pytest.skip(str(e))


@pytest.mark.parametrize("backend", ["triton", "cuda"])
def test_wrong_output_buffer_is_refused(backend):
    if (reason := SKIP[backend](torch.float32)) is not None:
        pytest.skip(reason)
    a, z, t, freqs = make_inputs(7, 2, 5, torch.float32)
    coefficients = VPSDE().log_alpha_coefficients()
    with pytest.raises(ValueError, match="temb"):
        LAUNCH[backend](a, z, t, freqs, torch.empty_like(a), a.new_empty(7, 5), *coefficients)
    with pytest.raises(ValueError, match="x_t"):
        LAUNCH[backend](a, z, t, freqs, a.new_empty(7, 3), a.new_empty(7, 10), *coefficients)


def test_interpreter_set_for_cpu_runs():
    if not HAS_GPU:
        assert os.environ.get("TRITON_INTERPRET") == "1"


def test_kernels_receive_the_schedules_coefficients():
    """log alpha = c2 t^2 + c1 t with sde.py's coefficients is VPSDE.log_alpha, bit for bit in
    float32 and float64 (the factors are powers of two), and the schedule is recovered from them."""
    for vp in (VPSDE(), VPSDE(0.2, 15.0)):
        c2, c1 = vp.log_alpha_coefficients()
        assert VPSDE.from_log_alpha_coefficients(c2, c1) == vp
        for dtype in (torch.float32, torch.float64):
            t = torch.linspace(T_MIN, 1.0, 10_001, dtype=dtype)
            torch.testing.assert_close(t * t * c2 + t * c1, vp.log_alpha(t), rtol=0, atol=0)
