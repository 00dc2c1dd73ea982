"""The fused sequential sampler (issue 5, op 2; DESIGN.md 1.6): ancestral sampling along the
chain rule mu(a | s) = prod_k mu_k(a_k | s, a_<k) with a stack of m score models,

    for k in 0 .. m-1:  x_k = solve(eps_k(., . | [obs_k, clip(x_0), ..., clip(x_{k-1})]), x_T[k])
                        out[k] = clip(x_k)

where `solve` is T steps of DDIM (eta = 0, or eta > 0 with explicit step noise), DPM-Solver-1 or
DPM-Solver-2 on the VP-SDE from t = 1 to T_MIN (scoredec/sde.py, scoredec/sampling.py).

The condition of model k is the prefix layout of scoredec/layout.py: cond_dim = obs_w +
(m-1) x_dim, slot j < k of the prefix holds model j's clipped sample and slots j >= k are zero
(the stack's in_mask zeroes their first-layer rows, and those of padded action columns).

Backends:
- torch: the specification, exactly BehaviorModel.sample's loop (sampling.integrate per model,
  the stacked net sliced to one model); any ScoreNet (compact or resnet); float64 allowed.
  On CUDA tensors it can run as one captured CUDA graph of the whole T x m loop (graph=None or
  True; cached per net, shapes, dtype, solver and steps; scoredec/sampling.py captured).
- triton (kernels/sample_sequential.py) and cuda (csrc/sample_sequential.cu): the compact net
  only, one persistent launch in which each program/block owns a row block and loops over
  models and steps, the solver update fused into the head, the condition's share of the first
  layer computed once per model. Registered as torch.library custom ops
  (scoredec::sample_sequential_triton / _cuda) with fake implementations.

Coefficients: coefficient_table derives each step's linear update from sde.py's step functions
(in float64, on the host) and the kernels read it; they never evaluate the schedule.
Forward only (sampling runs under no_grad).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoredec import sde
from scoredec.nets import CompactScoreNet, ScoreNet

from . import common, registry
from . import score_compact as sc

OP = "sample_sequential"
NAME = "sample_sequential"

TORCH_DTYPES = common.TORCH_DTYPES
KERNEL_DTYPES = common.KERNEL_DTYPES
KERNEL_MAX_WIDTH = sc.KERNEL_MAX_WIDTH
SPACINGS = ("logSNR", "time_uniform")
# Columns of a coefficient-table row: the evaluation time t, the dpm2 midpoint time s1 and its
# update u = u_x x + u_e eps, and the step x' = c_x x + c_e eps + c_2 (eps(u, s1) | z).
COEF_COLUMNS = ("t", "s1", "u_x", "u_e", "c_x", "c_e", "c_2", "pad")
_SOLVER_CODE = {"ddim": 0, "dpm1": 1, "dpm2": 2}


# ---------------------------------------------------------------------------------------------
# The host-side coefficient table.
# ---------------------------------------------------------------------------------------------

def coefficient_table(steps: int, solver: str, spacing: str = "logSNR", eta: float = 0.0,
                      vp: sde.VPSDE = sde.VPSDE()) -> Tensor:
    """[steps, 8] float64: per step the columns COEF_COLUMNS. Every solver step of sde.py is
    linear in (x, eps, eps_2 | noise), so its coefficients are read off by applying the step
    function itself to unit vectors: the schedule is never re-derived here."""
    grid = sde.time_grid(steps, vp, spacing=spacing)
    unit = torch.eye(3, dtype=torch.float64)  # columns: x, eps, third input
    x, e, third = unit[0], unit[1], unit[2]
    rows = []
    for i in range(steps):
        t, s = float(grid[i]), float(grid[i + 1])
        s1, u = 0.0, torch.zeros(3, dtype=torch.float64)
        if solver == "ddim":
            step = sde.ddim_step(e, x, t, s, vp, eta=eta, noise=third if eta > 0 else None)
        elif solver == "dpm1":
            step = sde.dpm_solver_1_step(e, x, t, s, vp)
        elif solver == "dpm2":
            u, s1 = sde.dpm_solver_2_midpoint(x, e, t, s, vp)
            step = sde.dpm_solver_2_step(x, e, third, t, s, vp)
        else:
            raise ValueError(f"{NAME}: solver must be one of {sde.SOLVERS}, got {solver!r}")
        rows.append([t, s1, float(u[0]), float(u[1]), float(step[0]), float(step[1]), float(step[2]), 0.0])
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Validation: the error names the offending argument.
# ---------------------------------------------------------------------------------------------

def validate(net: ScoreNet, obs: Tensor, x_T: Tensor, steps: int, solver: str, spacing: str, eta: float,
             step_noise: Tensor | None, clip: float | None) -> None:
    if not isinstance(net, ScoreNet):
        raise TypeError(f"{NAME}: net must be a scoredec.nets score net (CompactScoreNet or ResNetScoreNet), "
                        f"got {type(net).__name__}")
    for name, a in (("obs", obs), ("x_T", x_T)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{NAME}: {name} must be a torch.Tensor, got {type(a).__name__}")
    if step_noise is not None and not isinstance(step_noise, Tensor):
        raise TypeError(f"{NAME}: step_noise must be a torch.Tensor or None, got {type(step_noise).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{NAME}: steps must be an int >= 1, got {steps!r}")
    if solver not in sde.SOLVERS:
        raise ValueError(f"{NAME}: solver must be one of {sde.SOLVERS}, got {solver!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"{NAME}: spacing must be one of {SPACINGS}, got {spacing!r}")
    if not eta >= 0.0:
        raise ValueError(f"{NAME}: eta must be >= 0, got {eta!r}")
    if eta > 0 and solver != "ddim":
        raise ValueError(f"{NAME}: eta > 0 is stochastic DDIM; solver {solver!r} takes eta = 0")
    if clip is not None and not clip > 0:
        raise ValueError(f"{NAME}: clip must be > 0 or None, got {clip!r}")
    if x_T.dtype not in TORCH_DTYPES:
        raise TypeError(f"{NAME}: x_T must be float32/float16/bfloat16/float64, got {x_T.dtype}")
    if obs.dtype != x_T.dtype:
        raise TypeError(f"{NAME}: obs must have the dtype of x_T ({x_T.dtype}), got {obs.dtype}")
    w_dtype = next(net.parameters()).dtype
    if w_dtype != x_T.dtype:
        raise TypeError(f"{NAME}: net parameters are {w_dtype} but x_T is {x_T.dtype}; cast the net "
                        f"(net.to({x_T.dtype})) or the inputs")
    m, dx, dc = net.models, net.x_dim, net.cond_dim
    obs_w = dc - (m - 1) * dx
    if obs_w < 0:
        raise ValueError(f"{NAME}: net.cond_dim {dc} is narrower than the prefix of {m - 1} earlier samples of "
                         f"width {dx}: not a sequential stack")
    if x_T.dim() != 3 or x_T.shape[0] != m or x_T.shape[2] != dx:
        raise ValueError(f"{NAME}: x_T must be [m, B, x_dim] = [{m}, B, {dx}], got shape {tuple(x_T.shape)}")
    B = x_T.shape[1]
    if tuple(obs.shape) != (m, B, obs_w):
        raise ValueError(f"{NAME}: obs must be [m, B, cond_dim - (m-1) x_dim] = [{m}, {B}, {obs_w}], "
                         f"got shape {tuple(obs.shape)}")
    if eta > 0:
        if step_noise is None:
            raise ValueError(f"{NAME}: step_noise [m, steps, B, x_dim] is required for ddim with eta > 0")
    elif step_noise is not None:
        raise ValueError(f"{NAME}: step_noise is only used by ddim with eta > 0 (solver={solver!r}, eta={eta})")
    if step_noise is not None:
        if tuple(step_noise.shape) != (m, steps, B, dx):
            raise ValueError(f"{NAME}: step_noise must be [m, steps, B, x_dim] = [{m}, {steps}, {B}, {dx}], "
                             f"got shape {tuple(step_noise.shape)}")
        if step_noise.dtype != x_T.dtype:
            raise TypeError(f"{NAME}: step_noise must have the dtype of x_T ({x_T.dtype}), got {step_noise.dtype}")
    for name, a in (("obs", obs), ("step_noise", step_noise)):
        if a is not None and a.device != x_T.device:
            raise ValueError(f"{NAME}: {name} is on {a.device} but x_T is on {x_T.device}")
    if net.freqs.device != x_T.device:
        raise ValueError(f"{NAME}: net is on {net.freqs.device} but x_T is on {x_T.device}")
    for name, a in (("obs", obs), ("x_T", x_T), ("step_noise", step_noise)):
        if a is not None and not a.is_contiguous():
            raise ValueError(f"{NAME}: {name} must be contiguous (call .contiguous())")


def _key(net: ScoreNet, x_T: Tensor) -> tuple:
    compact = isinstance(net, CompactScoreNet)
    width = net.mlp.layers[0].out_features if compact else -1
    activation = net.mlp.activation_name if compact else "relu"
    return type(net).__name__, x_T.dtype, width, net.prediction, activation


def _kernel_accepts(arch: str, dtype: torch.dtype, width: int, prediction: str = "eps",
                    activation: str = "mish"):
    if arch != "CompactScoreNet":
        return TypeError(f"{NAME}: the kernel backends take a CompactScoreNet, got a {arch} (the resnet sampler "
                         f"runs on backend='torch', captured in one CUDA graph on a GPU)")
    if prediction != "eps" or activation != "mish":
        return TypeError(f"{NAME}: the fused sampler kernels implement an eps-predicting Mish net; this net "
                         f"predicts {prediction!r} with {activation!r} (the default behaviour recipe): use "
                         f"backend='torch' (captured in one CUDA graph on a GPU)")
    if dtype not in KERNEL_DTYPES:
        return TypeError(f"{NAME}: x_T must be float32/float16/bfloat16 for the kernel backends, got {dtype} "
                         f"(float64 runs on backend='torch')")
    if width > KERNEL_MAX_WIDTH:
        return ValueError(f"{NAME}: net width {width} > {KERNEL_MAX_WIDTH} does not fit the fused kernels; "
                          f"use backend='torch'")
    return None


def validate_packed(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip: float, solver: str) -> None:
    """The custom ops' own check (they can be called directly): pack_weights' layout."""
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
    if x_T.dtype not in KERNEL_DTYPES:
        raise TypeError(f"{NAME}: x_T must be float32/float16/bfloat16 for the kernel backends, got {x_T.dtype}")
    common.check_same_dtype(NAME, args, ("obs", "step_noise", "w0", "b0", "wh", "bh", "wo", "bo"), "x_T")
    for name in ("coef", "freqs"):
        if args[name].dtype != torch.float32:
            raise TypeError(f"{NAME}: {name} must be float32, got {args[name].dtype}")
    if W > KERNEL_MAX_WIDTH:
        raise ValueError(f"{NAME}: width {W} > {KERNEL_MAX_WIDTH} is not supported by the kernels")
    common.check_device_contiguous(NAME, args, "x_T")


# ---------------------------------------------------------------------------------------------
# torch: the specification (BehaviorModel.sample's loop).
# ---------------------------------------------------------------------------------------------

def sample_sequential_torch(net: ScoreNet, obs: Tensor, x_T: Tensor, step_noise: Tensor | None, steps: int,
                            solver: str, spacing: str, eta: float, clip: float | None,
                            vp: sde.VPSDE = sde.VPSDE()) -> Tensor:
    """Model after model: sampling.integrate with net(x, t, cond, slice(k, k+1)), t in x's dtype,
    the condition [obs_k, prefix] with the earlier models' clipped samples in the prefix."""
    from scoredec.sampling import integrate  # sampling imports this module

    m, B, dx = x_T.shape
    prefix = x_T.new_zeros(B, (m - 1) * dx)
    out = torch.empty_like(x_T)
    for k in range(m):
        one = slice(k, k + 1)
        cond = torch.cat([obs[k], prefix], dim=-1)[None]
        noise_k = None if step_noise is None else step_noise[k][:, None]
        x = integrate(lambda x, t: net.epsilon(x, t, cond, one), x_T[one], steps, solver, spacing, vp,
                      step_noise=noise_k, eta=eta)[0]
        if clip is not None:
            x = x.clamp(-clip, clip)
        out[k] = x
        if k < m - 1:
            prefix[:, k * dx:(k + 1) * dx] = x
    return out


