"""behavior.obs_norm: the behaviour models standardize observations by the dataset's moments.

The exact answer: a model with the option, fitted on some observations, is the same function as
a model without it (same weights) given those observations already standardized - for the loss,
the noise prediction (agent-major and stacked, as stage 2 calls it) and the sampler."""

import pytest
import torch

from scoredec.behavior import BehaviorConfig, BehaviorModel, legacy_defaults
from scoredec.critic import CriticConfig
from scoredec.data.hdf5 import write_dataset
from scoredec.datagen.factory import make_dataset
from scoredec.layout import AgentSpec, to_stack
from scoredec.pipeline import TrainConfig, load_product, train
from scoredec.policy import PolicyConfig

from test_nets import random_batch, small_cfg

SPEC = AgentSpec((7, 3, 11), (2, 6, 1))


def scaled_obs(gen, rows=61):
    """Observations with features on very different scales and offsets, one column constant."""
    obs, act = random_batch(SPEC, rows, gen)
    scale = torch.logspace(-2, 1.5, SPEC.obs_max, dtype=torch.float64)
    obs = (obs * scale + torch.linspace(-3, 3, SPEC.obs_max, dtype=torch.float64))
    obs[:, 0, 4] = 2.5                                      # a constant feature of agent 0
    return obs * SPEC.obs_mask().to(obs.dtype), act


def pair(mode, gen):
    """(model with obs_norm fitted on obs, the same weights without it, obs, actions)."""
    obs, act = scaled_obs(gen)
    normed = BehaviorModel(SPEC, mode, small_cfg("compact", obs_norm=True), order=(2, 0, 1)).double().eval()
    normed.fit_observations(obs)
    plain = BehaviorModel(SPEC, mode, small_cfg("compact"), order=(2, 0, 1)).double().eval()
    missing, unexpected = plain.load_state_dict(normed.state_dict(), strict=False)
    assert not missing and set(unexpected) == {"obs_shift", "obs_scale"}
    return normed, plain, obs, act


def standardize(obs):
    mean, std = obs.mean(0), obs.std(0, correction=0)
    varies = std > 1e-6
    return torch.where(varies, (obs - mean) / torch.where(varies, std, 1.0), obs)


