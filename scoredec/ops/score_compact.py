"""Sequential score evaluation for the compact score net (issue 5, op 1; DESIGN.md 1.5 step 2):

    eps_k(x_t^k, t^k | c_k)  for every model k of a CompactScoreNet stack, in one call.

The agents' condition widths differ (c_k = [o_k, a_<k] grows with k); the stack pads them to one
width and zeroes the rows of the first weight a model lacks (StackedLinear.in_mask), so all m
models share one shape and run as one grid (row blocks x models) with no Python loop. The padded
inputs meet zero weight rows, exactly as in the torch forward.

Backends: torch is the stacked net's own forward (the specification). triton
(kernels/score_compact.py) and cuda (csrc/score_compact.cu) run the whole MLP of every model in
one fused launch: Fourier features, input concatenation, bias adds and Mish inside the GEMMs.
They are registered as torch.library custom ops (scoredec::score_compact_triton,
scoredec::score_compact_cuda) taking the packed weights (pack_weights), so torch.compile and
CUDA graphs see them.

Forward only: the op sits under stop-gradient in stage 2. The kernel ops raise on backward
instead of returning a wrong (zero) gradient; use backend='torch' to differentiate.

Dtypes: x, cond and the net's parameters share one dtype: float32, float16 or bfloat16 on every
backend, float64 on torch only (cast the net with net.to(dtype)). t and the net's freqs buffer
are float32 or x's dtype. The kernels accumulate in float32 and compute the Fourier features and
Mish in float32; the torch backend computes the features in t's dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec import sde
from scoredec.nets import CompactScoreNet

from . import registry

OP = "score_compact"
NAME = "score_eval_compact"

TORCH_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Widest hidden layer the kernels hold on chip (kernels/score_compact.py MAX_WIDTH).
KERNEL_MAX_WIDTH = 512
# Dtype codes of csrc/score_compact.h (scoredec::DType).
_CUDA_DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}


# ---------------------------------------------------------------------------------------------
# Validation: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def validate(net: CompactScoreNet, x: Tensor, t: Tensor, cond: Tensor) -> None:
    """Shapes, dtypes, devices and contiguity common to every backend."""
    if not isinstance(net, CompactScoreNet):
        raise TypeError(f"{NAME}: net must be a scoredec.nets.CompactScoreNet, got {type(net).__name__}")
    for name, a in (("x", x), ("t", t), ("cond", cond)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{NAME}: {name} must be a torch.Tensor, got {type(a).__name__}")
    if x.dtype not in TORCH_DTYPES:
        raise TypeError(f"{NAME}: x must be float32/float16/bfloat16/float64, got {x.dtype}")
    if cond.dtype != x.dtype:
        raise TypeError(f"{NAME}: cond must have the dtype of x ({x.dtype}), got {cond.dtype}")
    if t.dtype not in (torch.float32, x.dtype):
        raise TypeError(f"{NAME}: t must be float32 or the dtype of x ({x.dtype}), got {t.dtype}")
    w_dtype = net.mlp.layers[0].weight.dtype
    if w_dtype != x.dtype:
        raise TypeError(f"{NAME}: net parameters are {w_dtype} but x is {x.dtype}; "
                        f"cast the net (net.to({x.dtype})) or the inputs")
    m, dx, dc = net.models, net.x_dim, net.cond_dim
    if x.dim() != 3 or x.shape[0] != m or x.shape[2] != dx:
        raise ValueError(f"{NAME}: x must be [m, B, x_dim] = [{m}, B, {dx}], got shape {tuple(x.shape)}")
    B = x.shape[1]
    if tuple(t.shape) != (m, B):
        raise ValueError(f"{NAME}: t must be [m, B] = [{m}, {B}], got shape {tuple(t.shape)}")
    if tuple(cond.shape) != (m, B, dc):
        raise ValueError(f"{NAME}: cond must be [m, B, cond_dim] = [{m}, {B}, {dc}], got shape {tuple(cond.shape)}")
    for name, a in (("t", t), ("cond", cond)):
        if a.device != x.device:
            raise ValueError(f"{NAME}: {name} is on {a.device} but x is on {x.device}")
    if net.freqs.device != x.device:
        raise ValueError(f"{NAME}: net is on {net.freqs.device} but x is on {x.device}")
    for name, a in (("x", x), ("t", t), ("cond", cond)):
        if not a.is_contiguous():
            raise ValueError(f"{NAME}: {name} must be contiguous (call .contiguous())")


def _key(net: CompactScoreNet, x: Tensor, t: Tensor) -> tuple:
    """What the kernel backends' input checks read."""
    return x.dtype, t.dtype, net.freqs.dtype, net.mlp.layers[0].out_features