# ---------------------------------------------------------------------------------------------
# Kernel backends.
# ---------------------------------------------------------------------------------------------

def launch_triton(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip: float, solver: str,
                  tile: tuple[int, int] | None = None) -> None:
    validate_packed(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
    common.check_output(NAME, x_T, out)
    from scoredec.kernels import sample_sequential as kernel

    with common.device_guard(x_T.device):
        kernel.launch(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip, solver, tile=tile)


def launch_cuda(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, out, clip: float, solver: str) -> None:
    validate_packed(obs, x_T, step_noise, coef, freqs, w0, b0, wh, bh, wo, bo, clip, solver)
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

# Coefficient tables on each device, built once per (steps, solver, spacing, eta, schedule).
_TABLES: dict[tuple, Tensor] = {}


# Host-side constants: evaluated once at trace time under torch.compile (the table is built
# with float() reads dynamo cannot trace).
@torch.compiler.assume_constant_result
def _table_values(steps: int, solver: str, spacing: str, eta: float, vp: sde.VPSDE) -> tuple:
    return tuple(tuple(row) for row in coefficient_table(steps, solver, spacing, eta, vp).tolist())


def device_table(steps: int, solver: str, spacing: str, eta: float, vp: sde.VPSDE, device: torch.device) -> Tensor:
    """coefficient_table as float32 on `device`, cached (the kernels' `coef` input)."""
    if torch.compiler.is_compiling():
        return torch.tensor(_table_values(steps, solver, spacing, float(eta), vp), dtype=torch.float32,
                            device=device)
    key = (steps, solver, spacing, float(eta), vp, str(device))
    if key not in _TABLES:
        _TABLES[key] = coefficient_table(steps, solver, spacing, eta, vp).to(device, torch.float32).contiguous()
    return _TABLES[key]


def _kernel_args(net: CompactScoreNet, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp) -> tuple:
    freqs, w0, b0, wh, bh, wo, bo = sc.pack_weights(net)
    coef = device_table(steps, solver, spacing, eta, vp, x_T.device)
    clip = float("inf") if clip is None else float(clip)
    return (obs, x_T, step_noise, coef, freqs.float().contiguous(), w0, b0, wh, bh, wo, bo, clip, solver)


def _run_triton(net, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp):
    return sample_sequential_triton(*_kernel_args(net, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp))


def _run_cuda(net, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp):
    return sample_sequential_cuda(*_kernel_args(net, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp))


_triton_available = registry.triton_kernel_available("sample_sequential", "sample_sequential_kernel")
_cuda_available = common.cuda_extension_available("sample_sequential", "sample_sequential")


registry.register_op(OP, sample_sequential_torch)
registry.register_backend(OP, "triton", _run_triton, _triton_available, _kernel_accepts)
registry.register_backend(OP, "cuda", _run_cuda, _cuda_available, _kernel_accepts)


def sample_sequential(net: ScoreNet, obs: Tensor, x_T: Tensor, *, steps: int = 15, solver: str = "dpm2",
                      spacing: str = "logSNR", eta: float = 0.0, step_noise: Tensor | None = None,
                      clip: float | None = 1.0, vp: sde.VPSDE = sde.VPSDE(), backend: str | None = None,
                      graph: bool | None = None) -> Tensor:
    """Sequential ancestral sampling with a stack of m score models (forward only).

    net: a CompactScoreNet or ResNetScoreNet stack whose condition is [obs (obs_w), m-1 prefix
    slots of x_dim] (ScoreLayout "sequential"); obs: [m, B, obs_w] with obs_w = net.cond_dim -
    (m-1) net.x_dim, model k's own part of its condition; x_T: [m, B, x_dim] initial noise;
    step_noise: [m, steps, B, x_dim], only for ddim with eta > 0. obs, x_T, step_noise and the
    net share one dtype (float32/float16/bfloat16; float64 on torch). Returns the samples
    [m, B, x_dim] clipped to [-clip, clip] (clip None: not clipped, also in the conditions).
    backend: 'torch' | 'triton' | 'cuda' | None (SCOREDEC_BACKEND, else automatic; the kernels
    take compact nets only). graph: run the torch backend on CUDA tensors as one captured CUDA
    graph (None or True: yes, under no_grad and outside torch.compile; ignored on CPU and by
    the kernel backends).
    """
    validate(net, obs, x_T, steps, solver, spacing, eta, step_noise, clip)
    name = registry.select_name(OP, x_T.device, _key(net, x_T), backend)
    args = (net, obs, x_T, step_noise, steps, solver, spacing, eta, clip, vp)
    if (name == "torch" and x_T.device.type == "cuda" and graph is not False and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling()):
        from scoredec.sampling import captured

        return captured(net, sample_sequential_torch, args)
    return registry.get_op(OP).backends[name].fn(*args)
