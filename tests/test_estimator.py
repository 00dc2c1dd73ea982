"""The stage-2 estimator (scoredec/estimator.py): the draw of t, the row weights, and what an
exact behaviour model teaches the actors through it."""

import math

import pytest
import torch
from torch import nn

from scoredec import sde
from scoredec.actors import Actors
from scoredec.behavior import draw_noise
from scoredec.critic import CriticConfig, IQLCritic
from scoredec.data.tensors import Batch
from scoredec.estimator import TimeDraw, pull, score_weight
from scoredec.layout import AgentSpec, ScoreLayout
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage

VP = sde.VPSDE()


def cdf_by_quadrature(weighting, t_min, t_max, points):
    """The CDF of p(t) proportional to pull(t), by a fine float64 trapezoid."""
    grid = torch.linspace(t_min, t_max, 200_001, dtype=torch.float64)
    dens = pull(weighting, *VP.alpha_sigma(grid))
    cum = torch.cat([torch.zeros(1, dtype=torch.float64),
                     (0.5 * (dens[1:] + dens[:-1]) * (grid[1:] - grid[:-1])).cumsum(0)])
    return torch.tensor([float(cum[int(round((p - t_min) / (t_max - t_min) * 200_000))] / cum[-1])
                         for p in points], dtype=torch.float64)


