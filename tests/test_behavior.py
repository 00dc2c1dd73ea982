"""Stage 1a: the stacked denoising loss and the sequential sampler against per-agent loops."""

import pytest
import torch

from scoredec import sde
from scoredec.behavior import BehaviorConfig, BehaviorModel
from scoredec.layout import AgentSpec
from scoredec.sampling import integrate

from reference import as_eps, as_x0, first_layer_columns, narrow_inputs, reference_epsilon, score_single
from test_nets import random_batch, small_cfg

SPEC = AgentSpec((7, 3, 11), (2, 6, 1))


_DEFAULT = BehaviorConfig()
# small_cfg's fused-kernel form (eps, Mish, scale 30), and the default recipe (clean action, ReLU,
# scale 1, weight average).
RECIPES = {"kernel form": {}, "default recipe": {
    "prediction": _DEFAULT.prediction, "activation": _DEFAULT.activation,
    "fourier_scale": _DEFAULT.fourier_scale, "ema": _DEFAULT.ema},
    "edm": {"prediction": "edm", "activation": "relu", "sigma_data": 0.37}}


@pytest.mark.parametrize("recipe", list(RECIPES))
@pytest.mark.parametrize("mode", ["sequential", "marginal", "joint"])
@pytest.mark.parametrize("arch", ["resnet", "compact"])
def test_loss_matches_per_agent_loop(mode, arch, recipe):
    gen = torch.Generator().manual_seed(1)
    changes = {k: v for k, v in RECIPES[recipe].items() if not (arch == "resnet" and k == "activation")}
    model = BehaviorModel(SPEC, mode, small_cfg(arch, **changes), order=(2, 0, 1)).double().eval()
    obs, act = random_batch(SPEC, 37, gen)
    lay = model.layout
    t = torch.rand(lay.models, 37, generator=gen, dtype=torch.float64) * 0.99 + 0.01
    z = torch.randn(lay.models, 37, lay.x_dim, generator=gen, dtype=torch.float64)
    got = model.loss(obs, act, noise=(t, z))
    # Reference: each model's mean over the batch of ||eps_k(alpha a_k + sigma z, t | c_k) - z||^2
    # (eps nets), ||x0_k(alpha a_k + sigma z, t | c_k) - a_k||^2 (clean-action nets), or that
    # divided by c_out^2 (EDM).
    alpha, sigma = sde.VPSDE().alpha_sigma(t)
    x_t = alpha[..., None] * lay.targets(act) + sigma[..., None] * z
    out = reference_epsilon(model, x_t, t, obs, act)
    mask = lay.x_mask()[:, None, :].double()
    cfg = model.cfg
    if cfg.prediction == "eps":
        sq = ((out - z) * mask) ** 2
    else:
        sq = ((as_x0(out, x_t, t, cfg.prediction, cfg.sigma_data) - lay.targets(act)) * mask) ** 2
    if cfg.prediction == "edm":
        s = sigma / alpha
        sq = sq / (s ** 2 * 0.37 ** 2 / (s ** 2 + 0.37 ** 2))[..., None]
    want = sq.sum(-1).mean(1).sum()
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_condition_noise_moves_only_the_earlier_actions_in_the_conditions():
    # Conditioning augmentation (cond_noise): model k sees a_<k + s u, its target stays a_k.
    gen = torch.Generator().manual_seed(3)
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact", cond_noise=0.3, prediction="x0"),
                          order=(2, 0, 1)).double().eval()
    obs, act = random_batch(SPEC, 23, gen)
    lay = model.layout
    t = torch.rand(lay.models, 23, generator=gen, dtype=torch.float64) * 0.99 + 0.01
    z = torch.randn(lay.models, 23, lay.x_dim, generator=gen, dtype=torch.float64)
    u = torch.randn(act.shape, generator=gen, dtype=torch.float64)
    got = model.loss(obs, act, noise=(t, z, u))
    alpha, sigma = sde.VPSDE().alpha_sigma(t)
    x_t = alpha[..., None] * lay.targets(act) + sigma[..., None] * z
    out = reference_epsilon(model, x_t, t, obs, act + 0.3 * u * SPEC.act_mask())
    sq = ((out - lay.targets(act)) * lay.x_mask()[:, None, :].double()) ** 2
    torch.testing.assert_close(got, sq.sum(-1).mean(1).sum(), rtol=1e-10, atol=1e-12)
    # The noise in padded action columns reaches nothing; without noise the loss differs.
    padded = u + 5.0 * ~SPEC.act_mask()
    torch.testing.assert_close(model.loss(obs, act, noise=(t, z, padded)), got, rtol=1e-12, atol=0)
    assert not torch.isclose(model.loss(obs, act, noise=(t, z, 0 * u)), got)


