"""Reverse-time integration of the VP-SDE with any epsilon model: the drop-in sampler.

`integrate` runs DDIM or DPM-Solver (1st/2nd order) from t = 1 to T_MIN on a fixed grid for
any callable eps(x, t) -> noise prediction. `sample` is the drop-in API: give it one of the
package's behaviour models (scoredec.behavior.BehaviorModel: the fused sequential sampler,
scoredec.ops.sample_sequential) or any epsilon callable eps(x, t, cond) (integrated here; on
CUDA tensors the whole solver loop is captured once into a CUDA graph and replayed).
"""

from __future__ import annotations

import inspect
import logging
from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import Tensor

from scoredec import sde

logger = logging.getLogger("scoredec.sampling")

EpsFn = Callable[[Tensor, Tensor], Tensor]  # (x [..., d], t [...]) -> eps [..., d]


def integrate(eps_fn: EpsFn, x_T: Tensor, steps: int, solver: str = "dpm2",
              spacing: str = "logSNR", vp: sde.VPSDE = sde.VPSDE(),
              step_noise: Tensor | None = None, eta: float = 0.0) -> Tensor:
    """Integrate x from t = 1 to T_MIN. x_T: [..., d] initial noise (explicit, so backends and
    runs can be compared element by element). step_noise: [steps, ..., d] for DDIM with eta > 0.

    Returns x at T_MIN (not clipped). dpm2 uses two model evaluations per step."""
    if solver not in sde.SOLVERS:
        raise ValueError(f"solver must be one of {sde.SOLVERS}, got {solver!r}")
    grid = sde.time_grid(steps, vp, spacing=spacing)
    batch_shape = x_T.shape[:-1]
    x = x_T

    def eps_at(x: Tensor, t: float) -> Tensor:
        return eps_fn(x, torch.full(batch_shape, t, dtype=x.dtype, device=x.device))

    for i in range(steps):
        t, s = float(grid[i]), float(grid[i + 1])
        eps = eps_at(x, t)
        if solver == "ddim":
            noise = None if step_noise is None else step_noise[i]
            x = sde.ddim_step(eps, x, t, s, vp, eta=eta, noise=noise)
        elif solver == "dpm1":
            x = sde.dpm_solver_1_step(eps, x, t, s, vp)
        else:
            u, s1 = sde.dpm_solver_2_midpoint(x, eps, t, s, vp)
            x = sde.dpm_solver_2_step(x, eps, eps_at(u, s1), t, s, vp)
    return x


# ---------------------------------------------------------------------------------------------
# CUDA graphs: one captured replay of a whole sampling loop, cached per owner and call shape.
# ---------------------------------------------------------------------------------------------

class CapturedCall:
    """fn(*args) captured once into a torch.cuda.CUDAGraph; __call__ copies the tensor
    arguments into the graph's static inputs, replays, and returns a copy of the output."""

    def __init__(self, fn: Callable[..., Tensor], args: tuple):
        self.tensor_slots = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.static = list(args)
        for i in self.tensor_slots:
            self.static[i] = args[i].clone()
        stream = torch.cuda.Stream(args[self.tensor_slots[0]].device)
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            fn(*self.static)  # warm-up outside the graph: lazy initialization, cuBLAS handles
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.out = fn(*self.static)

    def __call__(self, args: tuple) -> Tensor:
        for i in self.tensor_slots:
            self.static[i].copy_(args[i])
        self.graph.replay()
        return self.out.clone()


# (id(owner), call key) -> (owner, CapturedCall), least recently used first. The entry holds
# the owner, so its id cannot be reused while cached; the oldest graphs are dropped first.
_GRAPHS: "OrderedDict[tuple, tuple[Any, CapturedCall]]" = OrderedDict()
MAX_GRAPHS = 32
# User callables whose capture failed in automatic mode (they run eagerly), most recent last.
_UNCAPTURABLE: list = []


def _describe(a) -> Any:
    if isinstance(a, Tensor):
        return ("tensor", tuple(a.shape), a.dtype, str(a.device))
    if isinstance(a, (int, float, str, bool, type(None), sde.VPSDE)):
        return a
    return ("object", id(a))


def captured(owner: Any, fn: Callable[..., Tensor], args: tuple) -> Tensor:
    """fn(*args) on CUDA tensors through a cached CUDA graph. `owner` is the net or the user's
    epsilon callable, whose tensors the graph reads in place (in-place weight updates are
    seen; replaced parameters make a new graph). Keyed on the owner, fn, the tensors'
    shapes/dtypes/devices, the other arguments and the owner's parameter addresses; at most
    MAX_GRAPHS graphs are kept."""
    func = None
    if inspect.ismethod(owner):  # a bound method is a new object per access: key its instance
        owner, func = owner.__self__, owner.__func__
    params = ()
    if isinstance(owner, torch.nn.Module):
        params = tuple(p.data_ptr() for p in owner.parameters()) + tuple(b.data_ptr() for b in owner.buffers())
    key = (id(owner), fn, func, params, tuple(_describe(a) for a in args))
    if key in _GRAPHS:
        _GRAPHS.move_to_end(key)
    else:
        call = CapturedCall(fn, args)
        _GRAPHS[key] = (owner, call)
        while len(_GRAPHS) > MAX_GRAPHS:
            _GRAPHS.popitem(last=False)
    return _GRAPHS[key][1](args)


def clear_graphs() -> None:
    """Drop every cached CUDA graph (frees their memory pools) and forget failed captures."""
    _GRAPHS.clear()
    _UNCAPTURABLE.clear()


# ---------------------------------------------------------------------------------------------
# The drop-in API.
# ---------------------------------------------------------------------------------------------

