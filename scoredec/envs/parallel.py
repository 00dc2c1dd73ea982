"""A user's PettingZoo ParallelEnvs behind scoredec's batched arrays, for decentralized
evaluation (`scoredec evaluate RUN --env module:factory`, scoredec.evaluation.evaluate_env).

A run's actors read observations [B, n, obs_max] (zero-padded beyond each agent's width) and
write actions [B, n, act_max] in [-1, 1], agents in the order of the dataset they were trained
on (docs/dataset_schema.md). `ParallelEnvBatch` steps B copies of the user's environment and
converts both ways: each agent's observation is flattened into its own row, each agent's
action is mapped linearly from [-1, 1] onto its Box's bounds. Before any step it checks that
the environment's agents and their observation and action sizes are the ones the run was
trained on, and names the agent and the sizes when they are not.

Nothing here imports pettingzoo: any object with the ParallelEnv methods works.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["EnvMismatchError", "ParallelEnvBatch", "load_factory", "make_envs",
           "action_to_env", "action_from_env"]


class EnvMismatchError(ValueError):
    """The environment does not fit the run (agents, observation or action sizes, spaces)."""


# ------------------------------------------------------------------------ the factory

def load_factory(spec: str) -> Callable[..., Any]:
    """'package.module:factory' or 'path/to/file.py:factory' -> the callable.

    A dotted module is imported with the working directory on sys.path (as `python -m` does),
    so a module next to where the command runs is found."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--env {spec!r}: expected MODULE:FACTORY or FILE.py:FACTORY "
                         "(a function returning a PettingZoo ParallelEnv or a list of them)")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ValueError(f"--env {spec!r}: no such file {path}")
            mod_spec = importlib.util.spec_from_file_location(f"scoredec_user_env_{path.stem}", path)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--env {spec!r}: cannot import {module_name!r}: {err}") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--env {spec!r}: {module_name!r} has no callable {attr!r}")
    return factory


def _is_parallel_env(obj: Any) -> bool:
    return all(hasattr(obj, name) for name in ("possible_agents", "reset", "step",
                                               "observation_space", "action_space"))


def make_envs(env: Any, num_envs: int) -> list:
    """The environments to step side by side, from what the user passed:

    a ParallelEnv (one copy: episodes run one after another), a list/tuple of them, or a
    factory (a callable, or a 'module:factory' string) returning either. A factory that
    returns one environment is called until there are num_envs copies (it must return a new
    one per call; if it returns the same object, that one copy is used)."""
    if isinstance(env, str):
        env = load_factory(env)
    if _is_parallel_env(env):
        envs = [env]
    elif isinstance(env, (list, tuple)):
        envs = list(env)
    elif callable(env):
        first = env()
        if isinstance(first, (list, tuple)):
            envs = list(first)
        else:
            envs = [first]
            while len(envs) < num_envs:
                more = env()
                if more is first:
                    break
                envs.append(more)
    else:
        raise TypeError(f"env must be a PettingZoo ParallelEnv, a list of them, or a factory; "
                        f"got {type(env).__name__}")
    if not envs:
        raise EnvMismatchError("the environment factory returned no environments")
    for i, e in enumerate(envs):
        if not _is_parallel_env(e):
            raise EnvMismatchError(f"environment {i} is a {type(e).__name__}, not a PettingZoo "
                                   "ParallelEnv (possible_agents, reset, step, observation_space, "
                                   "action_space)")
    return envs


# ------------------------------------------------------------------------ actions

def _bounds(space) -> tuple[np.ndarray, np.ndarray]:
    low = np.asarray(space.low, np.float64).reshape(-1)
    high = np.asarray(space.high, np.float64).reshape(-1)
    return low, high


