"""Multi-agent MuJoCo (gymnasium-robotics ``mamujoco_v1``) behind the batched env interface.

    env = MaMuJoCoEnv("halfcheetah-2x3", num_envs=8, seed=0)
    obs = env.reset()                                  # [B, n, obs_max] float32
    obs, rew, done, info = env.step(actions)           # actions [B, n, act_max] in [-1, 1]
    R = env.episode_return(rewards)                    # rewards [B, T, n] -> [B] team return

Each of the B copies is one ``mamujoco_v1.parallel_env(scenario, conf, agent_obsk=0,
global_categories=())``: with ``agent_obsk=0`` an agent observes only its own joints (OMAR's
6-d observations on HalfCheetah 2x3: 3 joint angles, 3 joint velocities) and no global
quantity. The copies run in one process, stepped in a Python loop; stepping goes through the
unwrapped gymnasium MuJoCo env (no TimeLimit, order or passive checkers), so the time limit
is this class's own ``episode_length`` and the whole per-copy state is the MuJoCo integration
state (``mjSTATE_INTEGRATION``), the body positions ``xpos`` (derived, but Ant's reward reads
the stale pre-step value) and a step counter: :meth:`get_state` / :meth:`set_state` restore a
batch mid-episode bit for bit (TD3 checkpoints rely on it).

Episodes end per copy (auto-masking): a copy that terminated (Hopper, Walker2d and Ant fall)
or reached ``episode_length`` is no longer stepped; its observation stays frozen, its reward
is 0 and its done flag stays True until the next reset, so summing rewards over T steps gives
each copy's own episode return.

Rewards: MaMuJoCo gives every agent the same team reward (the single-agent MuJoCo reward);
``rewards[b, :, i]`` repeats it for each agent and ``episode_return`` sums agent 0's column.

Randomness: the env owns a ``torch.Generator``. ``reset(seed)`` draws one integer per copy from
it (or from a generator passed in) and resets that copy's MuJoCo env with it, so the initial
states depend only on the torch stream, never on hidden numpy state carried over.

gymnasium-robotics and mujoco are optional (``pip install 'scoredec[mujoco]'``): this module
imports without them; building an environment raises an ImportError saying what to install.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "TASKS",
    "EPISODE_LENGTH",
    "REFERENCE_RETURNS",
    "MaMuJoCoTask",
    "MaMuJoCoEnv",
    "require_mamujoco",
    "make_mamujoco",
]

log = logging.getLogger(__name__)

EPISODE_LENGTH = 1000
"""The gymnasium MuJoCo time limit, used by OMAR and D4RL."""


@dataclass(frozen=True)
class MaMuJoCoTask:
    """One agent layout of a MuJoCo robot."""

    name: str
    """scoredec's task name (``halfcheetah-2x3``)."""
    scenario: str
    """gymnasium MuJoCo robot (``HalfCheetah`` -> ``HalfCheetah-v5``)."""
    conf: str
    """MaMuJoCo agent_conf: agents x joints per agent."""


TASKS: dict[str, MaMuJoCoTask] = {
    t.name: t
    for t in (
        MaMuJoCoTask("halfcheetah-2x3", "HalfCheetah", "2x3"),
        MaMuJoCoTask("ant-2x4", "Ant", "2x4"),
        MaMuJoCoTask("hopper-3x1", "Hopper", "3x1"),
        MaMuJoCoTask("walker2d-2x3", "Walker2d", "2x3"),
        MaMuJoCoTask("halfcheetah-6x1", "HalfCheetah", "6x1"),
    )
}

REFERENCE_RETURNS: dict[str, dict[str, float] | None] = {
    "halfcheetah-2x3": {"random": -283.97, "expert": 3568.81},  # DESIGN.md 1.7
    "ant-2x4": None,
    "hopper-3x1": None,
    "walker2d-2x3": None,
    "halfcheetah-6x1": None,
}
"""Episode-return references for normalized scores; None where the paper gives none."""

SEED_RANGE = 2**31 - 1
"""Per-copy reset seeds are uniform integers in [0, SEED_RANGE)."""

INSTALL_HINT = "pip install 'scoredec[mujoco]' (gymnasium-robotics and mujoco)"


