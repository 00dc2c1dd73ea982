"""Fused noising of a batch of actions plus the Fourier time features (DESIGN.md 1.3, 1.5):

    x_t  = alpha_t a + sigma_t z                     [B, d]
    temb = [sin(2 pi t freqs), cos(2 pi t freqs)]    [B, 2F]

The torch backend is built from scoredec/sde.py and is the specification; the triton
(kernels/noise_embed.py) and cuda (csrc/noise_embed.cu) backends receive the schedule's
coefficients (log alpha_t = la_t2 t^2 + la_t1 t, sde.VPSDE.log_alpha_coefficients), compute in
float32 and are registered as torch.library custom ops (scoredec::noise_embed_triton,
scoredec::noise_embed_cuda) so torch.compile and CUDA graphs see them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec.sde import BETA_0, BETA_1, VPSDE, fourier_features

from . import common, registry

OP = "noise_embed"

# Element dtypes of a / z / outputs (float64 is the reference's, for parity tests) and the
# dtype codes of csrc/noise_embed.h (scoredec::DType): the ones every op shares.
TORCH_DTYPES, KERNEL_DTYPES = common.TORCH_DTYPES, common.KERNEL_DTYPES
_CUDA_DTYPE_CODE = common.CUDA_DTYPE_CODE


# ---------------------------------------------------------------------------------------------
# Validation shared by every backend: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def validate(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor) -> None:
    """Checks shapes, dtypes, devices and contiguity common to every backend."""
    for name, x in (("a", a), ("z", z), ("t", t), ("freqs", freqs)):
        if not isinstance(x, Tensor):
            raise TypeError(f"noise_and_embed: {name} must be a torch.Tensor, got {type(x).__name__}")
    if a.dtype not in TORCH_DTYPES:
        raise TypeError(f"noise_and_embed: a must be float32/float16/bfloat16/float64, got {a.dtype}")
    if z.dtype != a.dtype:
        raise TypeError(f"noise_and_embed: z must have the dtype of a ({a.dtype}), got {z.dtype}")
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"noise_and_embed: t must be float32 or float64, got {t.dtype}")
    if freqs.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"noise_and_embed: freqs must be float32 (or float64 for the torch backend), "
                        f"got {freqs.dtype}")
    if a.dim() != 2 or a.shape[1] < 1:
        raise ValueError(f"noise_and_embed: a must be [B, d] with d >= 1, got shape {tuple(a.shape)}")
    if z.shape != a.shape:
        raise ValueError(f"noise_and_embed: z must have the shape of a {tuple(a.shape)}, got {tuple(z.shape)}")
    if t.shape != (a.shape[0],):
        raise ValueError(f"noise_and_embed: t must be [B] = [{a.shape[0]}], got shape {tuple(t.shape)}")
    if freqs.dim() != 1 or freqs.shape[0] < 1:
        raise ValueError(f"noise_and_embed: freqs must be [F] with F >= 1, got shape {tuple(freqs.shape)}")
    for name, x in (("z", z), ("t", t), ("freqs", freqs)):
        if x.device != a.device:
            raise ValueError(f"noise_and_embed: {name} is on {x.device} but a is on {a.device}")
    for name, x in (("a", a), ("z", z), ("t", t), ("freqs", freqs)):
        if not x.is_contiguous():
            raise ValueError(f"noise_and_embed: {name} must be contiguous (call .contiguous())")


def _key(a: Tensor, t: Tensor, freqs: Tensor) -> tuple:
    """What the backends' input checks read: (a.dtype, t.dtype, freqs.dtype)."""
    return a.dtype, t.dtype, freqs.dtype


def _kernel_accepts(a_dtype: torch.dtype, t_dtype: torch.dtype, freqs_dtype: torch.dtype):
    """Dtypes the fp32-arithmetic kernels take beyond validate(); None if accepted."""
    if a_dtype not in KERNEL_DTYPES:
        return TypeError(f"noise_and_embed: a must be float32/float16/bfloat16 for the kernel backends, "
                         f"got {a_dtype} (float64 runs on backend='torch')")
    if t_dtype != torch.float32:
        return TypeError(f"noise_and_embed: t must be float32 for the kernel backends, got {t_dtype}")
    if freqs_dtype != torch.float32:
        return TypeError(f"noise_and_embed: freqs must be float32 for the kernel backends, got {freqs_dtype}")
    return None


def _check_outputs(a: Tensor, freqs: Tensor, x_t: Tensor, temb: Tensor) -> None:
    B, F = a.shape[0], freqs.shape[0]
    for name, out, shape in (("x_t", x_t, tuple(a.shape)), ("temb", temb, (B, 2 * F))):
        if tuple(out.shape) != shape or out.dtype != a.dtype or out.device != a.device or not out.is_contiguous():
            raise ValueError(f"noise_and_embed: output {name} must be a contiguous {shape} {a.dtype} tensor "
                             f"on {a.device}, got {tuple(out.shape)} {out.dtype} on {out.device}")


# ---------------------------------------------------------------------------------------------
# torch: the reference, straight from sde.py.
# ---------------------------------------------------------------------------------------------

def noise_embed_torch(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, beta_0: float = BETA_0,
                      beta_1: float = BETA_1) -> tuple[Tensor, Tensor]:
    """Reference: sde.py's VPSDE.noise and fourier_features, in the precision of t and freqs,
    cast to the dtype of a. Differentiable in a, z (and t)."""
    x_t = VPSDE(beta_0, beta_1).noise(a, t, z).to(a.dtype)
    temb = fourier_features(t, freqs).to(a.dtype)
    return x_t, temb


