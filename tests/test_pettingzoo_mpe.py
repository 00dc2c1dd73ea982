"""The built-in MPE tasks as PettingZoo ParallelEnvs: PettingZoo's own API test, and the same
episodes as the batched torch environments (issue 16)."""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("pettingzoo")
from pettingzoo.test import parallel_api_test  # noqa: E402

from scoredec.actors import Actors  # noqa: E402
from scoredec.datagen.factory import _agent_names  # noqa: E402
from scoredec.envs.mpe import make_mpe  # noqa: E402
from scoredec.envs.pettingzoo_mpe import parallel_env  # noqa: E402
from scoredec.evaluation import evaluate_env  # noqa: E402
from scoredec.layout import AgentSpec  # noqa: E402
from scoredec.rollout import evaluate  # noqa: E402

TASKS = ("spread", "tag", "world")


@pytest.mark.parametrize("task", TASKS)
def test_pettingzoo_parallel_api_test_passes(task):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(parallel_env(task), num_cycles=60)
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("task", TASKS)
def test_agents_and_first_observations_are_the_batched_envs(task):
    env, batched = parallel_env(task), make_mpe(task, 1)
    assert env.possible_agents == list(_agent_names(task, batched.n_agents))
    obs, _ = env.reset(seed=11)
    want = batched.reset(seed=11)[0].numpy()
    for i, agent in enumerate(env.possible_agents):
        assert obs[agent].dtype == np.float32
        np.testing.assert_array_equal(obs[agent], want[i])
        assert env.observation_space(agent).contains(obs[agent])


@pytest.mark.parametrize("task", ("spread", "tag"))
def test_evaluation_through_the_wrapper_equals_the_batched_rollout(task):
    """Episode e reset with seed + e in both: the same returns (float32 sums vs float64)."""
    env = parallel_env(task)
    dims = tuple(env.observation_space(a).shape[0] for a in env.possible_agents)
    torch.manual_seed(0)
    actors = Actors(AgentSpec(dims, (2,) * len(dims)), hidden=16)
    batched = evaluate(actors, task, episodes=3, num_envs=1, seed=5)
    wrapped = evaluate_env(actors, lambda: parallel_env(task), episodes=3, num_envs=2, seed=5)
    np.testing.assert_allclose(wrapped["returns"], batched["returns"], rtol=1e-5)
    assert wrapped["score"] == "raw" and wrapped["agents"] == env.possible_agents


def test_episode_ends_by_truncation_after_25_steps():
    env = parallel_env("spread")
    env.reset(seed=0)
    for step in range(25):
        _, rewards, terms, truncs, _ = env.step({a: np.zeros(2, np.float32) for a in env.agents})
        assert not any(terms.values()) and all(truncs.values()) == (step == 24)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})
