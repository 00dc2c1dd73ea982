"""Stage 2: the batched step against DESIGN.md 1.5's literal loop over agents, in float64."""

import copy

import pytest
import torch
import torch.nn.functional as F

from scoredec import sde
from scoredec.actors import Actors
from scoredec.behavior import BehaviorModel
from scoredec.critic import CriticConfig, IQLCritic
from scoredec.layout import AgentSpec
from scoredec.methods import family, variant
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage

from reference import first_layer_columns, mlp, narrow_inputs, score_single
from test_nets import random_batch, small_cfg

SPEC = AgentSpec((4, 6, 3), (2, 1, 3))


class NarrowActor:
    """Agent k's actor as separate leaf tensors at its true widths, with its own Adam."""

    def __init__(self, actors: Actors, k: int, lr: float, steps: int):
        cols = actors.mlp.layers[0].in_mask[k, :, 0].bool()
        self.params = []
        for i, layer in enumerate(actors.mlp.layers):
            w = layer.weight[k].detach().clone()
            w = w[cols] if i == 0 else w
            self.params += [w.requires_grad_(True), layer.bias[k, 0].detach().clone().requires_grad_(True)]
        self.cols, self.d = cols, SPEC.act_dims[k]
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.opt, T_max=steps)

    def __call__(self, obs_k):
        x = obs_k[:, self.cols]
        for i in range(0, len(self.params), 2):
            x = x @ self.params[i] + self.params[i + 1]
            if i < len(self.params) - 2:
                x = F.relu(x)
        return torch.tanh(x[:, : self.d])


def narrow_q(critic, obs, actions):
    """0.5 (Q1' + Q2') of the joint target critic on concatenated true-width inputs."""
    s = torch.cat([obs[:, i, :SPEC.obs_dims[i]] for i in range(SPEC.n_agents)], -1)
    a = torch.cat([actions[i] for i in range(SPEC.n_agents)], -1)
    heads = [mlp(critic.q_target, h, torch.cat([s, a], -1),
                 critic.q_target.layers[0].in_mask[h, :, 0].bool().nonzero()[:, 0]) for h in (0, 1)]
    return 0.5 * (heads[0] + heads[1])[:, 0]


def reference_row_weight(weighting, t_draw, t, t_min=0.02, t_max=0.98):
    """w(t), or w(t) / (p(t) (t_max - t_min)) with p proportional to w alpha / sigma, its
    normalizer by numpy's trapezoid on a fine grid (independent of scoredec.estimator)."""
    import numpy as np

    def coef(tt):
        log_a = -0.25 * tt**2 * (20.0 - 0.1) - 0.5 * tt * 0.1
        a = np.exp(log_a)
        return a, np.sqrt(1.0 - a**2)

    def w(a, s):
        return {"score": a / s, "vds": s**2, "stable": np.ones_like(s)}[weighting]

    a, s = coef(t.numpy())
    if t_draw == "uniform":
        return torch.as_tensor(w(a, s))
    grid = np.linspace(t_min, t_max, 400_001)
    ga, gs = coef(grid)
    z = np.trapezoid(w(ga, gs) * ga / gs, grid)
    p = w(a, s) * a / s / z
    return torch.as_tensor(w(a, s) / (p * (t_max - t_min)))


@pytest.mark.parametrize("weighting,t_draw,subtract_noise", [
    ("score", "importance", True), ("vds", "importance", True), ("stable", "importance", False),
    ("score", "uniform", False), ("vds", "uniform", True), ("stable", "uniform", False)])