def _rescaled_dims(space) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A Box's flat bounds, which dims are bounded, and which of those are rescaled (bounded and
    not already [-1, 1]): what action_to_env and action_from_env map between."""
    low, high = _bounds(space)
    finite = np.isfinite(low) & np.isfinite(high)
    unit = (low == -1.0) & (high == 1.0)
    return low, high, finite, finite & ~unit


def action_to_env(action: np.ndarray, space) -> np.ndarray:
    """An actor's action in [-1, 1] (flat, the agent's act_dim) -> the env's Box action:
    low + (a + 1) (high - low) / 2 on each bounded dim, unchanged where a bound is infinite
    (and exactly unchanged when the Box is [-1, 1]), in the Box's shape and dtype."""
    a = np.asarray(action, np.float64).reshape(-1)
    low, high, finite, scale = _rescaled_dims(space)
    out = a.copy()
    out[scale] = low[scale] + (a[scale] + 1.0) * 0.5 * (high[scale] - low[scale])
    out[finite] = np.clip(out[finite], low[finite], high[finite])
    return out.reshape(space.shape).astype(space.dtype, copy=False)


def action_from_env(action: np.ndarray, space) -> np.ndarray:
    """The inverse of action_to_env: an env Box action -> float32 in [-1, 1] (flat), for
    writing a dataset from one's own episodes (the schema stores actions in [-1, 1])."""
    u = np.asarray(action, np.float64).reshape(-1)
    low, high, _, scale = _rescaled_dims(space)
    out = u.copy()
    out[scale] = 2.0 * (u[scale] - low[scale]) / (high[scale] - low[scale]) - 1.0
    return out.astype(np.float32)


# ------------------------------------------------------------------------ the batch

def _size(space) -> int | None:
    shape = getattr(space, "shape", None)
    return None if shape is None else int(math.prod(shape))


