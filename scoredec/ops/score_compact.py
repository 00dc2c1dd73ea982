"""Sequential score evaluation for the compact score net (issue 5, op 1; DESIGN.md 1.5 step 2):

    eps_k(x_t^k, t^k | c_k)  for every model k of a CompactScoreNet stack, in one call.

The agents' condition widths differ (c_k = [o_k, a_<k] grows with k); the stack pads them to one
width and zeroes the rows of the first weight a model lacks (StackedLinear.in_mask), so all m
models share one shape and run as one grid (row blocks x models) with no Python loop. The padded
inputs meet zero weight rows, exactly as in the torch forward.

The op takes tensors only: x, t, cond and the packed weights (PACKED below; scoredec.nets.CompactScoreNet
packs its own and calls this op from its forward). Backends: torch (score_compact_torch, the
specification on the packed weights, float64-capable and differentiable), triton
(kernels/score_compact.py) and cuda (csrc/score_compact.cu) run the whole MLP of every model in
one fused launch: Fourier features, input concatenation, bias adds and Mish inside the GEMMs.
They are registered as torch.library custom ops (scoredec::score_compact_triton,
scoredec::score_compact_cuda) taking the packed weights, so torch.compile and CUDA graphs see
them.

Forward only: the op sits under stop-gradient in stage 2. The kernel ops raise on backward
instead of returning a wrong (zero) gradient; use backend='torch' to differentiate.

Dtypes: x, cond and the weights share one dtype: float32, float16 or bfloat16 on every backend,
float64 on torch only. t and freqs are float32 or x's dtype. The kernels accumulate in float32 and compute the Fourier features and
Mish in float32; the torch backend computes the features in t's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec import sde

from . import common, registry
from .activations import ACTIVATIONS

OP = "score_compact"
NAME = "score_eval_compact"

TORCH_DTYPES = common.TORCH_DTYPES
KERNEL_DTYPES = common.KERNEL_DTYPES
# Widest hidden layer the kernels hold on chip (kernels/score_compact.py MAX_WIDTH).
KERNEL_MAX_WIDTH = 512


# Packed layout (what CompactScoreNet.packed_weights returns, in the weights' dtype):
#   freqs [F], w0 [m, dx + dc + 2F, W] (input mask applied), b0 [m, 1, W],
#   wh [m, layers-1, W, W], bh [m, layers-1, W], wo [m, W, dx], bo [m, 1, dx].
PACKED = ("freqs", "w0", "b0", "wh", "bh", "wo", "bo")


# ---------------------------------------------------------------------------------------------
# Validation: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def kernel_key(x: Tensor, t: Tensor, freqs: Tensor, width: int, activation: str) -> tuple:
    """What the kernel backends' input checks read."""
    return x.dtype, t.dtype, freqs.dtype, width, activation


def _kernel_accepts(x_dtype: torch.dtype, t_dtype: torch.dtype, freqs_dtype: torch.dtype, width: int,
                    activation: str = "mish"):
    """Inputs the fp32-accumulating kernels take beyond validate(); None if accepted."""
    if activation != "mish":
        return TypeError(f"{NAME}: the fused kernels implement the Mish compact net, this one uses "
                         f"{activation!r} (the default behaviour recipe): use backend='torch'")
    if (err := common.score_kernel_dtype_error(NAME, x_dtype, t_dtype, freqs_dtype)) is not None:
        return err
    if width > KERNEL_MAX_WIDTH:
        return ValueError(f"{NAME}: net width {width} > {KERNEL_MAX_WIDTH} does not fit the fused kernels' "
                          f"registers; use backend='torch'")
    return None


def select_backend(x: Tensor, t: Tensor, freqs: Tensor, width: int, activation: str,
                   backend: str | None) -> str:
    """The backend a call with these inputs runs on (registry.select_name's rules)."""
    return registry.select_name(OP, x.device, kernel_key(x, t, freqs, width, activation), backend)


def validate(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
             bh: Tensor, wo: Tensor, bo: Tensor, activation: str = "mish") -> None:
    """Every backend's check of the packed layout (the custom ops can be called directly)."""
    args = {"x": x, "t": t, "cond": cond, "freqs": freqs, "w0": w0, "b0": b0, "wh": wh, "bh": bh, "wo": wo,
            "bo": bo}
    common.check_tensors(NAME, args)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{NAME}: activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    if x.dim() != 3 or cond.dim() != 3 or w0.dim() != 3:
        raise ValueError(f"{NAME}: x, cond must be [m, B, *] and w0 [m, K0, W]; got x {tuple(x.shape)}, "
                         f"cond {tuple(cond.shape)}, w0 {tuple(w0.shape)}")
    m, B, dx = x.shape
    dc, W, F = cond.shape[2], w0.shape[2], freqs.shape[0] if freqs.dim() == 1 else -1
    nh = wh.shape[1] if wh.dim() == 4 else -1
    shapes = {"t": (m, B), "cond": (m, B, dc), "freqs": (F,), "w0": (m, dx + dc + 2 * F, W), "b0": (m, 1, W),
              "wh": (m, nh, W, W), "bh": (m, nh, W), "wo": (m, W, dx), "bo": (m, 1, dx)}
    if F < 1 or nh < 0:
        raise ValueError(f"{NAME}: freqs must be [F] and wh [m, layers-1, W, W]; got freqs {tuple(freqs.shape)}, "
                         f"wh {tuple(wh.shape)}")
    common.check_shapes(NAME, args, shapes)
    if x.dtype not in TORCH_DTYPES:
        raise TypeError(f"{NAME}: x must be float32/float16/bfloat16/float64, got {x.dtype}")
    common.check_same_dtype(NAME, args, ("cond", "w0", "b0", "wh", "bh", "wo", "bo"), "x")
    for name in ("t", "freqs"):
        if args[name].dtype not in (torch.float32, x.dtype):
            raise TypeError(f"{NAME}: {name} must be float32 or {x.dtype}, got {args[name].dtype}")
    common.check_device_contiguous(NAME, args, "x")


