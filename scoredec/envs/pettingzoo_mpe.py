"""The built-in MPE tasks (spread, tag, world) as PettingZoo ParallelEnvs.

A thin wrapper around one copy (B = 1) of the batched torch environment in scoredec.envs.mpe:
the same physics, rewards and seeding, so `reset(seed=s)` starts the episode that
`make_mpe(task, 1).reset(seed=s)` starts. Needs the optional package pettingzoo
(`pip install scoredec[pettingzoo]`).

    from scoredec.envs.pettingzoo_mpe import parallel_env
    env = parallel_env("spread")
    obs, infos = env.reset(seed=0)            # {"agent_0": float32 [18], ...}
    obs, rewards, terminations, truncations, infos = env.step(
        {agent: env.action_space(agent).sample() for agent in env.agents})

Agents are named as the dataset generator names them (agent_i in spread, predator_i in tag
and world; the scripted prey is part of the environment), so a run trained on a generated
dataset evaluates on these with `scoredec evaluate RUN --env
scoredec.envs.pettingzoo_mpe:spread`. Episodes end by truncation after 25 steps.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from scoredec.envs.mpe import make_mpe

try:
    from gymnasium import spaces
    from pettingzoo import ParallelEnv
except ImportError as err:  # pragma: no cover - depends on the install
    raise ImportError("scoredec.envs.pettingzoo_mpe needs the optional packages pettingzoo and "
                      "gymnasium: pip install 'scoredec[pettingzoo]'") from err

__all__ = ["MPEParallelEnv", "parallel_env", "spread", "tag", "world"]


def agent_names(task: str, n: int) -> tuple[str, ...]:
    """The learned agents' names, as scoredec's dataset generator writes them."""
    role = "agent" if task == "spread" else "predator"
    return tuple(f"{role}_{i}" for i in range(n))


class MPEParallelEnv(ParallelEnv):
    """One MPE world as a PettingZoo ParallelEnv (the learned agents only)."""

    metadata = {"name": "scoredec_mpe_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(self, task: str = "spread", n_agents: int | None = None,
                 action_layout: str = "box2"):
        self._env = make_mpe(task, 1, device="cpu", n_agents=n_agents, action_layout=action_layout)
        self.task = self._env.name
        self.render_mode = None
        self.max_cycles = self._env.episode_length
        self.reference_returns = dict(self._env.reference_returns)
        self.possible_agents = list(agent_names(self.task, self._env.n_agents))
        self.agents: list[str] = []
        self._obs_spaces = {a: spaces.Box(-np.inf, np.inf, (d,), np.float32)
                            for a, d in zip(self.possible_agents, self._env.obs_dims)}
        self._act_spaces = {a: spaces.Box(-1.0, 1.0, (d,), np.float32)
                            for a, d in zip(self.possible_agents, self._env.act_dims)}

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str):
        return self._obs_spaces[agent]

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str):
        return self._act_spaces[agent]

    def _obs_dict(self, obs: torch.Tensor) -> dict[str, np.ndarray]:
        rows = obs[0].numpy().astype(np.float32)
        return {a: rows[i].copy() for i, a in enumerate(self.possible_agents)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        """A new episode; seed reseeds the world's generator, None continues its stream."""
        obs = self._env.reset(seed=seed)
        self.agents = list(self.possible_agents)
        return self._obs_dict(obs), {a: {} for a in self.agents}

    def step(self, actions: dict):
        """actions: {agent: [act_dim] in the Box}; a missing agent acts with zeros."""
        if not self.agents:
            raise RuntimeError("the episode has ended (25 steps); call reset()")
        a = torch.zeros(1, self._env.n_agents, self._env.act_dim)
        for i, agent in enumerate(self.possible_agents):
            if agent in actions:
                a[0, i] = torch.as_tensor(np.asarray(actions[agent], np.float32).reshape(-1))
        obs, rew, done, _ = self._env.step(a)
        ended = bool(done[0])
        agents = self.agents
        observations = self._obs_dict(obs)
        rewards = {x: float(rew[0, i]) for i, x in enumerate(self.possible_agents)}
        terminations = {x: False for x in agents}
        truncations = {x: ended for x in agents}
        infos = {x: {} for x in agents}
        if ended:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        pass


def parallel_env(task: str = "spread", **kwargs) -> MPEParallelEnv:
    """The PettingZoo entry point: one world of `task` (spread, tag, world)."""
    return MPEParallelEnv(task, **kwargs)


def spread() -> MPEParallelEnv:
    """Factory for `scoredec evaluate RUN --env scoredec.envs.pettingzoo_mpe:spread`."""
    return MPEParallelEnv("spread")


def tag() -> MPEParallelEnv:
    return MPEParallelEnv("tag")


def world() -> MPEParallelEnv:
    return MPEParallelEnv("world")