def test_condition_noise_is_drawn_only_where_conditions_hold_actions():
    from scoredec.behavior import BehaviorStage
    from scoredec.data.tensors import Batch
    obs, act = random_batch(SPEC, 5, torch.Generator().manual_seed(4))
    batch = Batch(obs=obs, actions=act, rewards=None, next_obs=None, terminals=None)
    for mode, cond_noise, drawn in [("sequential", 0.1, 3), ("sequential", 0.0, 2),
                                    ("marginal", 0.1, 2), ("joint", 0.1, 2)]:
        cfg = small_cfg("compact", cond_noise=cond_noise)
        stage = BehaviorStage(BehaviorModel(SPEC, mode, cfg).double(), cfg)
        noise = stage.draw_noise(batch, torch.Generator().manual_seed(0))
        assert len(noise) == drawn, (mode, cond_noise)
        assert torch.isfinite(stage.loss(batch, noise)[0])


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_sequential_sampler_matches_per_agent_loop(recipe):
    gen = torch.Generator().manual_seed(2)
    order = (1, 2, 0)
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact", **RECIPES[recipe]),
                          order=order).double()
    obs, _ = random_batch(SPEC, 9, gen)
    noise = torch.randn(3, 9, SPEC.act_max, generator=gen, dtype=torch.float64)
    got = model.sample(obs, steps=4, solver="dpm2", noise=noise)
    # Reference: agent order[k] sampled with its own narrow network, conditioned on the
    # samples of agents order[:k].
    want = torch.zeros(9, 3, SPEC.act_max, dtype=torch.float64)
    for k, agent in enumerate(order):
        d = SPEC.act_dims[agent]
        cond = narrow_inputs(SPEC, "sequential", order, k, obs, want)
        cols = first_layer_columns(model, k)
        x = integrate(lambda x, t: as_eps(score_single(model.net, k, x, t, cond, cols)[:, :d], x, t,
                                          model.cfg.prediction, model.cfg.sigma_data),
                      noise[k][:, :d], 4, "dpm2")
        want[:, agent, :d] = x.clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert model.training, "sample() must restore training mode"


def test_sampler_rejects_wrong_noise_shape():
    model = BehaviorModel(SPEC, "marginal", small_cfg("compact"))
    obs = torch.zeros(4, 3, SPEC.obs_max)
    with pytest.raises(ValueError, match="noise must be"):
        model.sample(obs, steps=2, noise=torch.zeros(3, 5, SPEC.act_max))


def test_sampler_is_reproducible_with_a_generator():
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact"))
    obs = torch.randn(5, 3, SPEC.obs_max)
    a = model.sample(obs, steps=3, generator=torch.Generator().manual_seed(0))
    b = model.sample(obs, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.abs().max() <= 1.0
    assert (a * ~SPEC.act_mask()).abs().max() == 0, "padded action columns must stay zero"


def test_unknown_mode_and_bad_order_are_rejected():
    with pytest.raises(ValueError, match="score mode"):
        BehaviorModel(SPEC, "chain", BehaviorConfig(arch="compact", hidden=8))
    with pytest.raises(ValueError, match="permutation"):
        BehaviorModel(SPEC, "sequential", BehaviorConfig(arch="compact", hidden=8), order=(0, 0, 1))