# ---------------------------------------------------------------------------------------------
# Kernel launchers writing into given buffers (tests pass NaN-filled ones).
# ---------------------------------------------------------------------------------------------

def _launch_checks(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, x_t: Tensor, temb: Tensor) -> None:
    validate(a, z, t, freqs)
    if (err := _kernel_accepts(*_key(a, t, freqs))) is not None:
        raise err
    _check_outputs(a, freqs, x_t, temb)


def launch_triton(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, x_t: Tensor, temb: Tensor,
                  la_t2: float, la_t1: float) -> None:
    """la_t2, la_t1: log alpha_t = la_t2 t^2 + la_t1 t (VPSDE.log_alpha_coefficients)."""
    _launch_checks(a, z, t, freqs, x_t, temb)
    from scoredec.kernels import noise_embed as kernel

    with common.device_guard(a.device):
        kernel.launch(a, z, t, freqs, x_t, temb, la_t2, la_t1)


def launch_cuda(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, x_t: Tensor, temb: Tensor,
                la_t2: float, la_t1: float) -> None:
    """la_t2, la_t1: log alpha_t = la_t2 t^2 + la_t1 t (VPSDE.log_alpha_coefficients)."""
    _launch_checks(a, z, t, freqs, x_t, temb)
    if a.device.type != "cuda":
        raise ValueError(f"noise_and_embed: the cuda backend needs CUDA tensors, a is on {a.device}")
    from scoredec import _C

    B, d = a.shape
    if B == 0:
        return
    with torch.cuda.device(a.device):
        stream = torch.cuda.current_stream(a.device).cuda_stream
        _C.noise_embed(a.data_ptr(), z.data_ptr(), t.data_ptr(), freqs.data_ptr(), x_t.data_ptr(),
                       temb.data_ptr(), B, d, freqs.shape[0], float(la_t2), float(la_t1),
                       _CUDA_DTYPE_CODE[a.dtype], stream)


# ---------------------------------------------------------------------------------------------
# Custom ops: opaque to torch.compile, with fake (shape) and autograd rules.
# ---------------------------------------------------------------------------------------------

def _empty_outputs(a: Tensor, freqs: Tensor) -> tuple[Tensor, Tensor]:
    return torch.empty_like(a), a.new_empty((a.shape[0], 2 * freqs.shape[0]))


@torch.library.custom_op("scoredec::noise_embed_triton", mutates_args=())
def noise_embed_triton(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, la_t2: float,
                       la_t1: float) -> tuple[Tensor, Tensor]:
    x_t, temb = _empty_outputs(a, freqs)
    launch_triton(a, z, t, freqs, x_t, temb, la_t2, la_t1)
    return x_t, temb


@torch.library.custom_op("scoredec::noise_embed_cuda", mutates_args=())
def noise_embed_cuda(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, la_t2: float,
                     la_t1: float) -> tuple[Tensor, Tensor]:
    x_t, temb = _empty_outputs(a, freqs)
    launch_cuda(a, z, t, freqs, x_t, temb, la_t2, la_t1)
    return x_t, temb


def _fake(a, z, t, freqs, la_t2, la_t1):
    return _empty_outputs(a, freqs)


def _setup_context(ctx, inputs, output):
    _, _, t, _, la_t2, la_t1 = inputs
    ctx.save_for_backward(t)
    ctx.coefficients = (la_t2, la_t1)


def _backward(ctx, grad_x, grad_temb):
    # d x_t / d a = alpha_t, d x_t / d z = sigma_t (sde.py); t and freqs get no gradient.
    (t,) = ctx.saved_tensors
    alpha, sigma = VPSDE.from_log_alpha_coefficients(*ctx.coefficients).alpha_sigma(t)
    grad_a = (alpha[:, None] * grad_x).to(grad_x.dtype)
    grad_z = (sigma[:, None] * grad_x).to(grad_x.dtype)
    return grad_a, grad_z, None, None, None, None


for _op in (noise_embed_triton, noise_embed_cuda):
    _op.register_fake(_fake)
    _op.register_autograd(_backward, setup_context=_setup_context)


def _run_triton(a, z, t, freqs, beta_0, beta_1):
    return noise_embed_triton(a, z, t, freqs, *VPSDE(beta_0, beta_1).log_alpha_coefficients())


def _run_cuda(a, z, t, freqs, beta_0, beta_1):
    return noise_embed_cuda(a, z, t, freqs, *VPSDE(beta_0, beta_1).log_alpha_coefficients())


_triton_available = registry.triton_kernel_available("noise_embed", "noise_embed_kernel")


registry.register_op(OP, noise_embed_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, registry.cuda_available, _kernel_accepts)


def noise_and_embed(a: Tensor, z: Tensor, t: Tensor, freqs: Tensor, *, beta_0: float = BETA_0,
                    beta_1: float = BETA_1, backend: str | None = None) -> tuple[Tensor, Tensor]:
    """Noised actions and time features for the score-matching loss.

    a, z: [B, d] float32/float16/bfloat16 (float64: torch backend only); t: [B] float32 (float64:
    torch only); freqs: [F] float32. Returns x_t: [B, d] and temb: [B, 2F], both of a's dtype.
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic).
    """
    validate(a, z, t, freqs)
    return registry.dispatch(OP, a.device, a, z, t, freqs, float(beta_0), float(beta_1), backend=backend,
                             key=_key(a, t, freqs))
