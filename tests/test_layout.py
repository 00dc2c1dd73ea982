"""Layouts: which condition each model sees, and the round trip between agent and model order."""

import pytest
import torch

from scoredec.layout import ActorLayout, AgentSpec, ScoreLayout, from_stack, to_stack

SPEC = AgentSpec((2, 3, 1), (1, 2, 1))


def test_sequential_condition_is_own_obs_then_earlier_agents_in_order():
    obs = torch.arange(1, 10, dtype=torch.float64).view(1, 3, 3) * SPEC.obs_mask()
    act = -torch.arange(1, 7, dtype=torch.float64).view(1, 3, 2) * SPEC.act_mask()
    lay = ScoreLayout(SPEC, "sequential", order=(2, 0, 1))
    cond = lay.conditions(obs, act)
    assert cond.shape == (3, 1, 3 + 2 * 2)
    mask = lay.in_mask()[:, lay.x_dim:]
    narrow = [cond[k, 0][mask[k]].tolist() for k in range(3)]
    assert narrow[0] == [7.0]                       # agent 2: o_2 only
    assert narrow[1] == [1.0, 2.0, -5.0]            # agent 0: o_0, a_2
    assert narrow[2] == [4.0, 5.0, 6.0, -5.0, -1.0]  # agent 1: o_1, a_2, a_0


def test_targets_and_actions_round_trip():
    act = torch.randn(5, 3, 2) * SPEC.act_mask()
    for mode in ("sequential", "marginal", "joint"):
        lay = ScoreLayout(SPEC, mode, order=(1, 2, 0) if mode == "sequential" else None)
        assert torch.equal(lay.actions_from(lay.targets(act)), act)
    assert torch.equal(from_stack(to_stack(act, (2, 0, 1)), (2, 0, 1)), act)


def test_marginal_and_joint_widths():
    assert ScoreLayout(SPEC, "marginal").cond_dim == 3
    joint = ScoreLayout(SPEC, "joint")
    assert (joint.models, joint.x_dim, joint.cond_dim) == (1, 6, 9)
    assert int(joint.in_mask().sum()) == sum(SPEC.act_dims) + sum(SPEC.obs_dims)
    actor = ActorLayout(SPEC, "joint")
    assert (actor.models, actor.in_dim, actor.out_dim) == (1, 9, 6)


def test_sequential_needs_actions_and_bad_specs_fail():
    lay = ScoreLayout(SPEC, "sequential")
    with pytest.raises(ValueError, match="earlier agents"):
        lay.conditions(torch.zeros(1, 3, 3))
    with pytest.raises(ValueError, match="equal length"):
        AgentSpec((1, 2), (1,))
    with pytest.raises(ValueError, match=">= 1"):
        AgentSpec((0,), (1,))


def test_stage_two_stacks_give_the_agent_major_conditions_and_targets():
    """The stage-2 loss hands the actors' stacks to the score layout as they are: the same
    conditions and targets, to the bit, as going through the agent-major batch."""
    obs = torch.randn(4, 3, 3) * SPEC.obs_mask()
    act = torch.randn(4, 3, 2) * SPEC.act_mask()
    for mode, order in (("sequential", (2, 0, 1)), ("sequential", None), ("marginal", None), ("joint", None)):
        lay = ScoreLayout(SPEC, mode, order=order)
        actor = ActorLayout(SPEC, "joint" if mode == "joint" else "decentralized")
        o, y = actor.inputs(obs), actor.inputs(act)
        assert torch.equal(lay.conditions_from_models(o, y), lay.conditions(obs, act)), (mode, order)
        assert torch.equal(lay.targets_from_models(y), lay.targets(act)), (mode, order)
    with pytest.raises(ValueError, match="earlier agents"):
        ScoreLayout(SPEC, "sequential").conditions_from_models(to_stack(obs, (0, 1, 2)))
