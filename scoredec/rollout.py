"""Decentralized evaluation (DESIGN.md 1.6): a_i = pi_i(o_i), batched over environments.

A run is evaluated in the environment it was trained on: ``trained_env`` reads the task, the
agent count and the reference returns that the run's products recorded from their dataset
(scoredec/pipeline.py data_origin), and refuses in one line to build another task or count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from scoredec.envs import env_names, make_env
from scoredec.envs.scenario import canonical_task, default_agents, env_kwargs as task_env_kwargs


def normalized(returns: np.ndarray, reference: dict | None) -> np.ndarray | None:
    """100 (R - R_random) / (R_expert - R_random) (DESIGN.md 1.7); None without references."""
    if not reference:
        return None
    return 100.0 * (returns - reference["random"]) / (reference["expert"] - reference["random"])


def env_label(env_id: str, n_agents: int | None) -> str:
    """'spread (4 agents)'; the bare id at the task's default count (or an unknown count)."""
    if n_agents is None or n_agents == default_agents(env_id):
        return env_id
    return f"{env_id} ({n_agents} agents)"


@dataclass(frozen=True)
class TrainedEnv:
    """The environment a run was trained on, as `evaluate` builds it."""

    env_id: str
    n_agents: int | None
    """Learned agents (None: not recorded and not known from the actors)."""
    env_kwargs: dict
    """make_env keywords ({"n_agents": 4} for a 4-agent spread run)."""
    reference_returns: dict | None
    """The dataset's references (None: the environment's own)."""

    @property
    def label(self) -> str:
        """'spread (4 agents)'; the bare id at the task's default count."""
        return env_label(self.env_id, self.n_agents)

    def evaluate_kwargs(self) -> dict:
        """env_id, env_kwargs and reference_returns for `evaluate`."""
        return {"env_id": self.env_id, "env_kwargs": dict(self.env_kwargs),
                "reference_returns": self.reference_returns}


def _recorded_agents(meta: dict) -> int | None:
    """The run's agent count: recorded with its dataset, else the width list of its actors or
    behaviour model (products saved before issue 18)."""
    scenario = meta.get("scenario")
    if isinstance(scenario, dict) and isinstance(scenario.get("n_agents"), int):
        return scenario["n_agents"]
    for key in ("actors", "spec"):
        dims = (meta.get(key) or {}).get("obs_dims")
        if isinstance(dims, list) and dims:
            return len(dims)
    return None


def trained_env(meta: dict, *, task: str | None = None, n_agents: int | None = None,
                where: str = "the run") -> TrainedEnv:
    """The environment of a run from its product meta (actors.json / behavior.json "meta").

    task, n_agents: what the caller asks for (None: the run's). A run whose recorded task is a
    known environment is evaluated only there and only with its agent count: another one is a
    ValueError naming both. task is taken when the run records none, or one this package does
    not know (a dataset imported from elsewhere)."""
    recorded = meta.get("env_id")
    n = _recorded_agents(meta)
    known = recorded is not None and canonical_task(recorded) in env_names()
    if task is not None and known and canonical_task(task) != canonical_task(recorded):
        what = recorded if n is None else f"{recorded} with {n} agents"
        raise ValueError(f"{where} was trained on {what}; it cannot be evaluated on {task}: a "
                         "policy acts only in the task it was trained on (leave out --task)")
    env_id = recorded if task is None or known else task
    if env_id is None:
        raise ValueError(f"{where} does not record its environment: pass --task")
    if n_agents is not None and n is not None and n_agents != n:
        raise ValueError(f"{where} was trained on {env_id} with {n} agents; it cannot be "
                         f"evaluated with {n_agents}: a policy acts only with the agent count it "
                         "was trained on (leave out --agents)")
    n = n if n is not None else n_agents
    refs = meta.get("reference_returns") if known or task is None else None
    return TrainedEnv(env_id, n, task_env_kwargs(env_id, n), refs)


def check_fits(spec, env, env_id: str) -> None:
    """ValueError in one line unless the policy's agents and widths (spec: AgentSpec) are the
    environment's: a policy for another task or count would fail deep inside a tensor op."""
    have = (spec.n_agents, tuple(spec.obs_dims), tuple(spec.act_dims))
    want = (env.n_agents, tuple(env.obs_dims), tuple(env.act_dims))
    if have != want:
        raise ValueError(f"the policy takes {have[0]} agents with observation widths "
                         f"{list(have[1])} and action widths {list(have[2])}, but {env_id} has "
                         f"{want[0]} agents with observation widths {list(want[1])} and action "
                         f"widths {list(want[2])}: evaluate it on the task and agent count it "
                         "was trained on")


@torch.no_grad()
def evaluate(actors, env_id: str, episodes: int = 10, num_envs: int = 10, seed: int = 0,
             device: str | torch.device = "cpu", env_kwargs: dict | None = None,
             reference_returns: dict | None = None, spec=None) -> dict:
    """Roll out `episodes` episodes in rounds of `num_envs` parallel environments.

    actors: a callable obs [B, n, obs_max] -> actions [B, n, act_max] (scoredec.actors.Actors
    is decentralized by construction). env_kwargs: make_env keywords (TrainedEnv.env_kwargs).
    reference_returns: what normalizes the score (the dataset's; None: the environment's).
    spec: the policy's AgentSpec, checked against the environment first (default: actors.spec
    where the callable has one). Returns mean/std return and normalized score."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be >= 1, got {episodes}, {num_envs}")
    spec = getattr(actors, "spec", None) if spec is None else spec
    returns = []
    rounds = math.ceil(episodes / num_envs)
    for r in range(rounds):
        env = make_env(env_id, num_envs, device=device, **(env_kwargs or {}))
        if r == 0 and spec is not None:
            check_fits(spec, env, env_id)
        obs = env.reset(seed=seed + r)
        rewards = []
        for _ in range(env.episode_length):
            obs, rew, done, _ = env.step(actors(obs.to(torch.float32)))
            rewards.append(rew)
            if bool(done.all()):
                break
        returns.append(env.episode_return(torch.stack(rewards, 1)).cpu().numpy())
    returns = np.concatenate(returns)[:episodes].astype(np.float64)
    reference = env.reference_returns if reference_returns is None else reference_returns
    out = {"env": env_id, "episodes": int(len(returns)), "return_mean": float(returns.mean()),
           "return_std": float(returns.std()), "returns": returns.tolist(),
           "reference_returns": reference}
    if env_kwargs:
        out["env_kwargs"] = dict(env_kwargs)
    score = normalized(returns, reference)
    if score is not None:
        out["normalized_mean"] = float(score.mean())
        out["normalized_std"] = float(score.std())
    return out
