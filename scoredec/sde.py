"""The VP-SDE noise process, its time features, its solver steps and the solvers built on them
as scheduler objects (DDIM, DPMSolver1, DPMSolver2 via make_solver: set the grid, step)
(DESIGN.md 1.2, 1.6). Every sampler runs these: the torch loops (scoredec.sampling.run_solver,
the behaviour model's sequential sampler), their CUDA graphs, and the fused sampler kernels
through Solver.coefficient_table.

This module is the one definition of the schedule. Kernels receive its coefficients (the
polynomial of log alpha_t, VPSDE.log_alpha_coefficients; the solvers' coefficient tables,
Solver.coefficient_table; the Fourier frequencies) and are tested against these functions;
nothing else in the package recomputes alpha_t or sigma_t.

Notation (as SRPO / DPM-Solver):
    log alpha_t = -0.25 t^2 (beta_1 - beta_0) - 0.5 t beta_0
    sigma_t     = sqrt(1 - alpha_t^2)
    lambda_t    = log alpha_t - log sigma_t        (half log-SNR)
    x_t         = alpha_t x_0 + sigma_t z
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

BETA_0 = 0.1
BETA_1 = 20.0
# Fourier time features: 16 fixed Gaussian frequencies of scale 30 -> 32 features (sin, cos).
FOURIER_FREQUENCIES = 16
FOURIER_SCALE = 30.0
# Training draws t ~ U(T_MIN, 1); the sampler integrates from 1 down to T_MIN.
T_MIN = 1e-3


@dataclass(frozen=True)
class VPSDE:
    """Variance-preserving SDE with a linear beta schedule on t in (0, 1]."""

    beta_0: float = BETA_0
    beta_1: float = BETA_1

    def log_alpha(self, t: Tensor) -> Tensor:
        return -0.25 * t * t * (self.beta_1 - self.beta_0) - 0.5 * t * self.beta_0

    def log_alpha_coefficients(self) -> tuple[float, float]:
        """(c2, c1) with log alpha_t = c2 t^2 + c1 t: what the noising kernels receive (they
        evaluate t * t * c2 + t * c1; the factors -0.25 and -0.5 are powers of two, so in float32
        this rounds exactly as log_alpha does)."""
        return -0.25 * (self.beta_1 - self.beta_0), -0.5 * self.beta_0

    @classmethod
    def from_log_alpha_coefficients(cls, c2: float, c1: float) -> "VPSDE":
        """The schedule whose log_alpha_coefficients are (c2, c1)."""
        beta_0 = -2.0 * c1
        return cls(beta_0, beta_0 - 4.0 * c2)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """alpha_t, sigma_t with the shape of t. sigma uses expm1 so it is exact near t = 0."""
        log_alpha = self.log_alpha(t)
        return log_alpha.exp(), torch.sqrt(-torch.expm1(2.0 * log_alpha))

    def lambda_(self, t: Tensor) -> Tensor:
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(-torch.expm1(2.0 * log_alpha))

    def t_of_lambda(self, lam: Tensor) -> Tensor:
        """Inverse of lambda_: solve 0.25 d t^2 + 0.5 b0 t + log_alpha = 0 for t > 0."""
        log_alpha = -0.5 * torch.nn.functional.softplus(-2.0 * lam)
        delta = self.beta_1 - self.beta_0
        disc = 0.25 * self.beta_0**2 - delta * log_alpha
        return 2.0 * (torch.sqrt(disc) - 0.5 * self.beta_0) / delta

    def noise(self, x0: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """x_t = alpha_t x0 + sigma_t z. x0, z: [..., d]; t: [...]."""
        alpha, sigma = self.alpha_sigma(t)
        return alpha[..., None] * x0 + sigma[..., None] * z


def make_fourier_frequencies(generator: torch.Generator | None = None, count: int = FOURIER_FREQUENCIES,
                             scale: float = FOURIER_SCALE) -> Tensor:
    """The fixed random frequencies W ~ N(0, scale^2) of the Gaussian Fourier projection: [count]."""
    return torch.randn(count, generator=generator) * scale


def fourier_features(t: Tensor, freqs: Tensor) -> Tensor:
    """[sin(2 pi t W), cos(2 pi t W)]. t: [...]; freqs: [F] or broadcastable [..., F] -> [..., 2F]."""
    proj = 2.0 * math.pi * t[..., None] * freqs
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


# ---------------------------------------------------------------------------------------------
# Solver steps: pure functions of (model output, times, sample), one per method. Times are
# scalars (python floats or 0-d tensors) shared by the batch, as in a fixed sampling grid.
# ---------------------------------------------------------------------------------------------

def time_grid(steps: int, sde: VPSDE = VPSDE(), t_start: float = 1.0, t_end: float = T_MIN,
              spacing: str = "logSNR") -> Tensor:
    """steps + 1 decreasing times from t_start to t_end (float64). spacing: time_uniform | logSNR."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if spacing == "time_uniform":
        return torch.linspace(t_start, t_end, steps + 1, dtype=torch.float64)
    if spacing == "logSNR":
        lam = torch.linspace(float(sde.lambda_(torch.tensor(t_start, dtype=torch.float64))),
                             float(sde.lambda_(torch.tensor(t_end, dtype=torch.float64))),
                             steps + 1, dtype=torch.float64)
        return sde.t_of_lambda(lam)
    raise ValueError(f"spacing must be 'time_uniform' or 'logSNR', got {spacing!r}")


