"""What the fused score ops (score_compact, score_resnet, sampler) share word for word: input
checks (the error names the argument; the op tests match these messages), the forward-only
custom-op registration, the launchers' device guard, the cuda extension's availability, and
the cache of packed weights (cached_pack).

Every check takes `name`, the public function's name, which starts each message.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Callable

import torch
from torch import Tensor

from . import registry

TORCH_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# Dtype codes of csrc/noise_embed.h (scoredec::DType), shared by every .cu file.
CUDA_DTYPE_CODE = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
# Why the score ops' kernel backends refuse a backward (after "<name>: ").
SCORE_FORWARD_ONLY = ("the triton/cuda backends are forward only (stage 2 evaluates the score under "
                      "stop-gradient); call it under torch.no_grad(), or use backend='torch' to differentiate")


# ---------------------------------------------------------------------------------------------
# Public-call checks of the score evaluation ops: net(x [m, B, x_dim], t [m, B], cond [m, B, cond_dim]).
# ---------------------------------------------------------------------------------------------

def validate_score_inputs(name: str, x: Tensor, t: Tensor, cond: Tensor, models: int, x_dim: int, cond_dim: int,
                          weight_dtype: torch.dtype, weight_device: torch.device) -> None:
    """Shapes, dtypes, devices and contiguity of a score net call net(x, t, cond) on a stack of
    `models` models of widths x_dim, cond_dim whose parameters are weight_dtype on weight_device."""
    for arg, a in (("x", x), ("t", t), ("cond", cond)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(a).__name__}")
    if x.dtype not in TORCH_DTYPES:
        raise TypeError(f"{name}: x must be float32/float16/bfloat16/float64, got {x.dtype}")
    if cond.dtype != x.dtype:
        raise TypeError(f"{name}: cond must have the dtype of x ({x.dtype}), got {cond.dtype}")
    if t.dtype not in (torch.float32, x.dtype):
        raise TypeError(f"{name}: t must be float32 or the dtype of x ({x.dtype}), got {t.dtype}")
    if weight_dtype != x.dtype:
        raise TypeError(f"{name}: net parameters are {weight_dtype} but x is {x.dtype}; "
                        f"cast the net (net.to({x.dtype})) or the inputs")
    m, dx, dc = models, x_dim, cond_dim
    if x.dim() != 3 or x.shape[0] != m or x.shape[2] != dx:
        raise ValueError(f"{name}: x must be [m, B, x_dim] = [{m}, B, {dx}], got shape {tuple(x.shape)}")
    B = x.shape[1]
    if tuple(t.shape) != (m, B):
        raise ValueError(f"{name}: t must be [m, B] = [{m}, {B}], got shape {tuple(t.shape)}")
    if tuple(cond.shape) != (m, B, dc):
        raise ValueError(f"{name}: cond must be [m, B, cond_dim] = [{m}, {B}, {dc}], got shape {tuple(cond.shape)}")
    for arg, a in (("t", t), ("cond", cond)):
        if a.device != x.device:
            raise ValueError(f"{name}: {arg} is on {a.device} but x is on {x.device}")
    if weight_device != x.device:
        raise ValueError(f"{name}: net is on {weight_device} but x is on {x.device}")
    for arg, a in (("x", x), ("t", t), ("cond", cond)):
        if not a.is_contiguous():
            raise ValueError(f"{name}: {arg} must be contiguous (call .contiguous())")


def score_kernel_dtype_error(name: str, x_dtype: torch.dtype, t_dtype: torch.dtype,
                             freqs_dtype: torch.dtype) -> Exception | None:
    """The dtypes the fp32-accumulating score kernels take beyond the torch reference's; None if
    accepted, else the error to raise."""
    if x_dtype not in KERNEL_DTYPES:
        return TypeError(f"{name}: x must be float32/float16/bfloat16 for the kernel backends, got {x_dtype} "
                         f"(float64 runs on backend='torch')")
    if t_dtype not in (torch.float32, x_dtype):
        return TypeError(f"{name}: t must be float32 or {x_dtype} for the kernel backends, got {t_dtype}")
    if freqs_dtype not in (torch.float32, x_dtype):
        return TypeError(f"{name}: freqs must be float32 or {x_dtype} for the kernel backends, got {freqs_dtype}")
    return None


# ---------------------------------------------------------------------------------------------
# Checks of the custom ops' packed arguments (they can be called directly).
# ---------------------------------------------------------------------------------------------

def check_tensors(name: str, args: dict) -> None:
    for arg, a in args.items():
        if not isinstance(a, Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(a).__name__}")


def check_shapes(name: str, args: dict, shapes: dict) -> None:
    """args[arg].shape == shapes[arg] for every arg of shapes, in the order of shapes."""
    for arg, shape in shapes.items():
        if tuple(args[arg].shape) != shape:
            raise ValueError(f"{name}: {arg} must be {list(shape)}, got {list(args[arg].shape)}")


def check_same_dtype(name: str, args: dict, names, ref: str) -> None:
    """Each of `names` present in args has the dtype of args[ref]."""
    dtype = args[ref].dtype
    for arg in names:
        if arg in args and args[arg].dtype != dtype:
            raise TypeError(f"{name}: {arg} must have the dtype of {ref} ({dtype}), got {args[arg].dtype}")


def check_device_contiguous(name: str, args: dict, ref: str) -> None:
    """Every tensor of args is on args[ref]'s device and contiguous."""
    device = args[ref].device
    for arg, a in args.items():
        if a.device != device:
            raise ValueError(f"{name}: {arg} is on {a.device} but {ref} is on {device}")
        if not a.is_contiguous():
            raise ValueError(f"{name}: {arg} must be contiguous (call .contiguous())")