def test_batched_omsd_step_equals_per_agent_loop(weighting, t_draw, subtract_noise):
    torch.manual_seed(0)
    order, steps, lr, beta = (1, 2, 0), 3, 1e-2, 0.7
    behavior = BehaviorModel(SPEC, "sequential", small_cfg("compact"), order=order).double()
    critic = IQLCritic(SPEC, "joint", CriticConfig(hidden=16, layers=2)).double()
    with torch.no_grad():  # targets different from the online heads, as after training
        for p in critic.q_target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    actors = Actors(SPEC, hidden=16, layers=2).double()
    cfg = PolicyConfig(beta=beta, weighting=weighting, t_draw=t_draw, subtract_noise=subtract_noise,
                       lr=lr, steps=steps)
    stage = PolicyStage(PolicyObjective("omsd", actors, cfg, behavior, critic))
    ref = [NarrowActor(actors, i, lr, steps) for i in range(SPEC.n_agents)]
    gen = torch.Generator().manual_seed(3)
    vp = sde.VPSDE()
    for _ in range(steps):
        obs, act = random_batch(SPEC, 29, gen)
        t = torch.rand(3, 29, generator=gen, dtype=torch.float64) * 0.96 + 0.02
        z = torch.randn(3, 29, SPEC.act_max, generator=gen, dtype=torch.float64)
        loss, _ = stage.objective.loss(obs, act, noise=(t, z))
        opt, sched = stage.optimizers["actors"], stage.schedulers["actors"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        # DESIGN.md 1.5, literally: a_cur for all, then one optimizer step per agent in order.
        with torch.no_grad():
            a_cur = [ref[i](obs[:, i]) for i in range(SPEC.n_agents)]
        for k, agent in enumerate(order):
            d = SPEC.act_dims[agent]
            a = ref[agent](obs[:, agent])
            alpha, sigma = vp.alpha_sigma(t[k])
            x_t = alpha[:, None] * a.detach() + sigma[:, None] * z[k][:, :d]
            cond = narrow_inputs(SPEC, "sequential", order, k, obs,
                                 torch.stack([F.pad(x, (0, SPEC.act_max - x.shape[1])) for x in a_cur], 1))
            with torch.no_grad():
                e = score_single(behavior.net, k, x_t, t[k], cond, first_layer_columns(behavior, k))[:, :d]
                if subtract_noise:
                    e = e - z[k][:, :d]
            slot = a.detach().clone().requires_grad_(True)
            joint = [slot if i == agent else a_cur[i] for i in range(SPEC.n_agents)]
            (g,) = torch.autograd.grad(narrow_q(critic, obs, joint).sum(), slot)
            w = reference_row_weight(weighting, t_draw, t[k])
            loss_k = ((w[:, None] * e * a).sum(-1) - beta * (g * a).sum(-1)).mean()
            ref[agent].opt.zero_grad()
            loss_k.backward()
            ref[agent].opt.step()
            ref[agent].sched.step()
    for agent in range(SPEC.n_agents):
        for i, layer in enumerate(actors.mlp.layers):
            w = layer.weight[agent]
            w = w[ref[agent].cols] if i == 0 else w
            torch.testing.assert_close(w, ref[agent].params[2 * i], rtol=1e-9, atol=1e-11)
            torch.testing.assert_close(layer.bias[agent, 0], ref[agent].params[2 * i + 1],
                                       rtol=1e-9, atol=1e-11)


def test_actors_are_decentralized():
    actors = Actors(SPEC, hidden=8)
    obs = torch.randn(5, 3, SPEC.obs_max) * SPEC.obs_mask()
    base = actors.act(obs)
    changed = obs.clone()
    changed[:, 1] += 1.0 * SPEC.obs_mask()[1]
    out = actors.act(changed)
    assert torch.equal(out[:, 0], base[:, 0]) and torch.equal(out[:, 2], base[:, 2])
    assert not torch.equal(out[:, 1], base[:, 1])
    assert (out * ~SPEC.act_mask()).abs().max() == 0


@pytest.mark.parametrize("method", family())
def test_every_method_takes_a_finite_step(method):
    m = variant(method)
    behavior = None if m.score_mode is None else BehaviorModel(SPEC, m.score_mode, small_cfg("compact"))
    critic = None if m.critic_scope is None else IQLCritic(SPEC, m.critic_scope, CriticConfig(hidden=8))
    actors = Actors(SPEC, m.actor_mode, hidden=8)
    stage = PolicyStage(PolicyObjective(method, actors, PolicyConfig(beta=0.3, steps=2), behavior, critic))
    before = copy.deepcopy(actors.state_dict())
    obs, act = random_batch(SPEC, 16, torch.Generator().manual_seed(0), torch.float32)
    from scoredec.data.tensors import Batch
    metrics = stage.step(Batch(obs, act, torch.zeros(16, 3), obs, torch.zeros(16)), torch.Generator())
    assert all(torch.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(before[k], v) for k, v in actors.state_dict().items())


def test_objective_rejects_mismatched_models():
    behavior = BehaviorModel(SPEC, "marginal", small_cfg("compact"))
    critic = IQLCritic(SPEC, "joint", CriticConfig(hidden=8))
    with pytest.raises(ValueError, match="sequential"):
        PolicyObjective("omsd", Actors(SPEC), PolicyConfig(), behavior, critic)
    with pytest.raises(ValueError, match="method must be"):
        PolicyObjective("td3", Actors(SPEC), PolicyConfig(), behavior, critic)
    joint = BehaviorModel(SPEC, "joint", small_cfg("compact"))
    with pytest.raises(ValueError, match="brpo-jal: a 'joint' behaviour model needs joint actors, got 'decentralized'"):
        PolicyObjective("brpo-jal", Actors(SPEC), PolicyConfig(), joint, critic)
