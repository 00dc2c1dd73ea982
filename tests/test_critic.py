"""Stage 1b: IQL losses and the critic's action gradient against hand-written float64 versions."""

import copy

import pytest
import torch

from scoredec.critic import CriticConfig, IQLCritic
from scoredec.layout import AgentSpec

from reference import mlp
from test_nets import random_batch

SPEC = AgentSpec((4, 6, 3), (2, 1, 3))


def narrow(x, dims):
    return torch.cat([x[:, i, :d] for i, d in enumerate(dims)], -1)


def columns(net, k):
    return net.layers[0].in_mask[k, :, 0].bool().nonzero()[:, 0]


def joint_q(net, k, obs, act):
    return mlp(net, k, torch.cat([narrow(obs, SPEC.obs_dims), narrow(act, SPEC.act_dims)], -1),
               columns(net, k))[:, 0]


@pytest.mark.parametrize("expectile", [0.5, 0.7, 0.9])
def test_joint_iql_losses_match_the_formulas(expectile):
    torch.manual_seed(0)
    cfg = CriticConfig(hidden=16, layers=2, expectile=expectile, gamma=0.97)
    critic = IQLCritic(SPEC, "joint", cfg).double()
    with torch.no_grad():
        for p in critic.q_target.parameters():
            p.add_(0.05 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(1)
    obs, act = random_batch(SPEC, 41, gen)
    next_obs, _ = random_batch(SPEC, 41, gen)
    rewards = torch.randn(41, 3, generator=gen, dtype=torch.float64)
    terminals = (torch.rand(41, generator=gen) < 0.3).double()
    v_loss, q_loss = critic.losses(obs, act, rewards, next_obs, terminals)

    v = lambda o: mlp(critic.v, 0, narrow(o, SPEC.obs_dims), columns(critic.v, 0))[:, 0]
    q_min = torch.minimum(joint_q(critic.q_target, 0, obs, act), joint_q(critic.q_target, 1, obs, act))
    u = q_min - v(obs)
    want_v = (torch.abs(expectile - (u < 0).double()) * u**2).mean()
    target = rewards[:, 0] + 0.97 * (1 - terminals) * v(next_obs)
    want_q = 0.5 * sum(((joint_q(critic.q, h, obs, act) - target) ** 2).mean() for h in (0, 1))
    torch.testing.assert_close(v_loss, want_v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(q_loss, want_q, rtol=1e-10, atol=1e-12)


def test_joint_action_gradient_is_the_gradient_of_mean_target_q():
    torch.manual_seed(0)
    critic = IQLCritic(SPEC, "joint", CriticConfig(hidden=16)).double()
    obs, act = random_batch(SPEC, 13, torch.Generator().manual_seed(2))
    grad, q = critic.action_gradient(obs, act)
    a = act.clone().requires_grad_(True)
    want_q = 0.5 * (joint_q(critic.q_target, 0, obs, a) + joint_q(critic.q_target, 1, obs, a))
    (want,) = torch.autograd.grad(want_q.sum(), a)
    torch.testing.assert_close(grad, want * SPEC.act_mask(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(q[0], want_q.detach(), rtol=1e-10, atol=1e-12)


def test_local_critics_see_only_their_agent():
    critic = IQLCritic(SPEC, "local", CriticConfig(hidden=8)).double()
    obs, act = random_batch(SPEC, 7, torch.Generator().manual_seed(3))
    grad, _ = critic.action_gradient(obs, act)
    changed = act.clone()
    changed[:, 1] += 0.3 * SPEC.act_mask()[1]
    grad2, _ = critic.action_gradient(obs, changed)
    torch.testing.assert_close(grad2[:, 0], grad[:, 0])
    torch.testing.assert_close(grad2[:, 2], grad[:, 2])
    rewards = torch.arange(21, dtype=torch.float64).view(7, 3)
    torch.testing.assert_close(critic.rewards(rewards), rewards.t())


def test_polyak_update():
    critic = IQLCritic(SPEC, "joint", CriticConfig(hidden=8, polyak=0.25))
    with torch.no_grad():
        for p in critic.q.parameters():
            p.add_(1.0)
    before = copy.deepcopy(critic.q_target.state_dict())
    critic.update_targets()
    for (name, t), (_, q) in zip(critic.q_target.state_dict().items(), critic.q.state_dict().items()):
        if name.endswith("in_mask"):
            continue
        torch.testing.assert_close(t, 0.75 * before[name] + 0.25 * q)


def test_unknown_scope_is_rejected():
    with pytest.raises(ValueError, match="scope"):
        IQLCritic(SPEC, "global", CriticConfig())
