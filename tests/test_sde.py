"""The VP-SDE schedule and the solvers, against closed forms."""

import math

import pytest
import torch

from scoredec import sde
from scoredec.sampling import integrate

VP = sde.VPSDE()


def test_alpha_sigma_closed_form():
    t = torch.rand(1000, dtype=torch.float64) * (1 - 1e-3) + 1e-3
    alpha, sigma = VP.alpha_sigma(t)
    log_alpha = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
    torch.testing.assert_close(alpha, log_alpha.exp(), rtol=0, atol=1e-15)
    torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), rtol=0, atol=1e-14)
    assert (sigma > 0).all() and (alpha < 1).all()


def test_lambda_inverse_round_trips():
    t = torch.linspace(1e-3, 1.0, 513, dtype=torch.float64)
    torch.testing.assert_close(VP.t_of_lambda(VP.lambda_(t)), t, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("spacing", ["time_uniform", "logSNR"])
def test_time_grid_is_decreasing_from_one_to_t_min(spacing):
    grid = sde.time_grid(7, spacing=spacing)
    assert grid.shape == (8,)
    assert math.isclose(float(grid[0]), 1.0, rel_tol=1e-9)
    assert math.isclose(float(grid[-1]), sde.T_MIN, rel_tol=1e-6)
    assert (grid[1:] < grid[:-1]).all()


def test_fourier_features_shape_and_values():
    freqs = torch.tensor([1.0, 2.0, -0.5])
    t = torch.tensor([0.0, 0.25])
    f = sde.fourier_features(t, freqs)
    assert f.shape == (2, 6)
    torch.testing.assert_close(f[0], torch.tensor([0.0, 0, 0, 1, 1, 1]))
    torch.testing.assert_close(f[1, 0], torch.sin(torch.tensor(2 * math.pi * 0.25)))


def gaussian_eps(mean: float, std: float):
    """Exact noise prediction for data N(mean, std^2): E[z | x_t]."""
    def eps(x, t):
        alpha, sigma = VP.alpha_sigma(t)
        var = alpha**2 * std**2 + sigma**2
        return (sigma / var)[..., None] * (x - alpha[..., None] * mean)
    return eps


def test_ddim_equals_dpm_solver_1():
    x = torch.randn(64, 3, dtype=torch.float64)
    eps = torch.randn(64, 3, dtype=torch.float64)
    torch.testing.assert_close(sde.ddim_step(eps, x, 0.7, 0.4), sde.dpm_solver_1_step(eps, x, 0.7, 0.4))


@pytest.mark.parametrize("solver,steps,tol", [("dpm2", 10, 0.02), ("dpm1", 50, 0.03), ("ddim", 50, 0.03)])
def test_solvers_sample_a_gaussian(solver, steps, tol):
    gen = torch.Generator().manual_seed(0)
    x_T = torch.randn(20000, 2, generator=gen, dtype=torch.float64)
    x0 = integrate(gaussian_eps(0.5, 0.2), x_T, steps, solver)
    assert abs(float(x0.mean()) - 0.5) < tol
    assert abs(float(x0.std()) - 0.2) < tol


def test_stochastic_ddim_needs_noise():
    x = torch.randn(4, 1)
    with pytest.raises(ValueError, match="noise"):
        sde.ddim_step(x, x, 0.5, 0.4, eta=1.0)


def test_unknown_solver_and_spacing_are_rejected():
    with pytest.raises(ValueError, match="solver"):
        integrate(gaussian_eps(0, 1), torch.zeros(2, 1), 3, "euler")
    with pytest.raises(ValueError, match="spacing"):
        sde.time_grid(3, spacing="quadratic")