def require_mamujoco():
    """Import ``gymnasium_robotics.mamujoco_v1`` and ``mujoco`` or raise an ImportError
    naming the missing package and the extra that installs it."""
    mods = []
    for name in ("mujoco", "gymnasium_robotics"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError as e:
            raise ImportError(
                f"MaMuJoCo environments need the optional package {name.replace('_', '-')!r}, "
                f"which is not installed: {INSTALL_HINT}"
            ) from e
    from gymnasium_robotics import mamujoco_v1

    return mods[0], mamujoco_v1


def _task(name: str) -> MaMuJoCoTask:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown MaMuJoCo task {name!r}; expected one of {', '.join(TASKS)}") from None


class MaMuJoCoEnv:
    """B independent copies of one MaMuJoCo task, stepped in lockstep with per-copy done.

    Attributes: ``n_agents``, ``obs_dims`` / ``act_dims`` (per agent), ``obs_dim`` /
    ``act_dim`` (the padded widths obs_max / act_max), ``state_dim`` (the single-agent MuJoCo
    observation, used by centralized learners), ``episode_length``, ``reference_returns``.
    """

    def __init__(
        self,
        task: str,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        episode_length: int = EPISODE_LENGTH,
    ):
        spec = _task(task)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
        if isinstance(episode_length, bool) or not isinstance(episode_length, int) or episode_length < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        self._mujoco, mamujoco_v1 = require_mamujoco()
        self.name = spec.name
        self.task = spec
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.episode_length = episode_length
        self.reference_returns = REFERENCE_RETURNS[spec.name]
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(0 if seed is None else int(seed))
        self._envs = [
            mamujoco_v1.parallel_env(spec.scenario, spec.conf, agent_obsk=0, global_categories=())
            for _ in range(num_envs)
        ]
        first = self._envs[0]
        self.agent_names = tuple(first.possible_agents)
        self.n_agents = len(self.agent_names)
        self.obs_dims = tuple(int(first.observation_space(a).shape[0]) for a in self.agent_names)
        self.act_dims = tuple(int(first.action_space(a).shape[0]) for a in self.agent_names)
        self.obs_dim = max(self.obs_dims)
        self.act_dim = max(self.act_dims)
        self.state_dim = int(first.state().shape[0])
        self._global_act_dim = int(first.single_agent_env.action_space.shape[0])
        # agent i's k-th action drives global actuator _act_index[i][k]
        self._act_index = [
            np.array([node.act_ids for node in part], dtype=np.int64).reshape(-1)
            for part in first.agent_action_partitions
        ]
        self._state_spec = self._mujoco.mjtState.mjSTATE_INTEGRATION
        model = first.single_agent_env.unwrapped.model
        self._mj_integration_size = int(self._mujoco.mj_stateSize(model, self._state_spec))
        # + xpos: mj_step leaves the kinematics of the last substep's start in data.xpos, and
        # gymnasium's Ant reads its torso position there before stepping; mj_setState does not
        # restore derived quantities, so the checkpoint carries them.
        self._mj_state_size = self._mj_integration_size + int(model.nbody) * 3
        self._obs = np.zeros((num_envs, self.n_agents, self.obs_dim), np.float32)
        self._state = np.zeros((num_envs, self.state_dim), np.float32)
        self.t = np.zeros(num_envs, np.int64)
        self.done = np.ones(num_envs, bool)
        self._started = False

    # ----------------------------------------------------------------- observation
    def _observe(self, b: int) -> None:
        env = self._envs[b]
        for i in range(self.n_agents):
            o = env._get_obs_agent(i)
            self._obs[b, i, : self.obs_dims[i]] = o
        self._state[b] = env.state()

    def _as_tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.copy()).to(self.device)

    # ----------------------------------------------------------------- API
    def reset(self, seed: int | torch.Generator | None = None) -> torch.Tensor:
        """New episodes in all copies. Returns obs [B, n, obs_max] float32 (zero-padded).

        ``seed``: an int reseeds the env's generator, a CPU ``torch.Generator`` is used for
        this draw, None continues the env's own stream.
        """
        return self.reset_envs(range(self.num_envs), seed)

    def reset_envs(self, index: Sequence[int] | np.ndarray | torch.Tensor,
                   seed: int | torch.Generator | None = None) -> torch.Tensor:
        """New episodes in the copies ``index`` (ints, ascending order of draws) only; the
        others keep running. Returns the observations of all copies [B, n, obs_max]."""
        if isinstance(seed, torch.Generator):
            gen = seed
        else:
            if seed is not None:
                self.generator.manual_seed(int(seed))
            gen = self.generator
        idx = [int(b) for b in (index.tolist() if hasattr(index, "tolist") else index)]
        if any(b < 0 or b >= self.num_envs for b in idx):
            raise ValueError(f"reset index out of range [0, {self.num_envs}): {idx}")
        seeds = torch.randint(0, SEED_RANGE, (len(idx),), generator=gen).tolist()
        for b, s in zip(idx, seeds):
            self._envs[b].single_agent_env.unwrapped.reset(seed=int(s))
            self._observe(b)
            self.t[b] = 0
            self.done[b] = False
        self._started = self._started or bool(idx)
        return self._as_tensor(self._obs)

    def step(self, actions: torch.Tensor):
        """Advance every unfinished copy one step.

        actions: [B, n, act_max], agent i's first act_dims[i] entries used (not clipped:
        keep them in [-1, 1]). Returns obs [B, n, obs_max] float32, rewards [B, n] float32
        (the team reward, 0 for copies already done), done [B] bool (terminated or at the
        time limit, sticky until reset), info with ``terminated`` / ``truncated`` [B] bool
        (this step's ending cause), ``active`` [B] bool (copies stepped by this call) and
        ``state`` [B, state_dim] float32 (the single-agent observation).
        """
        if not self._started:
            raise RuntimeError("call reset() before step()")
        want = (self.num_envs, self.n_agents, self.act_dim)
        if tuple(actions.shape) != want:
            raise ValueError(f"actions has shape {tuple(actions.shape)}, expected {want}")
        if self.done.all():
            raise RuntimeError("every episode has finished; call reset()")
        act = actions.detach().to("cpu", torch.float64).numpy()
        if not np.isfinite(act).all():
            raise ValueError("actions contain NaN or infinity")
        rewards = np.zeros((self.num_envs, self.n_agents), np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        active = ~self.done
        for b in np.flatnonzero(active):
            g = np.empty(self._global_act_dim, np.float64)
            for i, ids in enumerate(self._act_index):
                g[ids] = act[b, i, : self.act_dims[i]]
            _, r, term, _, _ = self._envs[b].single_agent_env.unwrapped.step(g)
            self.t[b] += 1
            self._observe(b)
            rewards[b] = r
            terminated[b] = bool(term)
            truncated[b] = not term and self.t[b] >= self.episode_length
            self.done[b] = terminated[b] or truncated[b]
        info = {
            "terminated": torch.from_numpy(terminated).to(self.device),
            "truncated": torch.from_numpy(truncated).to(self.device),
            "active": torch.from_numpy(active).to(self.device),
            "state": self._as_tensor(self._state),
        }
        return (self._as_tensor(self._obs), torch.from_numpy(rewards).to(self.device),
                torch.from_numpy(self.done.copy()).to(self.device), info)

    def state(self) -> torch.Tensor:
        """The global state [B, state_dim] float32: each copy's single-agent MuJoCo observation."""
        return self._as_tensor(self._state)

    def observations(self) -> torch.Tensor:
        """The current observations [B, n, obs_max] float32 (as returned by the last call)."""
        return self._as_tensor(self._obs)

    def episode_return(self, rewards: torch.Tensor) -> torch.Tensor:
        """Team return: rewards [B, T, n] -> [B], the sum over steps of the shared reward."""
        return rewards[:, :, 0].sum(dim=1)

    def sample_random_actions(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform actions in [-1, 1] (zero in padded columns): [B, n, act_max] float32."""
        gen = self.generator if generator is None else generator
        u = torch.rand(self.num_envs, self.n_agents, self.act_dim, generator=gen) * 2.0 - 1.0
        for i, d in enumerate(self.act_dims):
            u[:, i, d:] = 0.0
        return u.to(self.device)

    # ----------------------------------------------------------------- exact state
    def get_state(self) -> dict[str, Any]:
        """A copy of everything the next steps depend on: ``mj`` [B, S] float64 (MuJoCo
        integration state, then ``xpos``), ``t`` [B] int64, ``done`` [B] bool, ``obs`` [B, n, obs_max] and
        ``state`` [B, state_dim] float32 (the last observations) and ``generator`` (uint8
        tensor). Restoring it with :meth:`set_state` continues bit for bit."""
        if not self._started:
            raise RuntimeError("call reset() before get_state()")
        mj = np.empty((self.num_envs, self._mj_state_size), np.float64)
        for b, env in enumerate(self._envs):
            u = env.single_agent_env.unwrapped
            self._mujoco.mj_getState(u.model, u.data, mj[b, : self._mj_integration_size],
                                     self._state_spec)
            mj[b, self._mj_integration_size:] = u.data.xpos.reshape(-1)
        return {"mj": mj, "t": self.t.copy(), "done": self.done.copy(), "obs": self._obs.copy(),
                "state": self._state.copy(), "generator": self.generator.get_state()}

    def set_state(self, state: dict[str, Any]) -> torch.Tensor:
        """Load a state from :meth:`get_state`; returns the observations [B, n, obs_max]."""
        want = {"mj": (self.num_envs, self._mj_state_size), "t": (self.num_envs,),
                "done": (self.num_envs,), "obs": self._obs.shape, "state": self._state.shape}
        arrays = {}
        for key, shape in want.items():
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
            a = np.asarray(state[key])
            if a.shape != tuple(shape):
                raise ValueError(f"state[{key!r}] has shape {a.shape}, expected {tuple(shape)}")
            arrays[key] = a
        for b, env in enumerate(self._envs):
            u = env.single_agent_env.unwrapped
            row = np.ascontiguousarray(arrays["mj"][b], np.float64)
            self._mujoco.mj_setState(u.model, u.data, row[: self._mj_integration_size], self._state_spec)
            u.data.xpos[:] = row[self._mj_integration_size:].reshape(u.data.xpos.shape)
        self.t = arrays["t"].astype(np.int64).copy()
        self.done = arrays["done"].astype(bool).copy()
        self._obs = arrays["obs"].astype(np.float32).copy()
        self._state = arrays["state"].astype(np.float32).copy()
        if "generator" in state:
            self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8))
        self._started = True
        return self._as_tensor(self._obs)

    def close(self) -> None:
        for env in self._envs:
            env.close()


def make_mamujoco(name: str, num_envs: int, device: str | torch.device = "cpu",
                  seed: int | None = None, episode_length: int = EPISODE_LENGTH) -> MaMuJoCoEnv:
    """B copies of the MaMuJoCo task ``name`` (one of ``TASKS``)."""
    return MaMuJoCoEnv(name, num_envs, device=device, seed=seed, episode_length=episode_length)
