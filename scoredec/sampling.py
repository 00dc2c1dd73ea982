"""Reverse-time integration of the VP-SDE with any epsilon model: the drop-in sampler.

`integrate` runs one of sde.py's solvers (DDIM, DPM-Solver 1st/2nd order; sde.make_solver)
from t = 1 to T_MIN on its fixed grid for any callable eps(x, t) -> noise prediction. `sample` is
the drop-in API: give it a ConditionalSampler (scoredec.behavior.BehaviorModel, whose sequential
sampler runs on the fused kernels) or any epsilon callable eps(x, t, cond) (integrated here; on
CUDA tensors the whole solver loop is recorded once into a CUDA graph and replayed: `graphed`).
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
    return run_solver(eps_fn, x_T, sde.make_solver(solver, steps, spacing, eta, vp), step_noise)


def run_solver(eps_fn: EpsFn, x_T: Tensor, solver: sde.Solver, step_noise: Tensor | None = None) -> Tensor:
    """integrate with a solver already built (and its arguments checked) by sde.make_solver."""
    batch_shape = x_T.shape[:-1]
    x = x_T

    def eps_at(x: Tensor, t: float) -> Tensor:
        return eps_fn(x, torch.full(batch_shape, t, dtype=x.dtype, device=x.device))

    for i in range(solver.steps):
        x = solver.step(eps_at, x, i, None if step_noise is None else step_noise[i])
    return x


def check_noise(name: str, noise, shape: tuple, like: Tensor) -> None:
    """noise is a tensor of `shape` with like's dtype and device (the error names `name`)."""
    if not isinstance(noise, Tensor) or tuple(noise.shape) != tuple(shape):
        raise ValueError(f"{name} must be {list(shape)}, got {list(getattr(noise, 'shape', ()))}")
    if noise.device != like.device or noise.dtype != like.dtype:
        raise ValueError(f"{name} must be {like.dtype} on {like.device}, got {noise.dtype} on {noise.device}")


def draw_or_check_noise(name: str, noise: Tensor | None, shape: tuple, like: Tensor,
                        generator: torch.Generator | None) -> Tensor:
    """noise drawn from N(0, I) with generator if None, else checked (check_noise)."""
    if noise is None:
        return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)
    check_noise(name, noise, shape, like)
    return noise


# ---------------------------------------------------------------------------------------------
# CUDA graphs: one recorded replay of a whole sampling loop, cached per owner and call shape.
# ---------------------------------------------------------------------------------------------

class GraphedCall:
    """fn(*args) recorded once into a torch.cuda.CUDAGraph; __call__ copies the tensor
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


# (id(owner), call key) -> (owner, GraphedCall), least recently used first. The entry holds
# the owner, so its id cannot be reused while cached; the oldest graphs are dropped first.
_GRAPHS: "OrderedDict[tuple, tuple[Any, GraphedCall]]" = OrderedDict()
MAX_GRAPHS = 32
# User callables whose graph recording failed in automatic mode (they run eagerly), most recent last.
_UNCAPTURABLE: list = []


def _describe(a) -> Any:
    if isinstance(a, Tensor):
        return ("tensor", tuple(a.shape), a.dtype, str(a.device))
    if isinstance(a, (int, float, str, bool, type(None), sde.VPSDE)):
        return a
    if isinstance(a, sde.Solver):
        return a.key()
    return ("object", id(a))


def graphed(owner: Any, fn: Callable[..., Tensor], args: tuple) -> Tensor:
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
        call = GraphedCall(fn, args)
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

class ConditionalSampler:
    """A model that samples x ~ mu(. | cond) itself (scoredec.behavior.BehaviorModel): `sample`
    hands it the whole call. x_dim: the width of its x; sample(cond, steps, solver, noise,
    generator, spacing, *, step_noise, eta, backend, graph) -> samples in [-1, 1]."""

    x_dim: int

    def sample(self, cond: Tensor, steps: int | None = None, solver: str | None = None,
               noise: Tensor | None = None, generator: torch.Generator | None = None,
               spacing: str = "logSNR", *, step_noise: Tensor | None = None, eta: float = 0.0,
               backend: str | None = None, graph: bool | None = None) -> Tensor:
        raise NotImplementedError


def _integrate_callable(eps_model, cond: Tensor, noise: Tensor, solver: sde.Solver,
                        step_noise: Tensor | None) -> Tensor:
    return run_solver(lambda x, t: eps_model(x, t, cond), noise, solver, step_noise)


def sample(eps_model: Callable[[Tensor, Tensor, Tensor], Tensor], cond: Tensor, x_dim: int | None = None,
           steps: int | None = 15, solver: str | None = "dpm2", noise: Tensor | None = None,
           generator: torch.Generator | None = None, clip: float | None = 1.0,
           spacing: str = "logSNR", *, step_noise: Tensor | None = None, eta: float = 0.0,
           backend: str | None = None, graph: bool | None = None) -> Tensor:
    """The drop-in sampler: x ~ mu(. | cond) from an epsilon model.

    eps_model: either
      - a ConditionalSampler (scoredec.behavior.BehaviorModel): cond is obs [B, n, obs_max];
        returns joint actions [B, n, act_max] from BehaviorModel.sample (sequential mode: the
        fused sequential sampler on `backend`); noise [m, B, x_dim], step_noise
        [m, steps, B, x_dim]; x_dim may be omitted; steps/solver None take the model's config;
      - any callable eps_model(x [B, d], t [B], cond [B, c]) -> [B, d]: cond [B, c]; noise
        [B, x_dim] (drawn from `generator` if None); step_noise [steps, B, x_dim] for ddim with
        eta > 0. Integrated by `integrate`; on CUDA tensors as one CUDA graph of the whole loop,
        recorded once per callable and shapes (graph=None: on CUDA if it can be recorded, else
        eager with a warning; True: always, errors raise; False: eager).
    Returns [B, x_dim] (callable) clipped to [-clip, clip] unless clip is None.
    """
    if isinstance(eps_model, ConditionalSampler):
        if x_dim is not None and x_dim != eps_model.x_dim:
            raise ValueError(f"x_dim must be the model's x_dim {eps_model.x_dim} (or None), got {x_dim}")
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
    scheduler = sde.make_solver("dpm2" if solver is None else solver, 15 if steps is None else steps, spacing, eta)
    B = cond.shape[0]
    noise = draw_or_check_noise("noise", noise, (B, x_dim), cond, generator)
    if eta > 0:
        step_noise = draw_or_check_noise("step_noise", step_noise, (scheduler.steps, B, x_dim), cond, generator)
    elif step_noise is not None:
        raise ValueError("step_noise is only used by ddim with eta > 0")
    args = (eps_model, cond, noise, scheduler, step_noise)
    with torch.no_grad():
        use_graph = cond.device.type == "cuda" and graph is not False
        if use_graph and graph is None:
            if any(owner is eps_model for owner in _UNCAPTURABLE):
                x = _integrate_callable(*args)
            else:
                try:
                    x = graphed(eps_model, _integrate_callable, args)
                except Exception as exc:  # auto mode: a model that cannot be recorded runs eagerly, and says so
                    logger.warning("sample: recording %r into a CUDA graph failed (%s); running it eagerly from "
                                   "now on", eps_model, exc)
                    _UNCAPTURABLE.append(eps_model)
                    del _UNCAPTURABLE[:-MAX_GRAPHS]
                    x = _integrate_callable(*args)
        elif use_graph:
            x = graphed(eps_model, _integrate_callable, args)
        else:
            x = _integrate_callable(*args)
    return x if clip is None else x.clamp(-clip, clip)
