"""The two-agent multimodal bandit (DESIGN.md 1.8): the decisive small test of OMSD.

Two agents see the fixed observation [1, 1, 1, 1, 1] and emit one action each in [-1, 1];
the team reward is a_1 a_2 and the episode ends after one step. The dataset's joint actions
come from N((m, m), s^2 I) or N((-m, -m), s^2 I) with equal probability, clipped: two
coordination modes whose marginals put half their product mass on miscoordinated pairs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from scoredec.data.schema import MultiAgentDataset

N_AGENTS = 2
OBS_DIM = 5
ACT_DIM = 1
MODE = 0.8
MODE_STD = 0.1


def observations(batch: int, dtype: torch.dtype = torch.float32, device="cpu") -> Tensor:
    """The fixed observation of both agents: [batch, 2, 5] of ones."""
    return torch.ones(batch, N_AGENTS, OBS_DIM, dtype=dtype, device=device)


def reward(actions: Tensor) -> Tensor:
    """Team reward a_1 a_2: actions [..., 2, 1] -> [...]."""
    return actions[..., 0, 0] * actions[..., 1, 0]


def sample_joint_actions(count: int, rng: np.random.Generator, mode: float = MODE,
                         std: float = MODE_STD) -> np.ndarray:
    """[count, 2, 1] joint actions from the two-mode mixture, clipped to [-1, 1]."""
    sign = rng.choice(np.array([-1.0, 1.0]), size=(count, 1, 1))
    actions = sign * mode + std * rng.standard_normal((count, N_AGENTS, ACT_DIM))
    return np.clip(actions, -1.0, 1.0).astype(np.float32)


def make_dataset(count: int = 10_000, seed: int = 0, mode: float = MODE,
                 std: float = MODE_STD) -> MultiAgentDataset:
    """A seeded bandit dataset of `count` one-step episodes."""
    rng = np.random.default_rng(seed)
    actions = sample_joint_actions(count, rng, mode, std)
    obs = np.ones((count, N_AGENTS, OBS_DIM), dtype=np.float32)
    team = actions[:, 0, 0] * actions[:, 1, 0]
    return MultiAgentDataset(
        observations=obs, actions=actions,
        rewards=np.repeat(team[:, None], N_AGENTS, axis=1).astype(np.float32),
        next_observations=obs.copy(),
        terminals=np.ones(count, dtype=bool), timeouts=np.zeros(count, dtype=bool),
        state=None, next_state=None,
        obs_dims=(OBS_DIM,) * N_AGENTS, act_dims=(ACT_DIM,) * N_AGENTS,
        agent_names=("agent_0", "agent_1"), env_id="bandit", quality="multimodal",
        generator="scoredec.envs.bandit.make_dataset", seed=seed, reference_returns=None,
        attrs={"mode": mode, "std": std})


class BanditEnv:
    """The bandit as a batched environment (the rollout interface every env here follows).

    reset(seed) -> obs [B, n, obs_max]; step(actions [B, n, act_max]) -> (obs, rewards [B, n],
    done [B], info). Uniform random actions earn E[a1 a2] = 0 and the best joint action earns 1:
    those are the reference returns that normalize the score."""

    name = "bandit"
    n_agents = N_AGENTS
    obs_dims = (OBS_DIM,) * N_AGENTS
    act_dims = (ACT_DIM,) * N_AGENTS
    episode_length = 1
    reference_returns = {"random": 0.0, "expert": 1.0}

    def __init__(self, num_envs: int, device: str | torch.device = "cpu"):
        self.num_envs, self.device = num_envs, torch.device(device)

    def reset(self, seed: int | None = None) -> Tensor:
        return observations(self.num_envs, device=self.device)

    def step(self, actions: Tensor):
        r = reward(actions.clamp(-1.0, 1.0))
        rewards = r[:, None].expand(self.num_envs, N_AGENTS)
        done = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        return observations(self.num_envs, device=self.device), rewards, done, {}

    @staticmethod
    def episode_return(rewards: Tensor) -> Tensor:
        """rewards [B, T, n] -> the team return [B]."""
        return rewards[:, :, 0].sum(1)
