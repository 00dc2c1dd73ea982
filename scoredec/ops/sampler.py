"""The fused sequential sampler (issue 5, op 2; DESIGN.md 1.6): ancestral sampling along the
chain rule mu(a | s) = prod_k mu_k(a_k | s, a_<k) with a stack of m compact score models,

    for k in 0 .. m-1:  x_k = solve(eps_k(., . | [obs_k, clip(x_0), ..., clip(x_{k-1})]), x_T[k])
                        out[k] = clip(x_k)

where `solve` is the steps of a coefficient table: per step x' = c_x x + c_e eps(x, t) +
c_2 (eps(u, s1) with u = u_x x + u_e eps(x, t) | z) (sde.Solver.coefficient_table: DDIM, eta = 0
or eta > 0 with explicit step noise, DPM-Solver-1 or -2 on the VP-SDE; the kernels never
evaluate the schedule).

The op takes tensors only: obs, x_T, the coefficient table and the compact net's packed weights
(scoredec.ops.score_compact's layout; the first layer's rows are [x, obs, m-1 prefix slots of
x_dim, Fourier features], slot j < k of model k's prefix holds model j's clipped sample and
slots j >= k are zero). scoredec.behavior.BehaviorModel owns the sequential sampler and calls
this op when a kernel backend is chosen.

Backends:
- torch (sample_sequential_torch): the specification on the same tensors, any float dtype.
- triton (kernels/sample_sequential.py) and cuda (csrc/sample_sequential.cu): one persistent
  launch in which each program/block owns a row block and loops over models and steps, the
  solver update fused into the head, the condition's share of the first layer computed once per
  model. Registered as torch.library custom ops (scoredec::sample_sequential_triton / _cuda)
  with fake implementations. Forward only (sampling runs under no_grad).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec import sde

from . import common, registry
from . import score_compact as sc
from .activations import ACTIVATIONS

OP = "sample_sequential"
NAME = "sample_sequential"

TORCH_DTYPES = common.TORCH_DTYPES
KERNEL_DTYPES = common.KERNEL_DTYPES
KERNEL_MAX_WIDTH = sc.KERNEL_MAX_WIDTH
COEF_COLUMNS = sde.COEF_COLUMNS
_SOLVER_CODE = {"ddim": 0, "dpm1": 1, "dpm2": 2}


# ---------------------------------------------------------------------------------------------
# Validation: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def kernel_key(dtype: torch.dtype, width: int, activation: str = "mish", refusal: str | None = None) -> tuple:
    """What the kernel backends' input checks read; refusal: why the caller's model is not one
    the kernels compute (None: it is), raised as a TypeError when a kernel is requested."""
    return dtype, width, activation, refusal


def _kernel_accepts(dtype: torch.dtype, width: int, activation: str = "mish", refusal: str | None = None):
    if refusal is not None:
        return TypeError(f"{NAME}: {refusal}")
    if activation != "mish":
        return TypeError(f"{NAME}: the fused sampler kernels implement a Mish net, got {activation!r}: use "
                         f"backend='torch'")
    if dtype not in KERNEL_DTYPES:
        return TypeError(f"{NAME}: x_T must be float32/float16/bfloat16 for the kernel backends, got {dtype} "
                         f"(float64 runs on backend='torch')")
    if width > KERNEL_MAX_WIDTH:
        return ValueError(f"{NAME}: net width {width} > {KERNEL_MAX_WIDTH} does not fit the fused kernels; "
                          f"use backend='torch'")
    return None


def select_backend(x_T: Tensor, key: tuple, backend: str | None) -> str:
    """The backend a call runs on (registry.select_name's rules); key: kernel_key(...)."""
    return registry.select_name(OP, x_T.device, key, backend)


def validate(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip: float, solver: str) -> None:
    """Every backend's check of the packed layout (the custom ops can be called directly)."""
    args = {"obs": obs, "x_T": x_T, "coef": coef, "freqs": freqs, "w0": w0, "b0": b0, "wh": wh, "bh": bh,
            "wo": wo, "bo": bo}
    if step_noise is not None:
        args["step_noise"] = step_noise
    common.check_tensors(NAME, args)
    if solver not in _SOLVER_CODE:
        raise ValueError(f"{NAME}: solver must be one of {sde.SOLVERS}, got {solver!r}")
    if not clip > 0:
        raise ValueError(f"{NAME}: clip must be > 0, got {clip!r}")
    if x_T.dim() != 3 or obs.dim() != 3 or w0.dim() != 3 or coef.dim() != 2 or freqs.dim() != 1:
        raise ValueError(f"{NAME}: x_T, obs must be [m, B, *], w0 [m, K0, W], coef [steps, 8], freqs [F]; got "
                         f"x_T {tuple(x_T.shape)}, obs {tuple(obs.shape)}, w0 {tuple(w0.shape)}, "
                         f"coef {tuple(coef.shape)}, freqs {tuple(freqs.shape)}")
    m, B, dx = x_T.shape
    do, W, F, steps = obs.shape[2], w0.shape[2], freqs.shape[0], coef.shape[0]
    nh = wh.shape[1] if wh.dim() == 4 else -1
    if nh < 0 or steps < 1:
        raise ValueError(f"{NAME}: wh must be [m, layers-1, W, W] and coef [steps >= 1, 8]; got wh "
                         f"{tuple(wh.shape)}, coef {tuple(coef.shape)}")
    k0 = dx + do + (m - 1) * dx + 2 * F
    shapes = {"obs": (m, B, do), "coef": (steps, len(COEF_COLUMNS)), "w0": (m, k0, W), "b0": (m, 1, W),
              "wh": (m, nh, W, W), "bh": (m, nh, W), "wo": (m, W, dx), "bo": (m, 1, dx),
              "step_noise": (m, steps, B, dx)}
    common.check_shapes(NAME, args, {name: shape for name, shape in shapes.items() if name in args})
    if x_T.dtype not in TORCH_DTYPES:
        raise TypeError(f"{NAME}: x_T must be float32/float16/bfloat16/float64, got {x_T.dtype}")
    common.check_same_dtype(NAME, args, ("obs", "step_noise", "w0", "b0", "wh", "bh", "wo", "bo"), "x_T")
    for name in ("coef", "freqs"):
        if args[name].dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{NAME}: {name} must be float32, got {args[name].dtype}")
    common.check_device_contiguous(NAME, args, "x_T")


def _validate_kernel(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver) -> None:
    validate(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
    for name, a in (("coef", coef), ("freqs", freqs)):
        if a.dtype != torch.float32:
            raise TypeError(f"{NAME}: {name} must be float32 for the kernel backends, got {a.dtype}")
    if (err := _kernel_accepts(*kernel_key(x_T.dtype, w0.shape[2]))) is not None:
        raise err


# ---------------------------------------------------------------------------------------------
# torch: the specification, on the same tensors.
# ---------------------------------------------------------------------------------------------

def sample_sequential_torch(obs: Tensor, x_T: Tensor, step_noise: Tensor | None, coef: Tensor, freqs: Tensor,
                            w0: Tensor, b0: Tensor, wh: Tensor, bh: Tensor, wo: Tensor, bo: Tensor, clip: float,
                            solver: str, activation: str = "mish") -> Tensor:
    """Model after model, step after step of the coefficient table, the model evaluated by
    score_compact_torch at the table's times in x's dtype. As in the kernels, the sample between
    steps and the update are kept in float32 (float64 for float64 inputs)."""
    m, B, dx = x_T.shape
    rows = coef.tolist()
    state = torch.promote_types(x_T.dtype, torch.float32)
    prefix = x_T.new_zeros(B, (m - 1) * dx)
    out = torch.empty_like(x_T)
    for k in range(m):
        one = slice(k, k + 1)
        weights = (freqs, w0[one], b0[one], wh[one], bh[one], wo[one], bo[one])
        cond = torch.cat([obs[k], prefix], dim=-1)[None]

        def eps(x: Tensor, t: float) -> Tensor:
            x = x.to(x_T.dtype)
            t = torch.full((1, B), t, dtype=x.dtype, device=x.device)
            return sc.score_compact_torch(x, t, cond, *weights, activation).to(state)

        x = x_T[one].to(state)
        for i, (t, s1, u_x, u_e, c_x, c_e, c_2, _) in enumerate(rows):
            e = eps(x, t)
            x_next = c_x * x + c_e * e
            if solver == "dpm2":
                x_next = x_next + c_2 * eps(u_x * x + u_e * e, s1)
            elif step_noise is not None:
                x_next = x_next + c_2 * step_noise[k, i][None].to(state)
            x = x_next
        x = x[0].clamp(-clip, clip).to(x_T.dtype)
        out[k] = x
        if k < m - 1:
            prefix[:, k * dx:(k + 1) * dx] = x
    return out


# ---------------------------------------------------------------------------------------------
# Kernel backends.
# ---------------------------------------------------------------------------------------------

def launch_triton(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip: float, solver: str,
                  tile: tuple[int, int] | None = None) -> None:
    _validate_kernel(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
    common.check_output(NAME, x_T, out)
    from scoredec.kernels import sample_sequential as kernel

    with common.device_guard(x_T.device):
        kernel.launch(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip, solver, tile=tile)


def launch_cuda(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip: float, solver: str) -> None:
    _validate_kernel(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
    common.check_output(NAME, x_T, out)
    if x_T.device.type != "cuda":
        raise ValueError(f"{NAME}: the cuda backend needs CUDA tensors, x_T is on {x_T.device}")
    from scoredec import _C

    m, B, dx = x_T.shape
    if m == 0 or B == 0:
        return
    if wh.shape[1] == 0:  # never read; a valid address instead of an empty tensor's
        wh, bh = w0, b0
    noise_ptr = 0 if step_noise is None else step_noise.data_ptr()
    with torch.cuda.device(x_T.device):
        stream = torch.cuda.current_stream(x_T.device).cuda_stream
        _C.sample_sequential(obs.data_ptr(), x_T.data_ptr(), noise_ptr, coef.data_ptr(), freqs.data_ptr(),
                             w0.data_ptr(), b0.data_ptr(), wh.data_ptr(), bh.data_ptr(), wo.data_ptr(),
                             bo.data_ptr(), out.data_ptr(), m, B, dx, obs.shape[2], freqs.shape[0], w0.shape[2],
                             wh.shape[1], coef.shape[0], _SOLVER_CODE[solver], float(clip),
                             common.CUDA_DTYPE_CODE[x_T.dtype], stream)


@torch.library.custom_op("scoredec::sample_sequential_triton", mutates_args=())
def sample_sequential_triton(obs: Tensor, x_T: Tensor, step_noise: Tensor | None, coef: Tensor, freqs: Tensor,
                             w0: Tensor, b0: Tensor, wh: Tensor, bh: Tensor, wo: Tensor, bo: Tensor, clip: float,
                             solver: str) -> Tensor:
    out = torch.empty_like(x_T)
    launch_triton(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip, solver)
    return out


@torch.library.custom_op("scoredec::sample_sequential_cuda", mutates_args=())
def sample_sequential_cuda(obs: Tensor, x_T: Tensor, step_noise: Tensor | None, coef: Tensor, freqs: Tensor,
                           w0: Tensor, b0: Tensor, wh: Tensor, bh: Tensor, wo: Tensor, bo: Tensor, clip: float,
                           solver: str) -> Tensor:
    out = torch.empty_like(x_T)
    launch_cuda(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip, solver)
    return out


def _fake(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver):
    return torch.empty_like(x_T)


common.register_forward_only(
    (sample_sequential_triton, sample_sequential_cuda), _fake,
    f"{NAME}: the triton/cuda samplers are forward only; sample under torch.no_grad(), or use backend='torch' to "
    f"differentiate")

def _run_triton(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver, activation):
    return sample_sequential_triton(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)


def _run_cuda(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver, activation):
    return sample_sequential_cuda(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)


_triton_available = registry.triton_kernel_available("sample_sequential", "sample_sequential_kernel")
_cuda_available = common.cuda_extension_available("sample_sequential", "sample_sequential")


registry.register_op(OP, sample_sequential_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, _cuda_available, _kernel_accepts)


def sample_sequential(obs: Tensor, x_T: Tensor, coef: Tensor, freqs: Tensor, w0: Tensor, b0: Tensor, wh: Tensor,
                      bh: Tensor, wo: Tensor, bo: Tensor, *, step_noise: Tensor | None = None,
                      clip: float | None = 1.0, solver: str = "dpm2", activation: str = "mish",
                      refusal: str | None = None, backend: str | None = None) -> Tensor:
    """Sequential ancestral sampling with a stack of m compact score models (forward only).

    obs: [m, B, obs_w], model k's own part of its condition; x_T: [m, B, x_dim] initial noise;
    coef: [steps, 8] (sde.Solver.coefficient_table, float32 for the kernels; Solver.table caches
    it per device) of `solver`'s steps; freqs, w0 .. bo: the packed compact weights
    (CompactScoreNet.packed_weights; w0's rows [x, obs, m-1 prefix slots, Fourier]);
    step_noise: [m, steps, B, x_dim], only for ddim with eta > 0. obs, x_T, step_noise and the
    weights share one dtype (float32/float16/bfloat16; float64 on torch). Returns the samples
    [m, B, x_dim] clipped to [-clip, clip] (None: not clipped, also in the conditions).
    refusal: why the caller's model is not one the kernels compute (see kernel_key).
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic).
    """
    clip = float("inf") if clip is None else float(clip)
    validate(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
    if activation not in ACTIVATIONS:
        raise ValueError(f"{NAME}: activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
    key = kernel_key(x_T.dtype, w0.shape[2], activation, refusal)
    return registry.dispatch(OP, x_T.device, obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver,
                             activation, backend=backend, key=key)