@pytest.mark.parametrize("weighting", ["score", "vds", "stable"])
def test_importance_draw_follows_the_pull(weighting):
    draw = TimeDraw(weighting, 0.02, 0.98)
    t = draw.t_from_uniform(torch.rand(400_000, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    assert t.min() >= 0.02 and t.max() <= 0.98
    points = [0.02 + 0.96 * k / 48 for k in range(1, 48)]
    empirical = torch.tensor([(t <= p).double().mean().item() for p in points], dtype=torch.float64)
    # Kolmogorov-Smirnov at 400k draws: 0.003 is ~2 standard errors at most.
    assert (empirical - cdf_by_quadrature(weighting, 0.02, 0.98, points)).abs().max() < 0.003


@pytest.mark.parametrize("weighting", ["score", "vds", "stable"])
def test_importance_weights_keep_the_uniform_objective(weighting):
    """E_p[w / (p T)] = (1/T) int w dt = E_U[w]: the same objective, only the variance changes."""
    gen = torch.Generator().manual_seed(1)
    draw = TimeDraw(weighting, 0.05, 0.9)
    t = draw.t_from_uniform(torch.rand(1_000_000, generator=gen, dtype=torch.float64))
    weights = draw.row_weight(*VP.alpha_sigma(t))
    grid = torch.linspace(0.05, 0.9, 400_001, dtype=torch.float64)
    exact = torch.trapezoid(score_weight(weighting, *VP.alpha_sigma(grid)), grid) / 0.85
    assert abs(weights.mean() - exact) < 3 * weights.std() / math.sqrt(len(t)) + 1e-12
    # and every row pulls equally hard: weight * alpha / sigma is one number
    alpha, sigma = VP.alpha_sigma(t)
    per_row = weights * alpha / sigma
    torch.testing.assert_close(per_row, torch.full_like(per_row, draw.normalizer / 0.85))


def test_uniform_draw_is_the_old_draw_number_for_number():
    draw = TimeDraw("score", 0.02, 0.98, draw="uniform")
    like = torch.zeros(1)
    new = draw.sample(3, 17, 2, torch.Generator().manual_seed(5), like)
    old = draw_noise(3, 17, 2, 0.02, 0.98, torch.Generator().manual_seed(5), like)
    assert all(torch.equal(a, b) for a, b in zip(new, old))
    alpha, sigma = VP.alpha_sigma(new[0])
    assert torch.equal(draw.row_weight(alpha, sigma), alpha / sigma)


@pytest.mark.parametrize("kwargs,match", [
    ({"weighting": "snr"}, "weighting must be one of"),
    ({"draw": "stratified"}, "t draw must be one of"),
    ({"t_min": 0.0}, "t_min"), ({"t_min": 0.5, "t_max": 0.4}, "t_max")])
def test_bad_settings_are_named(kwargs, match):
    args = {"weighting": "score", "t_min": 0.02, "t_max": 0.98, **kwargs}
    with pytest.raises(ValueError, match=match):
        TimeDraw(**args)


# ------------------------------------------------------------------ an exact behaviour model

SPEC = AgentSpec((6, 6, 6), (2, 2, 2))


class ExactBehavior(nn.Module):
    """A known deterministic joint policy as a behaviour model: its clean-action prediction is
    the policy's action at every t, so eps(x_t, t) = (x_t - alpha_t pi*(o)) / sigma_t exactly."""

    def __init__(self, target: Actors, mode: str = "sequential"):
        super().__init__()
        self.layout, self.target, self.vp = ScoreLayout(SPEC, mode), target, VP

    @property
    def mode(self):
        return self.layout.mode

    def epsilon_from_models(self, x_t, t, obs, actions=None, backend=None):
        x0 = self.layout.targets_from_models(self.target.forward_models(obs))
        alpha, sigma = self.vp.alpha_sigma(t)
        return (x_t - alpha[..., None] * x0) / sigma[..., None]


def target_policy(seed: int) -> Actors:
    torch.manual_seed(seed)
    target = Actors(SPEC, hidden=16, layers=1)
    with torch.no_grad():   # actions of size ~0.5, not the near-zero outputs of a fresh init
        target.mlp.layers[-1].weight.mul_(3.0)
    return target.requires_grad_(False)


def objective(target, cfg, seed=0):
    torch.manual_seed(seed + 1)
    actors = Actors(SPEC, hidden=64, layers=2)
    critic = IQLCritic(SPEC, "joint", CriticConfig(hidden=8))
    return PolicyObjective("omsd", actors, cfg, ExactBehavior(target), critic)


def test_exact_model_gives_the_regression_gradient_on_every_row():
    """With the control variate and the importance draw, each row's gradient is exactly
    (Z / T) (a - pi*(o)) per model, whatever t and z it drew: distillation is regression."""
    target = target_policy(0)
    for weighting in ("score", "vds", "stable"):
        cfg = PolicyConfig(beta=0.0, weighting=weighting)
        obj = objective(target, cfg)
        obs = torch.randn(33, 3, 6, generator=torch.Generator().manual_seed(2))
        a = obj.actors(obs).detach().requires_grad_(True)
        # Differentiate w.r.t. the actions: the loss reads them from the actors' stack.
        obj.actors.forward_models = lambda o, a=a: obj.actors.layout.inputs(a)
        loss, _ = obj.loss(obs, None, generator=torch.Generator().manual_seed(3))
        (grad,) = torch.autograd.grad(loss, a)
        scale = obj.time_draw.normalizer / (cfg.t_max - cfg.t_min)
        expected = scale * (a - target(obs)) / obs.shape[0]
        torch.testing.assert_close(grad, expected.detach(), rtol=1e-4, atol=1e-7)


def distil(cfg: PolicyConfig, steps: int = 600, batch: int = 64, seed: int = 0) -> float:
    """Mean |pi(o) - pi*(o)| on held observations after `steps` of stage 2 at beta = 0."""
    target = target_policy(seed)
    stage = PolicyStage(objective(target, cfg, seed))
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        obs = torch.randn(batch, 3, 6, generator=gen)
        stage.step(Batch(obs, obs[..., :2], torch.zeros(batch, 3), obs, torch.zeros(batch)), gen)
    held = torch.randn(2000, 3, 6, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        return float((stage.objective.actors(held) - target(held)).abs().mean())


LEARN = {"lr": 3e-3, "lr_end": 0.0, "steps": 600, "batch_size": 64, "beta": 0.0}
# Measured (600 steps, batch 64): importance + control variate 0.030 for every weighting (the
# gradients are the same up to scale, and Adam ignores scale); uniform draw without the control
# variate: score 0.054, vds 0.111, stable 0.060. Mean |pi*(o)| is 0.49.
TOLERANCE = 0.035


@pytest.mark.parametrize("weighting", ["score", "vds", "stable"])
def test_actors_distil_an_exact_behaviour_model(weighting):
    err = distil(PolicyConfig(weighting=weighting, **LEARN))
    assert err < TOLERANCE, f"{weighting}: held-out |pi - pi*| = {err:.4f}"


@pytest.mark.parametrize("weighting", ["score", "vds"])
def test_the_uniform_draw_without_control_variate_does_not(weighting):
    """The estimator as first written (t ~ U, no control variate) misses the same tolerance:
    this is what makes the test above able to fail."""
    err = distil(PolicyConfig(weighting=weighting, t_draw="uniform", subtract_noise=False, **LEARN))
    good = distil(PolicyConfig(weighting=weighting, **LEARN))
    assert err > TOLERANCE and err > 1.5 * good, f"{weighting}: uniform {err:.4f}, importance {good:.4f}"
