"""The baselines (scoredec.baselines): each trains on the bandit and on spread, leaves loadable
actors, resumes bit-exactly after a budget stop, and shows the behaviour its paper promises."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from scoredec.baselines.macql import CQLConfig, CQLStage
from scoredec.checkpoint import load_checkpoint
from scoredec.datagen.factory import make_dataset_file
from scoredec.data.hdf5 import read_dataset, write_dataset
from scoredec.data.tensors import OfflineData
from scoredec.envs import bandit
from scoredec.methods import config_with, get_method, method_names
from scoredec.pipeline import load_actors
from scoredec.runs import read_metrics

BASELINES = ("iql", "matd3bc", "macql", "omar")
STEPS = 12


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny networks on a shared 2-core machine: one thread is several times faster."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(method: str, **extra) -> dict:
    nets = {"critic_hidden": 16, "critic_layers": 1, "actor_hidden": 16, "actor_layers": 1}
    return {"device": "cpu", "log_every": 3, "checkpoint_every": 5, "batch_size": 16,
            "steps": STEPS, **nets, **extra}


@pytest.fixture(scope="module")
def bandit_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bandit.h5"
    write_dataset(path, bandit.make_dataset(256, seed=0))
    return path


@pytest.fixture(scope="module")
def spread_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "spread.h5"
    make_dataset_file("spread", "expert", path, episodes=20, progress=False)
    return path


def bandit_with(path, actions: np.ndarray):
    """A bandit dataset with the given joint actions [N, 2, 1] and their reward a1 a2."""
    ds = bandit.make_dataset(len(actions), seed=0)
    team = actions[:, 0, 0] * actions[:, 1, 0]
    ds = dataclasses.replace(ds, actions=actions.astype(np.float32),
                             rewards=np.repeat(team[:, None], 2, axis=1).astype(np.float32))
    write_dataset(path, ds)
    return path


@pytest.fixture(scope="module")
def one_mode_file(tmp_path_factory):
    """All joint actions near (+0.8, +0.8)."""
    rng = np.random.default_rng(1)
    actions = np.clip(0.8 + 0.1 * rng.standard_normal((512, 2, 1)), -1, 1)
    return bandit_with(tmp_path_factory.mktemp("data") / "one_mode.h5", actions)


def test_baselines_are_registered_and_decentralized():
    for name in BASELINES:
        assert name in method_names() and not get_method(name).centralized


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("data", ["bandit", "spread"])
def test_trains_with_finite_losses_and_loadable_actors(method, data, request, tmp_path):
    path = request.getfixturevalue(f"{data}_file")
    run = get_method(method).train(path, tmp_path / "run", seed=2, overrides=tiny(method),
                                   progress=False)
    records = read_metrics(run)
    assert records and records[-1]["step"] == STEPS
    for record in records:
        for key, value in record.items():
            if isinstance(value, float):
                assert math.isfinite(value), (key, record)
    actors, meta = load_actors(run)
    assert meta["method"] == method and meta["config"]["seed"] == 2
    ds = read_dataset(path)
    obs = torch.as_tensor(ds.observations[:5])
    a = actors(obs)
    assert a.shape == ds.actions[:5].shape and a.abs().max() <= 1
    # Decentralized: agent 0's action does not move when another agent's observation does.
    other = obs.clone()
    other[:, 1:] += 1.0
    assert torch.equal(actors(other)[:, 0], a[:, 0])


@pytest.mark.parametrize("method", BASELINES)
def test_stopped_and_resumed_run_ends_bit_exact(method, bandit_file, tmp_path):
    train = get_method(method).train
    straight = train(bandit_file, tmp_path / "straight", seed=0, overrides=tiny(method),
                     progress=False)
    broken = tmp_path / "broken"
    train(bandit_file, broken, seed=0, overrides=tiny(method), budget=7, progress=False)
    assert not (broken / "actors.json").exists()
    with pytest.raises(RuntimeError, match="--resume"):
        train(bandit_file, broken, seed=0, overrides=tiny(method), progress=False)
    train(bandit_file, broken, seed=0, overrides=tiny(method), resume=True, progress=False)
    a, b = load_file(str(straight / "actors.safetensors")), load_file(str(broken / "actors.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"


def final_actions(run) -> torch.Tensor:
    actors, _ = load_actors(run)
    return actors(bandit.observations(1))[0, :, 0]


# --------------------------------------------------------------------------- behaviour

def test_iql_weights_the_better_joint_action(tmp_path):
    """Agent 0 always plays +0.8; agent 1 plays +0.8 (reward +0.64) or -0.8 (-0.64) equally
    often. Plain regression would put agent 1 near 0; the joint advantage weights the
    coordinated pairs by exp(3 * 1.28) ~ 46 times more, so agent 1 ends near +0.8."""
    rng = np.random.default_rng(2)
    actions = np.full((512, 2, 1), 0.8) + 0.05 * rng.standard_normal((512, 2, 1))
    actions[::2, 1, 0] *= -1.0
    path = bandit_with(tmp_path / "mixed.h5", np.clip(actions, -1, 1))
    over = tiny("iql", steps=400, batch_size=64, critic_hidden=32, actor_hidden=32,
                critic_lr=3e-3, actor_lr=3e-3, log_every=100, checkpoint_every=1000)
    a = final_actions(get_method("iql").train(path, tmp_path / "run", seed=0, overrides=over,
                                              progress=False))
    assert a[0] > 0.6 and a[1] > 0.5, a


def test_matd3bc_actors_stay_at_the_data_mode(one_mode_file, tmp_path):
    over = tiny("matd3bc", steps=200, batch_size=64, critic_hidden=32, actor_hidden=32,
                critic_lr=3e-3, actor_lr=3e-3, log_every=100, checkpoint_every=1000)
    a = final_actions(get_method("matd3bc").train(one_mode_file, tmp_path / "run", seed=0,
                                                  overrides=over, progress=False))
    assert (a > 0.5).all(), a


def cql_critic_gap(path, tmp_path, alpha: float) -> float:
    """Mean over agents of Q_i(o, data mode +0.8) - Q_i(o, out of distribution -0.8).

    Without the input BatchNorm: with it, Q of one action depends on the batch it is asked in
    (and the running estimates mix data, uniform and policy batches), so a point query says
    nothing about the penalty."""
    over = tiny("macql", steps=150, batch_size=64, critic_hidden=32, actor_hidden=32,
                cql_alpha=alpha, log_every=150, checkpoint_every=150, critic_input_norm=False)
    run = get_method("macql").train(path, tmp_path / f"run{alpha}", seed=0, overrides=over,
                                    progress=False)
    cfg = config_with(CQLConfig, over, seed=0)
    stage = CQLStage(OfflineData.from_dataset(read_dataset(path)).spec, cfg)
    load_checkpoint(run / "checkpoints" / "macql-000000150", modules=stage.modules)
    obs = bandit.observations(1)
    with torch.no_grad():
        q_in = stage.model.critic(obs, torch.full((1, 2, 1), 0.8)).mean(dim=1)
        q_out = stage.model.critic(obs, torch.full((1, 2, 1), -0.8)).mean(dim=1)
    return float((q_in - q_out).mean())


def test_macql_pushes_down_out_of_distribution_actions(one_mode_file, tmp_path):
    """Data only near a_i = +0.8 with reward ~0.64; the true a1 a2 is also 0.64 at (-0.8, -0.8),
    so only the conservative penalty makes the unseen action look worse."""
    gap = cql_critic_gap(one_mode_file, tmp_path, alpha=5.0)
    assert gap > 2.0, gap
    assert gap > cql_critic_gap(one_mode_file, tmp_path, alpha=0.0) + 0.3


def test_omar_search_finds_the_data_mode(one_mode_file, tmp_path):
    """coe = 1: the actors only regress onto the searched actions of the CQL critic, which
    peaks at the data mode; from their start near 0 they must move there. Without the input
    BatchNorm: on the bandit's constant observation it would normalize a data batch and a
    uniform batch of actions to the same distribution, and the penalty could not tell them
    apart."""
    over = tiny("omar", steps=150, batch_size=64, critic_hidden=32, actor_hidden=32,
                log_every=150, checkpoint_every=1000, critic_input_norm=False)
    a = final_actions(get_method("omar").train(one_mode_file, tmp_path / "run", seed=0,
                                               overrides=over, progress=False))
    assert (a > 0.5).all(), a


@pytest.mark.parametrize("search", ["softmax", "cem"])
def test_omar_search_climbs_a_known_q(search):
    """Q_i(o, a) = -|a - c_i|^2 with c_i per agent (3 agents, 2-d actions, the last agent's
    second slot padding): both updates must end nearer c_i than their first samples do, and the
    CEM's carried elites make its best Q at least the best of its first iteration."""
    from scoredec.baselines.omar import OMARConfig, search_actions

    g = torch.Generator().manual_seed(7)
    batch, n, act_max = 29, 3, 2
    act_mask = torch.tensor([[1, 1], [1, 1], [1, 0]], dtype=torch.bool)
    centre = torch.tensor([[0.5, -0.3], [-0.6, 0.2], [0.4, 0.0]])
    obs = torch.randn(batch, n, 4, generator=g)

    def q1(o, a):                                   # -> [n, B']
        return -((a - centre) ** 2 * act_mask).sum(-1).t()

    one = OMARConfig(omar_iters=1, omar_samples=20, search=search, omar_elites=5)
    more = dataclasses.replace(one, omar_iters=4)
    _, q_first = search_actions(q1, obs, act_mask, one, torch.Generator().manual_seed(1))
    best, q_best = search_actions(q1, obs, act_mask, more, torch.Generator().manual_seed(1))
    assert best.shape == (batch, n, act_max) and q_best.shape == (n, batch)
    assert (best[:, 2, 1] == 0).all()               # padding stays zero
    assert q_best.mean() > q_first.mean()
    assert torch.allclose(q_best, q1(obs, best))    # the returned Q is the returned action's
    if search == "cem":
        assert (q_best >= q_first - 1e-6).all()
        assert q_best.median() > -0.01, q_best.median()