def _scalar(sde: VPSDE, t) -> tuple[float, float, float]:
    t = torch.as_tensor(t, dtype=torch.float64)
    alpha, sigma = sde.alpha_sigma(t)
    return float(alpha), float(sigma), float(sde.lambda_(t))


def ddim_step(eps: Tensor, x_t: Tensor, t, s, sde: VPSDE = VPSDE(), eta: float = 0.0,
              noise: Tensor | None = None) -> Tensor:
    """DDIM from time t to s < t. eta = 0 is deterministic (= DPM-Solver-1); eta > 0 needs noise."""
    a_t, s_t, _ = _scalar(sde, t)
    a_s, s_s, _ = _scalar(sde, s)
    x0 = (x_t - s_t * eps) / a_t
    if eta == 0.0:
        return a_s * x0 + s_s * eps
    if noise is None:
        raise ValueError("ddim_step with eta > 0 needs explicit noise")
    # Stochastic DDIM (Song et al. 2021, eq. 16) with abar = alpha^2, 1 - abar = sigma^2.
    c = eta * (s_s / s_t) * math.sqrt(max(1.0 - (a_t / a_s) ** 2, 0.0))
    direction = math.sqrt(max(s_s**2 - c**2, 0.0))
    return a_s * x0 + direction * eps + c * noise


def dpm_solver_1_step(eps: Tensor, x_t: Tensor, t, s, sde: VPSDE = VPSDE()) -> Tensor:
    """DPM-Solver-1 (Lu et al. 2022, eq. 3.7): x_s = (a_s/a_t) x_t - sigma_s (e^h - 1) eps."""
    a_t, _, l_t = _scalar(sde, t)
    a_s, s_s, l_s = _scalar(sde, s)
    h = l_s - l_t
    return (a_s / a_t) * x_t - s_s * math.expm1(h) * eps


def dpm_solver_2_midpoint(x_t: Tensor, eps_t: Tensor, t, s, sde: VPSDE = VPSDE(),
                          r: float = 0.5) -> tuple[Tensor, float]:
    """First half of DPM-Solver-2 (Lu et al. 2022, Alg. 1): the intermediate point u at s1.

    Returns (u, s1); evaluate eps at (u, s1) and finish with dpm_solver_2_step."""
    a_t, _, l_t = _scalar(sde, t)
    _, _, l_s = _scalar(sde, s)
    h = l_s - l_t
    s1 = float(sde.t_of_lambda(torch.tensor(l_t + r * h, dtype=torch.float64)))
    a_1, s_1, _ = _scalar(sde, s1)
    u = (a_1 / a_t) * x_t - s_1 * math.expm1(r * h) * eps_t
    return u, s1


def dpm_solver_2_step(x_t: Tensor, eps_t: Tensor, eps_s1: Tensor, t, s, sde: VPSDE = VPSDE(),
                      r: float = 0.5) -> Tensor:
    """Second half of DPM-Solver-2: x_s from x_t, eps(x_t, t) and eps(u, s1)."""
    a_t, _, l_t = _scalar(sde, t)
    a_s, s_s, l_s = _scalar(sde, s)
    h = l_s - l_t
    e = math.expm1(h)
    return (a_s / a_t) * x_t - s_s * e * eps_t - (s_s / (2.0 * r)) * e * (eps_s1 - eps_t)


SOLVERS = ("ddim", "dpm1", "dpm2")
SPACINGS = ("logSNR", "time_uniform")


# ---------------------------------------------------------------------------------------------
# Solvers as scheduler objects (in the manner of diffusers): the time grid is set once, step()
# takes one step of it. The torch samplers loop over step(); the fused sampler kernels read
# coefficient_table(), derived from the same step functions.
# ---------------------------------------------------------------------------------------------

# Columns of a coefficient-table row: the evaluation time t, the dpm2 midpoint time s1 and its
# update u = u_x x + u_e eps, and the step x' = c_x x + c_e eps + c_2 (eps(u, s1) | z).
COEF_COLUMNS = ("t", "s1", "u_x", "u_e", "c_x", "c_e", "c_2", "pad")

EpsAt = Callable[[Tensor, float], Tensor]  # (x, t) -> eps at time t (a python float)


