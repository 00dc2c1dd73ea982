"""Reverse-time integration of the VP-SDE with any epsilon model: the drop-in sampler.

`integrate` runs DDIM or DPM-Solver (1st/2nd order) from t = 1 to T_MIN on a fixed grid for
any callable eps(x, t) -> noise prediction. The behaviour models call it per agent for the
sequential sampler; users can pass their own epsilon model through `sample`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from scoredec import sde

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


def sample(eps_model: Callable[[Tensor, Tensor, Tensor], Tensor], cond: Tensor, x_dim: int,
           steps: int = 15, solver: str = "dpm2", noise: Tensor | None = None,
           generator: torch.Generator | None = None, clip: float | None = 1.0,
           spacing: str = "logSNR") -> Tensor:
    """Sample x ~ mu(. | cond) with a user epsilon model eps_model(x [B, d], t [B], cond [B, c]).

    cond: [B, c]; noise: [B, x_dim] initial noise (drawn from `generator` if None).
    Returns [B, x_dim], clipped to [-clip, clip] unless clip is None."""
    if noise is None:
        noise = torch.randn(cond.shape[0], x_dim, generator=generator, dtype=cond.dtype,
                            device=cond.device)
    if noise.shape != (cond.shape[0], x_dim):
        raise ValueError(f"noise must be [{cond.shape[0]}, {x_dim}], got {tuple(noise.shape)}")
    with torch.no_grad():
        x = integrate(lambda x, t: eps_model(x, t, cond), noise, steps, solver, spacing)
    return x if clip is None else x.clamp(-clip, clip)
