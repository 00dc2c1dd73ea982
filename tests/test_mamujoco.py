"""The MaMuJoCo wrapper (scoredec.envs.mamujoco) and the factory's random MaMuJoCo data.

gymnasium-robotics and mujoco are optional: without them every test here but the
missing-package one is skipped."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch

from scoredec.envs import MAMUJOCO_TASKS, make_env

HAVE_MUJOCO = all(importlib.util.find_spec(m) is not None for m in ("mujoco", "gymnasium_robotics"))
needs_mujoco = pytest.mark.skipif(not HAVE_MUJOCO, reason="needs the 'mujoco' extra")

# (agents, obs dims, act dims, state dim) with agent_obsk=0, global_categories=()
LAYOUTS = {
    "halfcheetah-2x3": (2, (6, 6), (3, 3), 17),
    "ant-2x4": (2, (50, 50), (4, 4), 105),
    "hopper-3x1": (3, (2, 2, 2), (1, 1, 1), 11),
    "walker2d-2x3": (2, (6, 6), (3, 3), 17),
    "halfcheetah-6x1": (6, (2,) * 6, (1,) * 6, 17),
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # mujoco writes MUJOCO_LOG.TXT into the working directory; the cache must not be ~/.cache
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCOREDEC_CACHE", str(tmp_path / "cache"))


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)  # import now raises
    with pytest.raises(ImportError, match=r"optional package '(gymnasium-robotics|mujoco)'.*scoredec\[mujoco\]"):
        make_env("halfcheetah-2x3", 1)


def test_task_list_matches_wrapper():
    from scoredec.envs import mamujoco

    assert tuple(mamujoco.TASKS) == MAMUJOCO_TASKS
    with pytest.raises(ValueError, match="unknown MaMuJoCo task"):
        mamujoco.MaMuJoCoEnv("cheetah-9x9", 1)


@needs_mujoco
@pytest.mark.parametrize("task", MAMUJOCO_TASKS)
def test_shapes_and_dims(task):
    n, obs_dims, act_dims, state_dim = LAYOUTS[task]
    env = make_env(task, 3)
    assert (env.n_agents, env.obs_dims, env.act_dims, env.state_dim) == (n, obs_dims, act_dims, state_dim)
    assert env.episode_length == 1000
    obs = env.reset(seed=0)
    assert obs.shape == (3, n, max(obs_dims)) and obs.dtype == torch.float32
    obs, rew, done, info = env.step(env.sample_random_actions())
    assert obs.shape == (3, n, max(obs_dims)) and rew.shape == (3, n) and done.shape == (3,)
    assert rew.dtype == torch.float32 and done.dtype == torch.bool
    assert info["state"].shape == (3, state_dim)
    assert torch.equal(rew, rew[:, :1].expand_as(rew))  # one shared team reward
    expected = {"halfcheetah-2x3": {"random": -283.97, "expert": 3568.81}}.get(task)
    assert env.reference_returns == expected


@needs_mujoco
def test_halfcheetah_local_observations_are_own_joints():
    env = make_env("halfcheetah-2x3", 1)
    obs = env.reset(seed=1)[0].numpy()
    qpos = env._envs[0].single_agent_env.unwrapped.data.qpos
    qvel = env._envs[0].single_agent_env.unwrapped.data.qvel
    # MaMuJoCo's partition: agent 0 = back foot, shin, thigh (joints 5, 4, 3), agent 1 = front
    # foot, shin, thigh (8, 7, 6); per joint (angle, angular velocity); nothing global
    for agent, joints in ((0, [5, 4, 3]), (1, [8, 7, 6])):
        want = np.stack([qpos[joints], qvel[joints]], 1).reshape(-1)
        np.testing.assert_allclose(obs[agent], want, rtol=1e-6, atol=1e-7)


@needs_mujoco
def test_random_returns_finite_and_near_reference():
    env = make_env("halfcheetah-2x3", 4)
    env.reset(seed=0)
    rewards = []
    while True:
        _, rew, done, _ = env.step(env.sample_random_actions())
        rewards.append(rew)
        if bool(done.all()):
            break
    assert len(rewards) == 1000
    R = env.episode_return(torch.stack(rewards, 1))
    assert R.shape == (4,) and torch.isfinite(R).all()
    assert -700 < float(R.mean()) < 100, R  # the published random reference is -283.97


@needs_mujoco
def test_per_env_done_masking():
    env = make_env("hopper-3x1", 6)
    obs = env.reset(seed=0)
    rewards, ends = [], {}
    last_obs = obs.clone()
    step = 0
    while True:
        was_done = env.done.copy()
        obs, rew, done, info = env.step(env.sample_random_actions())
        step += 1
        rewards.append(rew)
        finished_before = torch.from_numpy(was_done)
        assert torch.equal(info["active"], ~finished_before)
        # finished copies are frozen: zero reward, same observation, still done
        assert (rew[finished_before] == 0).all()
        assert torch.equal(obs[finished_before], last_obs[finished_before])
        assert done[finished_before].all()
        for b in torch.nonzero(done & ~finished_before).flatten().tolist():
            ends[b] = step
        last_obs = obs.clone()
        if bool(done.all()):
            break
    lengths = sorted(ends.values())
    assert len(ends) == 6 and lengths[0] < lengths[-1], "random hoppers fall at different times"
    assert all(env.t[b] == ends[b] for b in ends)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(env.sample_random_actions())
    per_step = torch.stack(rewards, 1)  # [B, T, n]
    assert torch.equal(env.episode_return(per_step), per_step[:, :, 0].sum(1))


@needs_mujoco
def test_time_limit_truncates_and_partial_reset():
    env = make_env("halfcheetah-2x3", 2, episode_length=5)
    env.reset(seed=0)
    for _ in range(5):
        _, _, done, info = env.step(env.sample_random_actions())
    assert done.all() and info["truncated"].all() and not info["terminated"].any()
    env.reset_envs([1])
    _, rew, done, info = env.step(env.sample_random_actions())
    assert done.tolist() == [True, False] and info["active"].tolist() == [False, True]
    assert rew[0].eq(0).all() and rew[1].ne(0).all()


@needs_mujoco
def test_reset_seeded_and_state_roundtrip_exact():
    env = make_env("ant-2x4", 2)
    a = env.reset(seed=5)
    b = env.reset(seed=5)
    c = env.reset(seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)
    gen = torch.Generator().manual_seed(0)
    acts = [env.sample_random_actions(gen) for _ in range(20)]
    for t in range(10):
        env.step(acts[t])
    saved = env.get_state()
    first = [env.step(acts[t]) for t in range(10, 20)]
    env.set_state(saved)
    second = [env.step(acts[t]) for t in range(10, 20)]
    for (o1, r1, d1, _), (o2, r2, d2, _) in zip(first, second):
        assert torch.equal(o1, o2) and torch.equal(r1, r2) and torch.equal(d1, d2)


@needs_mujoco
def test_bad_actions_rejected():
    env = make_env("halfcheetah-2x3", 2)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(torch.zeros(2, 2, 3))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        env.step(torch.full((2, 2, 3), float("nan")))


@needs_mujoco
def test_factory_random_dataset_valid_and_seeded(tmp_path):
    from scoredec.datagen.factory import make_dataset, make_dataset_file
    from scoredec.data.hdf5 import read_dataset

    a = make_dataset("hopper-3x1", "random", episodes=7, seed=3, progress=False)
    b = make_dataset("hopper-3x1", "random", episodes=7, seed=3, progress=False)
    c = make_dataset("hopper-3x1", "random", episodes=7, seed=4, progress=False)
    assert a.equals(b) and not a.equals(c)
    ends = a.episode_boundaries()
    assert len(ends) == 7 and ends[-1] == a.n_transitions - 1
    assert a.terminals.sum() == 7 and not a.timeouts.any()  # random hoppers fall
    inside = np.setdiff1d(np.arange(a.n_transitions - 1), ends)
    np.testing.assert_array_equal(a.next_observations[inside], a.observations[inside + 1])

    out = tmp_path / "hc.h5"
    ds = make_dataset_file("halfcheetah-2x3", "random", out, episodes=1, seed=0, progress=False)
    assert ds.n_transitions == 1000 and ds.timeouts[-1] and not ds.terminals.any()
    assert ds.observations.shape == (1000, 2, 6) and ds.state.shape == (1000, 17)
    assert np.abs(ds.actions).max() <= 1.0
    back = read_dataset(out)
    assert back.equals(ds)
    assert (tmp_path / "hc.card.json").is_file()


@needs_mujoco
def test_factory_trained_levels_need_behaviour_policies():
    from scoredec.datagen.factory import make_dataset

    with pytest.raises(FileNotFoundError, match="scoredec data train-behaviour halfcheetah-2x3"):
        make_dataset("halfcheetah-2x3", "medium", episodes=1, progress=False)