def _kernel_accepts(x_dtype: torch.dtype, t_dtype: torch.dtype, freqs_dtype: torch.dtype, width: int):
    """Inputs the fp32-accumulating kernels take beyond validate(); None if accepted."""
    if x_dtype not in KERNEL_DTYPES:
        return TypeError(f"{NAME}: x must be float32/float16/bfloat16 for the kernel backends, got {x_dtype} "
                         f"(float64 runs on backend='torch')")
    if t_dtype not in (torch.float32, x_dtype):
        return TypeError(f"{NAME}: t must be float32 or {x_dtype} for the kernel backends, got {t_dtype}")
    if freqs_dtype not in (torch.float32, x_dtype):
        return TypeError(f"{NAME}: net.freqs must be float32 or {x_dtype} for the kernel backends, got {freqs_dtype}")
    if width > KERNEL_MAX_WIDTH:
        return ValueError(f"{NAME}: net width {width} > {KERNEL_MAX_WIDTH} does not fit the fused kernels' "
                          f"registers; use backend='torch'")
    return None


def validate_packed(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                    bh: Tensor, wo: Tensor, bo: Tensor) -> None:
    """The custom ops' own check (they can be called directly): packed layout of pack_weights."""
    args = {"x": x, "t": t, "cond": cond, "freqs": freqs, "w0": w0, "b0": b0, "wh": wh, "bh": bh, "wo": wo,
            "bo": bo}
    for name, a in args.items():
        if not isinstance(a, Tensor):
            raise TypeError(f"{NAME}: {name} must be a torch.Tensor, got {type(a).__name__}")
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
    for name, shape in shapes.items():
        if tuple(args[name].shape) != shape:
            raise ValueError(f"{NAME}: {name} must be {list(shape)}, got {list(args[name].shape)}")
    if x.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{NAME}: x must be float32/float16/bfloat16 for the kernel backends, got {x.dtype}")
    for name in ("cond", "w0", "b0", "wh", "bh", "wo", "bo"):
        if args[name].dtype != x.dtype:
            raise TypeError(f"{NAME}: {name} must have the dtype of x ({x.dtype}), got {args[name].dtype}")
    for name in ("t", "freqs"):
        if args[name].dtype not in (torch.float32, x.dtype):
            raise TypeError(f"{NAME}: {name} must be float32 or {x.dtype}, got {args[name].dtype}")
    if W > KERNEL_MAX_WIDTH:
        raise ValueError(f"{NAME}: width {W} > {KERNEL_MAX_WIDTH} is not supported by the kernels")
    for name, a in args.items():
        if a.device != x.device:
            raise ValueError(f"{NAME}: {name} is on {a.device} but x is on {x.device}")
        if not a.is_contiguous():
            raise ValueError(f"{NAME}: {name} must be contiguous (call .contiguous())")


def _check_output(x: Tensor, out: Tensor) -> None:
    if tuple(out.shape) != tuple(x.shape) or out.dtype != x.dtype or out.device != x.device or not out.is_contiguous():
        raise ValueError(f"{NAME}: output must be a contiguous {tuple(x.shape)} {x.dtype} tensor on {x.device}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")


# ---------------------------------------------------------------------------------------------
# torch: the specification, the stacked net's own forward.
# ---------------------------------------------------------------------------------------------