def _integrate_callable(eps_model, cond: Tensor, noise: Tensor, steps: int, solver: str, spacing: str,
                        step_noise: Tensor | None, eta: float) -> Tensor:
    return integrate(lambda x, t: eps_model(x, t, cond), noise, steps, solver, spacing,
                     step_noise=step_noise, eta=eta)


def sample(eps_model: Callable[[Tensor, Tensor, Tensor], Tensor], cond: Tensor, x_dim: int | None = None,
           steps: int | None = 15, solver: str | None = "dpm2", noise: Tensor | None = None,
           generator: torch.Generator | None = None, clip: float | None = 1.0,
           spacing: str = "logSNR", *, step_noise: Tensor | None = None, eta: float = 0.0,
           backend: str | None = None, graph: bool | None = None) -> Tensor:
    """The drop-in sampler: x ~ mu(. | cond) from an epsilon model.

    eps_model: either
      - a scoredec.behavior.BehaviorModel: cond is obs [B, n, obs_max]; returns joint actions
        [B, n, act_max] from BehaviorModel.sample (sequential mode: the fused sampler
        scoredec.ops.sample_sequential on `backend`); noise [m, B, x_dim], step_noise
        [m, steps, B, x_dim]; x_dim may be omitted; steps/solver None take the model's config;
      - any callable eps_model(x [B, d], t [B], cond [B, c]) -> [B, d]: cond [B, c]; noise
        [B, x_dim] (drawn from `generator` if None); step_noise [steps, B, x_dim] for ddim with
        eta > 0. Integrated by `integrate`; on CUDA tensors as one captured CUDA graph of the
        whole loop, cached per callable and shapes (graph=None: on CUDA if it can be captured,
        else eager with a warning; True: always, errors raise; False: eager).
    Returns [B, x_dim] (callable) clipped to [-clip, clip] unless clip is None.
    """
    from scoredec.behavior import BehaviorModel  # behavior imports this module

    if isinstance(eps_model, BehaviorModel):
        if x_dim is not None and x_dim != eps_model.layout.x_dim:
            raise ValueError(f"x_dim must be the model's x_dim {eps_model.layout.x_dim} (or None), got {x_dim}")
        if clip != 1.0:
            raise ValueError(f"clip: a BehaviorModel samples actions in [-1, 1]; got clip={clip}")
        return eps_model.sample(cond, steps=steps, solver=solver, noise=noise, generator=generator,
                                spacing=spacing, step_noise=step_noise, eta=eta, backend=backend, graph=graph)
    if not callable(eps_model):
        raise TypeError(f"eps_model must be a BehaviorModel or a callable eps(x, t, cond), got "
                        f"{type(eps_model).__name__}")
    if backend is not None:
        raise ValueError("backend applies to BehaviorModel sampling; a user eps_model runs as given")
    if not isinstance(cond, Tensor) or cond.dim() != 2:
        raise ValueError(f"cond must be a [B, c] tensor, got "
                         f"{tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__}")
    if isinstance(x_dim, bool) or not isinstance(x_dim, int) or x_dim < 1:
        raise ValueError(f"x_dim must be an int >= 1 for a callable eps_model, got {x_dim!r}")
    steps = 15 if steps is None else steps
    solver = "dpm2" if solver is None else solver
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if solver not in sde.SOLVERS:
        raise ValueError(f"solver must be one of {sde.SOLVERS}, got {solver!r}")
    if eta > 0 and solver != "ddim":
        raise ValueError(f"eta > 0 is stochastic DDIM; solver {solver!r} takes eta = 0")
    B = cond.shape[0]
    if noise is None:
        noise = torch.randn(B, x_dim, generator=generator, dtype=cond.dtype, device=cond.device)
    if not isinstance(noise, Tensor) or noise.shape != (B, x_dim):
        raise ValueError(f"noise must be [{B}, {x_dim}], got {tuple(getattr(noise, 'shape', ()))}")
    if noise.device != cond.device or noise.dtype != cond.dtype:
        raise ValueError(f"noise must be {cond.dtype} on {cond.device} like cond, got {noise.dtype} on {noise.device}")
    if eta > 0:
        if step_noise is None:
            step_noise = torch.randn(steps, B, x_dim, generator=generator, dtype=cond.dtype, device=cond.device)
        if step_noise.shape != (steps, B, x_dim) or step_noise.device != cond.device:
            raise ValueError(f"step_noise must be [{steps}, {B}, {x_dim}] on {cond.device}, got "
                             f"{tuple(step_noise.shape)} on {step_noise.device}")
    elif step_noise is not None:
        raise ValueError("step_noise is only used by ddim with eta > 0")
    args = (eps_model, cond, noise, steps, solver, spacing, step_noise, eta)
    with torch.no_grad():
        use_graph = cond.device.type == "cuda" and graph is not False
        if use_graph and graph is None:
            if any(owner is eps_model for owner in _UNCAPTURABLE):
                x = _integrate_callable(*args)
            else:
                try:
                    x = captured(eps_model, _integrate_callable, args)
                except Exception as exc:  # auto mode: an uncapturable model runs eagerly, and says so
                    logger.warning("sample: CUDA graph capture of %r failed (%s); running it eagerly from now on",
                                   eps_model, exc)
                    _UNCAPTURABLE.append(eps_model)
                    del _UNCAPTURABLE[:-MAX_GRAPHS]
                    x = _integrate_callable(*args)
        elif use_graph:
            x = captured(eps_model, _integrate_callable, args)
        else:
            x = _integrate_callable(*args)
    return x if clip is None else x.clamp(-clip, clip)