class ParallelEnvBatch:
    """B ParallelEnvs stepped side by side as scoredec's arrays.

    obs_dims / act_dims: the run's per-agent widths (its dataset's); agent_names: the
    dataset's agent names when known. Environment agents are matched to the dataset's by name
    when the names are the same set, else by position in possible_agents (with a warning when
    the names differ)."""

    def __init__(self, envs: Sequence, obs_dims: Sequence[int], act_dims: Sequence[int],
                 agent_names: Sequence[str] | None = None):
        self.envs = list(envs)
        self.obs_dims, self.act_dims = tuple(obs_dims), tuple(act_dims)
        self.n_agents = len(self.obs_dims)
        self.obs_max, self.act_max = max(self.obs_dims), max(self.act_dims)
        self.agents = self._match_agents(self.envs[0], agent_names)
        self._dataset_names = tuple(agent_names) if agent_names else None
        for b, env in enumerate(self.envs):
            self._check_spaces(env, b)
        self.num_envs = len(self.envs)
        self._live: list[set] = [set() for _ in self.envs]
        self.active = np.zeros(0, bool)  # copies whose episode runs, set by reset

    # -------------------------------------------------------------- checks
    def _match_agents(self, env, names: Sequence[str] | None) -> tuple:
        found = list(env.possible_agents)
        n = self.n_agents
        if len(found) != n:
            raise EnvMismatchError(
                f"the environment has {len(found)} agents {found}, but the run was trained on "
                f"{n}" + (f" {list(names)}" if names else ""))
        if names and set(map(str, found)) == set(names):
            by_name = {str(a): a for a in found}
            return tuple(by_name[name] for name in names)
        if names and list(map(str, found)) != list(names):
            log.warning("environment agents %s differ from the dataset's %s: matched by position",
                        found, list(names))
        return tuple(found)

    def _theirs(self, i: int) -> str:
        """'agent 1' or "agent 1 'drone'": the dataset's agent i."""
        name = self._dataset_names[i] if self._dataset_names else None
        return f"agent {i}" + (f" {name!r}" if name is not None and name != str(self.agents[i]) else "")

    def _check_spaces(self, env, b: int) -> None:
        where = "" if b == 0 else f" (environment copy {b})"
        if list(env.possible_agents) != list(self.envs[0].possible_agents):
            raise EnvMismatchError(f"environment copy {b} has agents {list(env.possible_agents)}, "
                                   f"copy 0 has {list(self.envs[0].possible_agents)}")
        for i, agent in enumerate(self.agents):
            obs_space, act_space = env.observation_space(agent), env.action_space(agent)
            size = _size(obs_space)
            if size is None:
                raise EnvMismatchError(f"agent {agent!r}{where}: observation space "
                                       f"{obs_space} has no shape (scoredec's actors read a flat "
                                       "vector)")
            if size != self.obs_dims[i]:
                raise EnvMismatchError(f"agent {agent!r}{where}: observation size {size}, but the "
                                       f"run's dataset has {self.obs_dims[i]} for {self._theirs(i)}")
            if not (hasattr(act_space, "low") and hasattr(act_space, "high")):
                raise EnvMismatchError(f"agent {agent!r}{where}: action space {act_space} is not a "
                                       "Box; scoredec's actors output continuous actions in [-1, 1]")
            size = _size(act_space)
            if size != self.act_dims[i]:
                raise EnvMismatchError(f"agent {agent!r}{where}: action size {size}, but the run's "
                                       f"dataset has {self.act_dims[i]} for {self._theirs(i)}")

    # -------------------------------------------------------------- stepping
    def _fill(self, out: np.ndarray, b: int, obs: dict) -> None:
        for i, agent in enumerate(self.agents):
            if agent not in obs:
                continue  # a finished agent: its row stays zero and its action is not sent
            o = np.asarray(obs[agent], np.float32).reshape(-1)
            if o.size != self.obs_dims[i]:
                raise EnvMismatchError(f"agent {agent!r}: the environment returned an observation "
                                       f"of size {o.size}, its space and the run say "
                                       f"{self.obs_dims[i]}")
            out[b, i, : o.size] = o

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Start an episode in the first len(seeds) copies, copy b with seeds[b].
        Returns obs [len(seeds), n, obs_max] float32."""
        if not 1 <= len(seeds) <= self.num_envs:
            raise ValueError(f"reset needs 1..{self.num_envs} seeds, got {len(seeds)}")
        obs = np.zeros((len(seeds), self.n_agents, self.obs_max), np.float32)
        for b, seed in enumerate(seeds):
            out = self.envs[b].reset(seed=int(seed))
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], dict)):
                raise EnvMismatchError("reset(seed=...) must return (observations, infos), two "
                                       f"dicts keyed by agent (PettingZoo >= 1.24); got "
                                       f"{type(out).__name__}")
            first = out[0]
            self._live[b] = set(self.envs[b].agents)
            self._fill(obs, b, first)
        self.active = np.ones(len(seeds), bool)
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """actions [k, n, act_max] in [-1, 1] for the k copies reset last. Steps the copies
        whose episode is running; returns obs [k, n, obs_max], rewards [k, n] float64 (0 for a
        finished agent or copy) and done [k] bool (sticky until the next reset)."""
        k = len(self.active)
        obs = np.zeros((k, self.n_agents, self.obs_max), np.float32)
        rewards = np.zeros((k, self.n_agents), np.float64)
        for b in np.flatnonzero(self.active):
            env, live = self.envs[b], self._live[b]
            sent = {}
            for i, agent in enumerate(self.agents):
                if agent in live:
                    sent[agent] = action_to_env(actions[b, i, : self.act_dims[i]],
                                                env.action_space(agent))
            out = env.step(sent)
            if not (isinstance(out, tuple) and len(out) == 5):
                raise EnvMismatchError("step(actions) must return (observations, rewards, "
                                       "terminations, truncations, infos) (PettingZoo >= 1.24)")
            nxt, rew, term, trunc, _ = out
            for i, agent in enumerate(self.agents):
                rewards[b, i] = float(rew.get(agent, 0.0))
            for agent in list(live):
                if term.get(agent, False) or trunc.get(agent, False):
                    live.discard(agent)
            live &= set(env.agents)
            self._fill(obs, b, {a: o for a, o in nxt.items() if a in live})
            if not live:
                self.active[b] = False
        return obs, rewards, ~self.active.copy()

    def close(self) -> None:
        for env in self.envs:
            close = getattr(env, "close", None)
            if close is not None:
                close()