def score_compact_torch(net: CompactScoreNet, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
    """net(x, t, cond), with the Fourier features computed in t's dtype (float32 t with 16-bit x
    is allowed) and cast to x's dtype; identical to net(x, t, cond) when t has x's dtype."""
    fourier = sde.fourier_features(t, net.freqs.to(t.dtype)).to(x.dtype)
    return net.forward_embedded(x, fourier, cond)


# ---------------------------------------------------------------------------------------------
# Kernel backends: packed weights, launchers writing into given buffers (tests pass NaN-filled
# ones), custom ops.
# ---------------------------------------------------------------------------------------------

def pack_weights(net: CompactScoreNet) -> tuple[Tensor, ...]:
    """(freqs [F], w0 [m, K0, W], b0 [m, 1, W], wh [m, layers-1, W, W], bh [m, layers-1, W],
    wo [m, W, dx], bo [m, 1, dx]): the effective weights (in_mask applied) the kernels read.
    One multiply (the in_mask) and one stack per call, in the parameters' dtype."""
    layers = net.mlp.layers
    w0 = layers[0].effective_weight().contiguous()
    hidden = layers[1:-1]
    m, W = net.models, layers[0].out_features
    if hidden:
        wh = torch.stack([layer.weight for layer in hidden], dim=1)
        bh = torch.cat([layer.bias for layer in hidden], dim=1)
    else:
        wh = w0.new_empty((m, 0, W, W))
        bh = w0.new_empty((m, 0, W))
    return (net.freqs, w0, layers[0].bias.contiguous(), wh, bh, layers[-1].weight.contiguous(),
            layers[-1].bias.contiguous())


def launch_triton(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                  bh: Tensor, wo: Tensor, bo: Tensor, out: Tensor, tile: tuple[int, int] | None = None) -> None:
    validate_packed(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)
    _check_output(x, out)
    from scoredec.kernels import score_compact as kernel

    if x.device.type == "cuda":
        with torch.cuda.device(x.device):
            kernel.launch(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out, tile=tile)
    else:
        kernel.launch(x, t, cond, freqs, w0, b0, wh, bh, wo, bo, out, tile=tile)


def launch_cuda(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                bh: Tensor, wo: Tensor, bo: Tensor, out: Tensor) -> None:
    validate_packed(x, t, cond, freqs, w0, b0, wh, bh, wo, bo)
    _check_output(x, out)
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
                         _CUDA_DTYPE_CODE[x.dtype], t.dtype == torch.float32, freqs.dtype == torch.float32, stream)


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


def _setup_context(ctx, inputs, output):
    pass


def _backward(ctx, grad):
    raise RuntimeError(f"{NAME}: the triton/cuda backends are forward only (stage 2 evaluates the score "
                       f"under stop-gradient); call it under torch.no_grad(), or use backend='torch' to "
                       f"differentiate")


for _op in (score_compact_triton, score_compact_cuda):
    _op.register_fake(_fake)
    _op.register_autograd(_backward, setup_context=_setup_context)


def _run_triton(net: CompactScoreNet, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
    return score_compact_triton(x, t, cond, *pack_weights(net))


def _run_cuda(net: CompactScoreNet, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
    return score_compact_cuda(x, t, cond, *pack_weights(net))


_triton_available = registry.triton_kernel_available("score_compact", "score_compact_kernel")


def _cuda_available(device: torch.device | None) -> registry.Availability:
    ok, reason = registry.cuda_available(device)
    if ok:
        from scoredec import _C

        if not hasattr(_C, "score_compact"):
            return False, "scoredec._C predates score_compact; rebuild (bash scripts/setup.sh)"
    return ok, reason


registry.register_op(OP, score_compact_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, _cuda_available, _kernel_accepts)


def score_eval_compact(net: CompactScoreNet, x: Tensor, t: Tensor, cond: Tensor, *,
                       backend: str | None = None) -> Tensor:
    """All m stacked compact score models' noise predictions in one fused pass (forward only).

    net: CompactScoreNet of m models; x: [m, B, x_dim]; t: [m, B]; cond: [m, B, cond_dim]; x, cond
    and the net share one dtype (float32/float16/bfloat16; float64 on torch), t is float32 or
    that dtype. Returns eps: [m, B, x_dim] in x's dtype.
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic).
    """
    validate(net, x, t, cond)
    return registry.dispatch(OP, x.device, net, x, t, cond, backend=backend, key=_key(net, x, t))