def test_omar_cem_needs_as_many_samples_as_elites():
    from scoredec.baselines.omar import OMARConfig

    with pytest.raises(ValueError, match="omar_elites"):
        OMARConfig(search="cem", omar_samples=4, omar_elites=5)


def test_stacked_batch_norm_is_batchnorm1d_per_model():
    """Each model of the stack normalizes like its own torch.nn.BatchNorm1d, in training (batch
    statistics, running estimates updated) and in eval mode, also through a strided slice."""
    from scoredec.nets import StackedBatchNorm

    torch.manual_seed(3)
    models, rows, feats = 4, 37, 5
    norm = StackedBatchNorm(models, feats)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    refs = [torch.nn.BatchNorm1d(feats).double() for _ in range(models)]
    for m, ref in enumerate(refs):
        with torch.no_grad():
            ref.weight.copy_(norm.weight[m, 0])
            ref.bias.copy_(norm.bias[m, 0])
    for _ in range(3):
        x = torch.randn(models, rows, feats) * 3 + 1
        out = norm(x)
        for m, ref in enumerate(refs):
            torch.testing.assert_close(out[m].double(), ref(x[m].double()), rtol=1e-5, atol=1e-5)
    x = torch.randn(models, rows, feats)
    out = norm(x[::2], models=slice(0, None, 2))      # heads 0 and 2 only (AgentTwinQ.q1)
    for i, m in enumerate((0, 2)):
        torch.testing.assert_close(out[i].double(), refs[m](x[m].double()), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(norm.running_var[1, 0].double(), refs[1].running_var)
    torch.testing.assert_close(norm.running_mean[0, 0].double(), refs[0].running_mean)
    norm.eval()
    x = torch.randn(models, 3, feats)
    out = norm(x)
    for m, ref in enumerate(refs):
        ref.eval()
        torch.testing.assert_close(out[m].double(), ref(x[m].double()), rtol=1e-5, atol=1e-5)


def test_actor_input_norm_is_saved_and_acts_with_its_running_estimates(spread_file, tmp_path):
    """MA-CQL with OMAR's actor BatchNorm: the running estimates move during training, are
    saved with the actors and resumed bit-exactly, and the loaded actors act (one observation
    at a time too) with those estimates, i.e. exactly BatchNorm-eval then the MLP."""
    overrides = tiny("macql", actor_input_norm=True)
    train = get_method("macql").train
    straight = train(spread_file, tmp_path / "straight", seed=1, overrides=overrides,
                     progress=False)
    broken = tmp_path / "broken"
    train(spread_file, broken, seed=1, overrides=overrides, budget=7, progress=False)
    train(spread_file, broken, seed=1, overrides=overrides, resume=True, progress=False)
    a, b = load_file(str(straight / "actors.safetensors")), load_file(str(broken / "actors.safetensors"))
    assert any("running_mean" in key for key in a) and a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"

    actors, meta = load_actors(straight)
    assert meta["actors"]["input_norm"] and not actors.training
    norm = actors.norm
    assert norm.running_mean.abs().max() > 0 and not torch.equal(norm.running_var,
                                                                 torch.ones_like(norm.running_var))
    obs = torch.as_tensor(read_dataset(spread_file).observations[:1])     # one observation
    x = actors.layout.inputs(obs)
    expected = (x - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps)
    expected = torch.tanh(actors.mlp(expected * norm.weight + norm.bias)) * actors.out_mask
    torch.testing.assert_close(actors(obs), actors.layout.actions_from(expected))
    actors.train()
    with pytest.raises(ValueError, match="eval"):
        actors(obs)
