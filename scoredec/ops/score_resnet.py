"""Sequential score evaluation for the resnet score net (issue 5, op 1; DESIGN.md 1.3, 1.5 step 2):

    eps_k(x_t^k, t^k | c_k)  for every model k of a ResNetScoreNet stack, in one call.

Design. The net's weights never fit on chip (two H x 4H matrices per block: 2 MB per model in
bf16 at H = 512), so unlike the compact op this is not one persistent kernel but a short
sequence of grouped GEMM launches over the grid (row blocks x column blocks x models), one per
layer that matters, with everything else fused into their prologues and epilogues:

    stem      Fourier features -> time MLP (32 -> 64 -> 64), input embedding [x, c] -> 32, the
              concatenation, and the trunk GEMM 96 -> H           (one launch; h kept in fp32)
    up_b      LayerNorm (row statistics computed in the prologue) -> W1 -> +b1 -> ReLU
    down_b    W2 -> +b2 -> + h  (residual in the epilogue, h updated in place)
    head      ReLU (prologue) -> W_head -> +b_head
                                            2 + 2 x blocks launches (6 at B = 2), any H and B.

All m models of the stack run in each launch (grid axis 2), so there is no Python loop over
agents. Prefix widths differ per agent (c_k = [o_k, a_<k]): the stack pads the conditions to
one width and zeroes the embed weight rows a model lacks (StackedLinear.in_mask); the kernels
read the effective (masked) embed weight, so padded inputs meet zeros, as in the torch forward.
Dropout is the identity (eval mode): the kernel backends refuse a net in training mode with
active dropout (the automatic choice then takes torch).

The op takes tensors only: x, t, cond and the packed weights (PACKED below;
scoredec.nets.ResNetScoreNet packs its own and calls this op from its forward). Backends: torch
(score_resnet_torch, the specification on the packed weights, float64-capable), triton
(kernels/score_resnet.py) and cuda (csrc/score_resnet.cu) implement the sequence above; both
are registered as torch.library custom ops (scoredec::score_resnet_triton,
scoredec::score_resnet_cuda) taking the packed weights, so torch.compile and
CUDA graphs see them. The cuda GEMMs are plain tiles (WMMA tensor-core fragments for 16-bit,
SIMT FMA for fp32, no asynchronous copies); the triton kernels (wgmma / mma.sync for 16-bit,
pipelined loads, tiles chosen per batch) are the ones sized for speed. Forward only: the op
sits under stop-gradient in stage 2; the kernel ops raise on backward instead of returning a
wrong gradient.

Weight packing costs nothing per call: every packed tensor is a parameter itself (the blocks'
weights go to the kernels as lists, one launch per layer, so nothing is stacked or copied, unlike
score_compact's per-call torch.stack of its hidden weights) except the masked embed weight
(m x (dx + dc) x 32), which is cached per net, keyed on the identity, storage address and
version counter of the parameter and of the mask (an optimizer step bumps the version, so a
trained net is repacked exactly when its embed weight changed; under torch.compile, or while
autograd records, the multiply is done in place of the cache).

Dtypes: x, cond and the net's parameters share one dtype: float32, float16 or bfloat16 on the
kernel backends, also float64 on torch. t and freqs are float32 or x's dtype. The kernels
accumulate in float32, keep the residual stream in float32, and round activations to the
element type only as GEMM operands.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec import sde

from . import common, registry

OP = "score_resnet"
NAME = "score_eval_resnet"

TORCH_DTYPES = common.TORCH_DTYPES
KERNEL_DTYPES = common.KERNEL_DTYPES
# csrc/score_resnet.h ResnetGemmRole.
_ROLE_UP, _ROLE_DOWN, _ROLE_HEAD = 0, 1, 2


# Packed layout (what ResNetScoreNet.packed_weights returns, in the weights' dtype):
#   freqs [F], wt1 [m, 2F, 64], bt1 [m, 1, 64], wt2 [m, 64, 64], bt2 [m, 1, 64],
#   we [m, dx + dc, 32] (input mask applied), be [m, 1, 32], wtr [m, 96, H], btr [m, 1, H],
#   ln_w, ln_b: blocks x [m, 1, H], w1: blocks x [m, H, 4H], b1: blocks x [m, 1, 4H],
#   w2: blocks x [m, 4H, H], b2: blocks x [m, 1, H], wh [m, H, dx], bh [m, 1, dx].


# ---------------------------------------------------------------------------------------------
# Validation: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def kernel_key(x: Tensor, t: Tensor, freqs: Tensor, dropout_active: bool = False) -> tuple:
    """What the kernel backends' input checks read (dropout_active: the caller is a network
    training with dropout, which the kernels do not compute)."""
    return x.dtype, t.dtype, freqs.dtype, bool(dropout_active)


def _kernel_accepts(x_dtype: torch.dtype, t_dtype: torch.dtype, freqs_dtype: torch.dtype, dropout_active: bool):
    """Inputs the fp32-accumulating kernels take beyond validate(); None if accepted."""
    if (err := common.score_kernel_dtype_error(NAME, x_dtype, t_dtype, freqs_dtype)) is not None:
        return err
    if dropout_active:
        return ValueError(f"{NAME}: net is in training mode with dropout; the kernel backends compute the eval "
                          f"forward (call net.eval(), or use backend='torch')")
    return None


def select_backend(x: Tensor, t: Tensor, freqs: Tensor, dropout_active: bool, backend: str | None) -> str:
    """The backend a call with these inputs runs on (registry.select_name's rules)."""
    return registry.select_name(OP, x.device, kernel_key(x, t, freqs, dropout_active), backend)


_PACKED_NAMES = ("freqs", "wt1", "bt1", "wt2", "bt2", "we", "be", "wtr", "btr")
_BLOCK_NAMES = ("ln_w", "ln_b", "w1", "b1", "w2", "b2")


def validate(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, wt1: Tensor, bt1: Tensor, wt2: Tensor,
             bt2: Tensor, we: Tensor, be: Tensor, wtr: Tensor, btr: Tensor, ln_w: list, ln_b: list,
             w1: list, b1: list, w2: list, b2: list, wh: Tensor, bh: Tensor) -> None:
    """Every backend's check of the packed layout (the custom ops can be called directly)."""
    args = dict(zip(("x", "t", "cond") + _PACKED_NAMES, (x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr)))
    args.update(wh=wh, bh=bh)
    lists = dict(zip(_BLOCK_NAMES, (ln_w, ln_b, w1, b1, w2, b2)))
    common.check_tensors(NAME, args)
    nb = len(w1)
    for name, lst in lists.items():
        if not isinstance(lst, (list, tuple)) or len(lst) != nb or not all(isinstance(a, Tensor) for a in lst):
            raise TypeError(f"{NAME}: {name} must be a list of {nb} tensors (one per residual block, as w1)")
    if x.dim() != 3 or cond.dim() != 3 or wtr.dim() != 3 or wt2.dim() != 3 or we.dim() != 3 or freqs.dim() != 1:
        raise ValueError(f"{NAME}: x, cond must be [m, B, *], wt2, we, wtr [m, in, out], freqs [F]; got x "
                         f"{tuple(x.shape)}, cond {tuple(cond.shape)}, wt2 {tuple(wt2.shape)}, we {tuple(we.shape)}, "
                         f"wtr {tuple(wtr.shape)}, freqs {tuple(freqs.shape)}")
    m, B, dx = x.shape
    dc, F, T, E, H = cond.shape[2], freqs.shape[0], wt2.shape[2], we.shape[2], wtr.shape[2]
    Hx = w1[0].shape[-1] if nb and w1[0].dim() == 3 else 4 * H
    shapes = {"t": (m, B), "cond": (m, B, dc), "wt1": (m, 2 * F, T), "bt1": (m, 1, T), "wt2": (m, T, T),
              "bt2": (m, 1, T), "we": (m, dx + dc, E), "be": (m, 1, E), "wtr": (m, T + E, H), "btr": (m, 1, H),
              "wh": (m, H, dx), "bh": (m, 1, dx)}
    common.check_shapes(NAME, args, shapes)
    block_shapes = {"ln_w": (m, 1, H), "ln_b": (m, 1, H), "w1": (m, H, Hx), "b1": (m, 1, Hx), "w2": (m, Hx, H),
                    "b2": (m, 1, H)}
    for name, shape in block_shapes.items():
        for i, a in enumerate(lists[name]):
            if tuple(a.shape) != shape:
                raise ValueError(f"{NAME}: {name}[{i}] must be {list(shape)}, got {list(a.shape)}")
    for name, n in (("wt2", T), ("we", E)):
        if n < 16 or n & (n - 1):
            raise ValueError(f"{NAME}: {name}'s output width {n} must be a power of two >= 16 for the kernels")
    if F < 1:
        raise ValueError(f"{NAME}: freqs must not be empty")
    if H * Hx >= 2 ** 31:
        # The Triton kernels index within one model's weight matrix with 32-bit offsets.
        raise ValueError(f"{NAME}: a {H} x {Hx} block weight has 2^31 or more elements per model; "
                         f"use backend='torch'")
    if x.dtype not in TORCH_DTYPES:
        raise TypeError(f"{NAME}: x must be float32/float16/bfloat16/float64, got {x.dtype}")
    tensors = {**args, **{f"{name}[{i}]": a for name, lst in lists.items() for i, a in enumerate(lst)}}
    common.check_same_dtype(NAME, tensors, [name for name in tensors if name not in ("x", "t", "freqs")], "x")
    for name in ("t", "freqs"):
        if args[name].dtype not in (torch.float32, x.dtype):
            raise TypeError(f"{NAME}: {name} must be float32 or {x.dtype}, got {args[name].dtype}")
    common.check_device_contiguous(NAME, tensors, "x")


def _validate_kernel(*args) -> None:
    validate(*args)
    x, t, freqs = args[0], args[1], args[3]
    if (err := _kernel_accepts(*kernel_key(x, t, freqs))) is not None:
        raise err


# ---------------------------------------------------------------------------------------------
# torch: the specification, on the packed weights.
# ---------------------------------------------------------------------------------------------

def score_resnet_torch(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, wt1: Tensor, bt1: Tensor, wt2: Tensor,
                       bt2: Tensor, we: Tensor, be: Tensor, wtr: Tensor, btr: Tensor, ln_w: list, ln_b: list,
                       w1: list, b1: list, w2: list, b2: list, wh: Tensor, bh: Tensor,
                       ln_eps: float = 1e-5) -> Tensor:
    """The eval forward of DESIGN.md 1.3 per model, the Fourier features in t's dtype cast to x's."""
    relu = torch.nn.functional.relu
    fourier = sde.fourier_features(t, freqs.to(t.dtype)).to(x.dtype)
    temb = torch.baddbmm(bt2, relu(torch.baddbmm(bt1, fourier, wt1)), wt2)
    h = torch.baddbmm(be, torch.cat([x, cond], dim=-1), we)
    h = torch.baddbmm(btr, torch.cat([temb, h], dim=-1), wtr)
    for i in range(len(w1)):
        y = torch.nn.functional.layer_norm(h, h.shape[-1:], eps=ln_eps) * ln_w[i] + ln_b[i]
        h = h + torch.baddbmm(b2[i], relu(torch.baddbmm(b1[i], y, w1[i])), w2[i])
    return torch.baddbmm(bh, relu(h), wh)


# ---------------------------------------------------------------------------------------------
# Kernel backends: launchers writing into given buffers (tests pass NaN-filled ones), custom ops.
# ---------------------------------------------------------------------------------------------

def launch_triton(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh,
                  out: Tensor, ln_eps: float = 1e-5, tiles: dict | None = None) -> None:
    _validate_kernel(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh)
    common.check_output(NAME, x, out)
    from scoredec.kernels import score_resnet as kernel

    args = (x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh, out)
    with common.device_guard(x.device):
        kernel.launch(*args, ln_eps=ln_eps, tiles=tiles)


def launch_cuda(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh,
                out: Tensor, ln_eps: float = 1e-5) -> None:
    _validate_kernel(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh)
    common.check_output(NAME, x, out)
    if x.device.type != "cuda":
        raise ValueError(f"{NAME}: the cuda backend needs CUDA tensors, x is on {x.device}")
    from scoredec import _C

    m, B, dx = x.shape
    if m == 0 or B == 0:
        return
    H = wtr.shape[2]
    nb = len(w1)
    Hx = w1[0].shape[2] if nb else 4 * H
    h = torch.empty((m, B, H), dtype=torch.float32, device=x.device)
    u = torch.empty((m, B, Hx), dtype=x.dtype, device=x.device) if nb else h
    code = common.CUDA_DTYPE_CODE[x.dtype]
    with torch.cuda.device(x.device):
        stream = torch.cuda.current_stream(x.device).cuda_stream
        _C.score_resnet_stem(x.data_ptr(), t.data_ptr(), cond.data_ptr(), freqs.data_ptr(), wt1.data_ptr(),
                             bt1.data_ptr(), wt2.data_ptr(), bt2.data_ptr(), we.data_ptr(), be.data_ptr(),
                             wtr.data_ptr(), btr.data_ptr(), h.data_ptr(), m, B, dx, cond.shape[2], freqs.shape[0],
                             wt2.shape[2], we.shape[2], H, code, t.dtype == torch.float32,
                             freqs.dtype == torch.float32, stream)

        def gemm(a, w, bias, gamma, beta, c, role):
            _C.score_resnet_gemm(a.data_ptr(), w.data_ptr(), bias.data_ptr(), gamma.data_ptr(), beta.data_ptr(),
                                 c.data_ptr(), m, B, w.shape[1], w.shape[2], ln_eps, role, code, stream)

        # Roles of csrc/score_resnet.h ResnetGemmRole; gamma/beta are read by kUp only.
        for i in range(nb):
            gemm(h, w1[i], b1[i], ln_w[i], ln_b[i], u, _ROLE_UP)
            gemm(u, w2[i], b2[i], b2[i], b2[i], h, _ROLE_DOWN)
        gemm(h, wh, bh, bh, bh, out, _ROLE_HEAD)


@torch.library.custom_op("scoredec::score_resnet_triton", mutates_args=())
def score_resnet_triton(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, wt1: Tensor, bt1: Tensor, wt2: Tensor,
                        bt2: Tensor, we: Tensor, be: Tensor, wtr: Tensor, btr: Tensor, ln_w: list[Tensor],
                        ln_b: list[Tensor], w1: list[Tensor], b1: list[Tensor], w2: list[Tensor], b2: list[Tensor],
                        wh: Tensor, bh: Tensor, ln_eps: float) -> Tensor:
    out = torch.empty_like(x)
    launch_triton(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh, out,
                  ln_eps=ln_eps)
    return out


@torch.library.custom_op("scoredec::score_resnet_cuda", mutates_args=())
def score_resnet_cuda(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, wt1: Tensor, bt1: Tensor, wt2: Tensor,
                      bt2: Tensor, we: Tensor, be: Tensor, wtr: Tensor, btr: Tensor, ln_w: list[Tensor],
                      ln_b: list[Tensor], w1: list[Tensor], b1: list[Tensor], w2: list[Tensor], b2: list[Tensor],
                      wh: Tensor, bh: Tensor, ln_eps: float) -> Tensor:
    out = torch.empty_like(x)
    launch_cuda(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh, out,
                ln_eps=ln_eps)
    return out


def _fake(x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh, ln_eps):
    return torch.empty_like(x)


common.register_forward_only((score_resnet_triton, score_resnet_cuda), _fake, f"{NAME}: {common.SCORE_FORWARD_ONLY}")


def _run_triton(*args):
    return score_resnet_triton(*args)


def _run_cuda(*args):
    return score_resnet_cuda(*args)


_triton_available = registry.triton_kernel_available("score_resnet", "resnet_gemm_kernel")
_cuda_available = common.cuda_extension_available("score_resnet_gemm", "score_resnet")


registry.register_op(OP, score_resnet_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, _cuda_available, _kernel_accepts)


def score_eval_resnet(x: Tensor, t: Tensor, cond: Tensor, freqs: Tensor, wt1: Tensor, bt1: Tensor, wt2: Tensor,
                      bt2: Tensor, we: Tensor, be: Tensor, wtr: Tensor, btr: Tensor, ln_w: list, ln_b: list,
                      w1: list, b1: list, w2: list, b2: list, wh: Tensor, bh: Tensor, *, ln_eps: float = 1e-5,
                      backend: str | None = None) -> Tensor:
    """All m stacked resnet score models' outputs (the eval forward) in one fused pass (forward
    only on the kernels).

    x: [m, B, x_dim]; t: [m, B]; cond: [m, B, cond_dim]; the packed weights (the layout above, as
    ResNetScoreNet.packed_weights returns them); x, cond and the weights share one dtype
    (float32/float16/bfloat16; float64 on torch), t and freqs are float32 or that dtype.
    Returns [m, B, x_dim] in x's dtype. ln_eps: the LayerNorms' epsilon.
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic).
    """
    args = (x, t, cond, freqs, wt1, bt1, wt2, bt2, we, be, wtr, btr, ln_w, ln_b, w1, b1, w2, b2, wh, bh)
    validate(*args)
    return registry.dispatch(OP, x.device, *args, float(ln_eps), backend=backend, key=kernel_key(x, t, freqs))