def _validate_kernel(x, t, cond, freqs, w0, b0, wh, bh, wo, bo) -> None:
    validate(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)
    if (err := _kernel_accepts(*kernel_key(x, t, freqs, w0.shape[2], "mish"))) is not None:
        raise err


# ---------------------------------------------------------------------------------------------
# torch: the specification, on the packed weights.
# ---------------------------------------------------------------------------------------------

def score_compact_torch(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                        bh: Tensor, wo: Tensor, bo: Tensor, activation: str = "mish") -> Tensor:
    """act(... act([x, cond, fourier(t)] w0 + b0) wh[i] + bh[i] ...) wo + bo per model, the
    Fourier features in t's dtype cast to x's (the kernels compute them in float32)."""
    act = ACTIVATIONS[activation]
    fourier = sde.fourier_features(t, freqs.to(t.dtype)).to(x.dtype)
    h = act(torch.baddbmm(b0, torch.cat([x, cond, fourier], dim=-1), w0))
    for i in range(wh.shape[1]):
        h = act(torch.baddbmm(bh[:, i:i + 1], h, wh[:, i]))
    return torch.baddbmm(bo, h, wo)


# ---------------------------------------------------------------------------------------------
# Kernel backends: launchers writing into given buffers (tests pass NaN-filled ones), custom ops.
# ---------------------------------------------------------------------------------------------

def launch_triton(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                  bh: Tensor, wo: Tensor, bo: Tensor, out: Tensor, tile: tuple[int, int] | None = None) -> None:
    _validate_kernel(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)
    common.check_output(NAME, x, out)
    from scoredec.kernels import score_compact as kernel

    with common.device_guard(x.device):
        kernel.launch(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out, tile=tile)


def launch_cuda(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                bh: Tensor, wo: Tensor, bo: Tensor, out: Tensor) -> None:
    _validate_kernel(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)
    common.check_output(NAME, x, out)
    if x.device.type != "cuda":
        raise ValueError(f"{NAME}: the cuda backend needs CUDA tensors, x is on {x.device}")
    from scoredec import _C

    m, B, dx = x.shape
    if m == 0 or B == 0:
        return
    if wh.shape[1] == 0:  # never read; a valid address instead of an empty tensor's
        wh, bh = w0, b0
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.score_compact(x.data_ptr(), t.data_ptr(), cond.data_ptr(), freqs.data_ptr(), w0.data_ptr(),
                         b0.data_ptr(), wh.data_ptr(), bh.data_ptr(), wo.data_ptr(), bo.data_ptr(), out.data_ptr(),
                         m, B, dx, cond.shape[2], freqs.shape[0], w0.shape[2], wh.shape[1],
                         common.CUDA_DTYPE_CODE[x.dtype], t.dtype == torch.float32, freqs.dtype == torch.float32,
                         stream)


@torch.library.custom_op("scoredec::score_compact_triton", mutates_args=())
def score_compact_triton(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                         bh: Tensor, wo: Tensor, bo: Tensor) -> Tensor:
    out = torch.empty_like(x)
    launch_triton(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out)
    return out


@torch.library.custom_op("scoredec::score_compact_cuda", mutates_args=())
def score_compact_cuda(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                       bh: Tensor, wo: Tensor, bo: Tensor) -> Tensor:
    out = torch.empty_like(x)
    launch_cuda(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out)
    return out


def _fake(x, t, cond, freqs, w0, b0, wh, bh, wo, bo):
    return torch.empty_like(x)


common.register_forward_only((score_compact_triton, score_compact_cuda), _fake, f"{NAME}: {common.SCORE_FORWARD_ONLY}")


def _run_triton(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, activation):
    return score_compact_triton(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)


def _run_cuda(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, activation):
    return score_compact_cuda(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)


_triton_available = registry.triton_kernel_available("score_compact", "score_compact_kernel")
_cuda_available = common.cuda_extension_available("score_compact", "score_compact")


registry.register_op(OP, score_compact_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, _cuda_available, _kernel_accepts)


def score_eval_compact(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                       bh: Tensor, wo: Tensor, bo: Tensor, *, activation: str = "mish",
                       backend: str | None = None) -> Tensor:
    """All m stacked compact score models' outputs in one fused pass (forward only on the kernels).

    x: [m, B, x_dim]; t: [m, B]; cond: [m, B, cond_dim]; the packed weights (PACKED, as
    CompactScoreNet.packed_weights returns them); x, cond and the weights share one dtype
    (float32/float16/bfloat16; float64 on torch), t and freqs are float32 or that dtype.
    Returns [m, B, x_dim] in x's dtype. activation: between layers (the kernels: mish only).
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic).
    """
    validate(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, activation)
    return registry.dispatch(OP, x.device, x, t, cond, freqs, w0, b0, wh, bh, wo, bo, activation, backend=backend,
                             key=kernel_key(x, t, freqs, w0.shape[2], activation))