def test_fit_takes_the_float64_moments_and_leaves_constant_and_padding_columns():
    obs, _ = scaled_obs(torch.Generator().manual_seed(0))
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact", obs_norm=True))
    model.fit_observations(obs.float())
    o = obs.float().double()
    torch.testing.assert_close(model.obs_shift.double()[:, 2], o.mean(0)[:, 2], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(model.obs_scale.double()[:, 2], o.std(0, correction=0)[:, 2],
                               rtol=1e-6, atol=1e-6)
    assert model.obs_shift[0, 4] == 0 and model.obs_scale[0, 4] == 1        # constant column
    assert (model.obs_shift[1, 3:] == 0).all() and (model.obs_scale[1, 3:] == 1).all()  # padding


def test_without_the_option_the_model_has_no_buffers_and_fitting_is_a_no_op():
    model = BehaviorModel(SPEC, "sequential", small_cfg("compact"))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.fit_observations(torch.randn(9, SPEC.n_agents, SPEC.obs_max))
    after = model.state_dict()
    assert before.keys() == after.keys() and "obs_shift" not in after
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("mode", ["sequential", "marginal", "joint"])
def test_normalized_model_equals_plain_model_on_standardized_observations(mode):
    gen = torch.Generator().manual_seed(1)
    normed, plain, obs, act = pair(mode, gen)
    std_obs = standardize(obs)
    lay = normed.layout
    t = torch.rand(lay.models, obs.shape[0], generator=gen, dtype=torch.float64) * 0.98 + 0.02
    z = torch.randn(lay.models, obs.shape[0], lay.x_dim, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(normed.loss(obs, act, noise=(t, z)), plain.loss(std_obs, act, noise=(t, z)),
                               rtol=1e-12, atol=1e-12)
    x_t = torch.randn(lay.models, obs.shape[0], lay.x_dim, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(normed.epsilon(x_t, t, obs, act), plain.epsilon(x_t, t, std_obs, act),
                               rtol=1e-12, atol=1e-12)
    # Stage 2's stacked inputs: [n, B, obs_max] in agent index order, or joint [1, B, n * obs_max].
    index = tuple(range(SPEC.n_agents))
    stack = (lambda x: x.reshape(1, x.shape[0], -1)) if mode == "joint" else (lambda x: to_stack(x, index))
    torch.testing.assert_close(normed.epsilon_from_models(x_t, t, stack(obs), to_stack(act, index)),
                               plain.epsilon_from_models(x_t, t, stack(std_obs), to_stack(act, index)),
                               rtol=1e-12, atol=1e-12)
    noise = torch.randn(lay.models, obs.shape[0], lay.x_dim, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(normed.sample(obs, noise=noise, backend="torch"),
                               plain.sample(std_obs, noise=noise, backend="torch"), rtol=1e-10, atol=1e-10)


def test_option_changes_the_function_on_raw_observations():
    # The equivalence above is not vacuous: on raw observations the two models differ.
    gen = torch.Generator().manual_seed(2)
    normed, plain, obs, act = pair("sequential", gen)
    x_t = torch.randn(normed.layout.models, obs.shape[0], normed.layout.x_dim, generator=gen,
                      dtype=torch.float64)
    t = torch.full(x_t.shape[:2], 0.5, dtype=torch.float64)
    assert (normed.epsilon(x_t, t, obs, act) - plain.epsilon(x_t, t, obs, act)).abs().max() > 1e-3


def test_saved_configs_without_the_field_rebuild_without_normalization():
    assert legacy_defaults({"arch": "compact"})["obs_norm"] is False
    assert legacy_defaults({"arch": "compact", "obs_norm": True})["obs_norm"] is True


def test_training_fits_the_dataset_moments_and_the_product_keeps_them(tmp_path):
    data = tmp_path / "spread.h5"
    ds = make_dataset("spread", "medium", episodes=3, seed=3, progress=False)
    write_dataset(data, ds)
    cfg = TrainConfig(method="omsd", seed=3, device="cpu", log_every=3, checkpoint_every=5,
                      behavior=BehaviorConfig(arch="compact", hidden=16, compact_layers=1,
                                              batch_size=8, steps=6, obs_norm=True),
                      critic=CriticConfig(hidden=8, layers=1, batch_size=8, steps=6),
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=6, beta=0.5))
    run = train(data, cfg, tmp_path / "run", progress=False)
    model = load_product(run, "behavior").module
    obs = torch.as_tensor(ds.observations, dtype=torch.float64)
    std = obs.std(0, correction=0)
    want_scale = torch.where(std > 1e-6, std, torch.ones_like(std))
    torch.testing.assert_close(model.obs_scale.double(), want_scale, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.obs_shift.double(), torch.where(std > 1e-6, obs.mean(0), 0.0),
                               rtol=1e-5, atol=1e-6)
    assert (model.obs_scale != 1).any()


def test_policy_input_norm_gives_the_actors_a_batchnorm_that_training_fits(tmp_path):
    from scoredec.pipeline import load_actors

    data = tmp_path / "spread.h5"
    write_dataset(data, make_dataset("spread", "medium", episodes=3, seed=3, progress=False))
    cfg = TrainConfig(method="bc", seed=3, device="cpu", log_every=3, checkpoint_every=5,
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=6, input_norm=True))
    run = train(data, cfg, tmp_path / "run", progress=False)
    actors, meta = load_actors(run, "cpu")
    assert meta["actors"]["input_norm"] and actors.norm is not None and not actors.training
    assert (actors.norm.running_mean != 0).any()                 # moments of the batches seen
    plain = train(data, TrainConfig(**{**cfg.__dict__, "policy": PolicyConfig(
        hidden=8, layers=1, batch_size=8, steps=6)}), tmp_path / "plain", progress=False)
    assert load_actors(plain, "cpu")[0].norm is None