class Solver:
    """A fixed-grid reverse-time solver of the VP-SDE from t = 1 to T_MIN.

    timesteps: [steps + 1] float64, decreasing. step(eps_at, x, i, noise) takes x from
    timesteps[i] to timesteps[i + 1]; eps_at(x, t) evaluates the model at a python float t.
    Build one with make_solver (which checks the arguments)."""

    name: str
    evaluations: int  # model evaluations per step

    def __init__(self, steps: int, spacing: str = "logSNR", eta: float = 0.0, vp: VPSDE = VPSDE()):
        self.steps, self.spacing, self.eta, self.vp = steps, spacing, float(eta), vp
        self.timesteps = time_grid(steps, vp, spacing=spacing)

    def _times(self, i: int) -> tuple[float, float]:
        return float(self.timesteps[i]), float(self.timesteps[i + 1])

    def step(self, eps_at: EpsAt, x: Tensor, i: int, noise: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    def _row(self, t: float, s: float) -> list[float]:
        raise NotImplementedError

    def coefficient_table(self) -> Tensor:
        """[steps, 8] float64: per step the columns COEF_COLUMNS. Every step is linear in
        (x, eps, eps_2 | noise), so its coefficients are read off by applying the step function
        itself to unit vectors: the kernels never evaluate the schedule."""
        return torch.tensor([self._row(*self._times(i)) for i in range(self.steps)], dtype=torch.float64)

    def key(self) -> tuple:
        return self.name, self.steps, self.spacing, self.eta, self.vp

    def table(self, device: torch.device) -> Tensor:
        """coefficient_table as float32 on `device`, cached (the fused kernels' `coef` input)."""
        if torch.compiler.is_compiling():
            return torch.tensor(_table_values(*self.key()), dtype=torch.float32, device=device)
        key = (*self.key(), str(device))
        if key not in _TABLES:
            _TABLES[key] = self.coefficient_table().to(device, torch.float32).contiguous()
        return _TABLES[key]


_UNIT = torch.eye(3, dtype=torch.float64)  # rows: x, eps, third input (eps(u, s1) or noise)


class DDIM(Solver):
    """DDIM (eta = 0: deterministic; eta > 0: stochastic with explicit noise per step)."""

    name, evaluations = "ddim", 1

    def step(self, eps_at, x, i, noise=None):
        t, s = self._times(i)
        return ddim_step(eps_at(x, t), x, t, s, self.vp, eta=self.eta, noise=noise)

    def _row(self, t, s):
        x, e, third = _UNIT
        step = ddim_step(e, x, t, s, self.vp, eta=self.eta, noise=third if self.eta > 0 else None)
        return [t, 0.0, 0.0, 0.0, float(step[0]), float(step[1]), float(step[2]), 0.0]


class DPMSolver1(Solver):
    """DPM-Solver-1 (first order, one evaluation per step)."""

    name, evaluations = "dpm1", 1

    def step(self, eps_at, x, i, noise=None):
        t, s = self._times(i)
        return dpm_solver_1_step(eps_at(x, t), x, t, s, self.vp)

    def _row(self, t, s):
        x, e, _ = _UNIT
        step = dpm_solver_1_step(e, x, t, s, self.vp)
        return [t, 0.0, 0.0, 0.0, float(step[0]), float(step[1]), float(step[2]), 0.0]


class DPMSolver2(Solver):
    """DPM-Solver-2 (second order, two evaluations per step: at t and at the midpoint s1)."""

    name, evaluations = "dpm2", 2

    def step(self, eps_at, x, i, noise=None):
        t, s = self._times(i)
        eps = eps_at(x, t)
        u, s1 = dpm_solver_2_midpoint(x, eps, t, s, self.vp)
        return dpm_solver_2_step(x, eps, eps_at(u, s1), t, s, self.vp)

    def _row(self, t, s):
        x, e, third = _UNIT
        u, s1 = dpm_solver_2_midpoint(x, e, t, s, self.vp)
        step = dpm_solver_2_step(x, e, third, t, s, self.vp)
        return [t, s1, float(u[0]), float(u[1]), float(step[0]), float(step[1]), float(step[2]), 0.0]


_SOLVER_CLASSES = {cls.name: cls for cls in (DDIM, DPMSolver1, DPMSolver2)}
# Coefficient tables on each device, built once per (solver, steps, spacing, eta, schedule).
_TABLES: dict[tuple, Tensor] = {}


# Host-side constants: evaluated once at trace time under torch.compile (the table is built
# with float() reads dynamo cannot trace).
@torch.compiler.assume_constant_result
def _table_values(name: str, steps: int, spacing: str, eta: float, vp: VPSDE) -> tuple:
    table = _SOLVER_CLASSES[name](steps, spacing, eta, vp).coefficient_table()
    return tuple(tuple(row) for row in table.tolist())


def make_solver(solver: str, steps: int, spacing: str = "logSNR", eta: float = 0.0,
                vp: VPSDE = VPSDE()) -> Solver:
    """The solver `solver` (SOLVERS) on a grid of `steps` steps: the one check of the sampling
    arguments every sampler shares (the errors name the argument)."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    if not eta >= 0.0:
        raise ValueError(f"eta must be >= 0, got {eta!r}")
    if eta > 0 and solver != "ddim":
        raise ValueError(f"eta > 0 is stochastic DDIM; solver {solver!r} takes eta = 0")
    return _SOLVER_CLASSES[solver](steps, spacing, eta, vp)