def check_output(name: str, like: Tensor, out: Tensor) -> None:
    """The launchers' output buffer: contiguous, with like's shape, dtype and device."""
    if (tuple(out.shape) != tuple(like.shape) or out.dtype != like.dtype or out.device != like.device
            or not out.is_contiguous()):
        raise ValueError(f"{name}: output must be a contiguous {tuple(like.shape)} {like.dtype} tensor on "
                         f"{like.device}, got {tuple(out.shape)} {out.dtype} on {out.device}")


# ---------------------------------------------------------------------------------------------
# Launching and registration.
# ---------------------------------------------------------------------------------------------

def device_guard(device: torch.device):
    """torch.cuda.device(device) for a CUDA device (Triton launches on the current device),
    nothing otherwise."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def register_forward_only(ops, fake, message: str) -> None:
    """Give each custom op of `ops` its fake (shape) implementation and a backward that raises
    RuntimeError(message) instead of returning a wrong (zero) gradient."""
    def backward(ctx, *grads):
        raise RuntimeError(message)

    def setup_context(ctx, inputs, output):
        pass

    for op in ops:
        op.register_fake(fake)
        op.register_autograd(backward, setup_context=setup_context)


def cuda_extension_available(symbol: str, op: str) -> registry.AvailabilityCheck:
    """registry.cuda_available, and scoredec._C built with `symbol` (op's entry point)."""
    def check(device: torch.device | None) -> registry.Availability:
        ok, reason = registry.cuda_available(device)
        if ok:
            from scoredec import _C

            if not hasattr(_C, symbol):
                return False, f"scoredec._C predates {op}; rebuild (bash scripts/setup.sh)"
        return ok, reason

    return check


# ---------------------------------------------------------------------------------------------
# Packed weights, computed once per parameter state.
# ---------------------------------------------------------------------------------------------

# owner -> (source weakrefs, key, value); weak so a dropped net frees its entry.
_PACK_CACHE: "weakref.WeakKeyDictionary[object, tuple]" = weakref.WeakKeyDictionary()


def cached_pack(owner, sources: tuple[Tensor, ...], compute: Callable[[], object]):
    """compute() (packed weights derived from `sources`), recomputed only when a source tensor
    was replaced or written in place: stage 2 evaluates a frozen net every step, and packing it
    anew each time is a copy of every weight per step.

    Not cached while torch.compile traces (the packing belongs in the graph) or while autograd
    records through a source that requires grad (so a backward through a kernel op still reaches
    the op and raises). The key is each source's identity (weak reference: a new parameter at a
    reused address never matches), address and version counter (bumped by every in-place write,
    optimizer steps and load_state_dict included)."""
    if torch.compiler.is_compiling() or (
            torch.is_grad_enabled() and any(s.requires_grad for s in sources)):
        return compute()
    key = tuple((s.data_ptr(), s._version) for s in sources)
    hit = _PACK_CACHE.get(owner)
    if (hit is not None and len(hit[0]) == len(sources) and hit[1] == key
            and all(ref() is s for ref, s in zip(hit[0], sources))):
        return hit[2]
    with torch.no_grad():
        value = compute()
    _PACK_CACHE[owner] = (tuple(weakref.ref(s) for s in sources), key, value)
    return value
