"""Batched particle-world physics and the environment base class shared by spread/tag/world.

Followed, line for line in meaning, the MPE copy that ships with the offline-MARL code
(ling-pan/OMAR ``multiagent-particle-envs``; the same files are vendored as
zbzhu99/madiff ``third_party/multiagent-particle-envs`` and qiaodan-cuhk/diffmarl):

``multiagent/environment.py`` ``MultiAgentEnv._set_action`` with ``discrete_action=False``
(the default of OMAR's, MADiff's and the OMSD authors' ``main.py``): the action space is
``Box(-u_range, u_range, (dim_p,))`` with ``u_range = 1``, so a per-agent action is 2-d and
``u = a * sensitivity`` with ``sensitivity = agent.accel if set else 5.0``. Nothing clips
the action. With ``discrete_action=True`` the policy emits 5 numbers and
``u = [a1 - a2, a3 - a4] * sensitivity`` (a0, the "no-op" slot, is ignored); that layout is
available here as ``action_layout="onehot5"``.

``multiagent/core.py`` ``World.step``:
1. ``apply_action_force``: ``f_i = (mass * accel if accel else mass) * u_i`` (no motor noise:
   ``u_noise`` is None). With ``u = a * accel`` this is ``accel**2 * a`` in tag/world and
   ``5 * a`` in spread.
2. ``apply_environment_force``: for every entity pair (a < b) where both collide and at least
   one moves: ``pen = logaddexp(0, -(d - (s_a + s_b)) / k) * k`` with ``k = 1e-3``,
   ``F = 100 * (p_a - p_b) / d * pen``; a gets ``+F`` and b gets ``-F`` (masses are all 1,
   so the mass ratio is 1). No walls in these scenarios.
3. ``integrate_state``: ``v <- v * (1 - 0.25)``; ``v <- v + f / m * dt`` (dt = 0.1); if
   ``|v| > max_speed`` then ``v <- v / |v| * max_speed``; ``p <- p + v * dt``.
4. ``update_agent_state``: every agent is silent, so its comm state stays zeros.
Observations and rewards are computed after the world step from the new state
(``MultiAgentEnv.step``); ``done_callback`` is None, so episodes end only by the 25-step
limit of the training loops (``--episode_length 25``).

The batched program keeps all environments in lock step: one Python ``int`` counts the
steps, ``reset`` restarts every environment. Entity order is the original's
``world.entities = agents + landmarks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "PhysicsConstants",
    "EntityTable",
    "physics_step",
    "norm2",
    "MPEEnv",
    "EPISODE_LENGTH",
]

EPISODE_LENGTH = 25
"""Steps per episode in the offline-MARL MPE tasks (``--episode_length 25``)."""

DEFAULT_SENSITIVITY = 5.0
"""``environment.py``: ``sensitivity = 5.0`` unless the agent has ``accel``."""


@dataclass(frozen=True)
class PhysicsConstants:
    """``multiagent/core.py`` ``World.__init__`` defaults."""

    dt: float = 0.1
    """Simulation timestep."""
    damping: float = 0.25
    """Velocity damping per step."""
    contact_force: float = 1e2
    """Contact response stiffness."""
    contact_margin: float = 1e-3
    """Softplus width of the penetration (``k``)."""


@dataclass(frozen=True)
class EntityTable:
    """Static per-entity properties, agents first (``world.entities = agents + landmarks``).

    Tuples have one entry per entity; ``accel``/``max_speed`` are ``None`` where the original
    leaves them unset.
    """

    size: tuple[float, ...]
    movable: tuple[bool, ...]
    collide: tuple[bool, ...]
    accel: tuple[float | None, ...]
    max_speed: tuple[float | None, ...]
    n_agents: int
    """Number of agents (movable, the first ``n_agents`` entities)."""

    @property
    def n_entities(self) -> int:
        return len(self.size)

    def action_gain(self) -> list[float]:
        """Force per unit action for each agent: ``(accel or 1) * (accel or 5)``."""
        gains = []
        for acc in self.accel[: self.n_agents]:
            sens = DEFAULT_SENSITIVITY if acc is None else acc
            mult = 1.0 if acc is None else acc
            gains.append(mult * sens)
        return gains


class _Tables:
    """Device tensors derived from an :class:`EntityTable`."""

    def __init__(self, table: EntityTable, device: torch.device, dtype: torch.dtype):
        n_ag = table.n_agents
        for i in range(n_ag):
            if not table.movable[i]:
                raise ValueError(f"entity {i} is an agent but not movable")
        for i in range(n_ag, table.n_entities):
            if table.movable[i]:
                raise ValueError(f"entity {i} is a landmark but movable")
        # Contact partners of the agents: every colliding entity. Landmarks never move and
        # never collide with one another, so only rows for agents are needed.
        self.col_idx = [j for j in range(table.n_entities) if table.collide[j]]
        size = torch.tensor(table.size, dtype=dtype, device=device)
        col = torch.tensor(self.col_idx, dtype=torch.long, device=device)
        self.col_idx_t = col
        self.dist_min = (size[:n_ag, None] + size[None, col])[..., None]  # [A, C, 1]
        mask = torch.zeros(n_ag, len(self.col_idx), dtype=torch.bool, device=device)
        for i in range(n_ag):
            if not table.collide[i]:
                continue
            for c, j in enumerate(self.col_idx):
                mask[i, c] = j != i
        self.pair_mask = mask[..., None]  # [A, C, 1]
        self.any_contact = bool(mask.any())
        self.gain = torch.tensor(table.action_gain(), dtype=dtype, device=device)[:, None, None]
        ms = [math.inf if m is None else m for m in table.max_speed[:n_ag]]
        self.max_speed = torch.tensor(ms, dtype=dtype, device=device)[:, None]  # [A, 1]
        self.has_max_speed = any(m is not None for m in table.max_speed[:n_ag])


def physics_step(
    pos: torch.Tensor,
    vel: torch.Tensor,
    action_u: torch.Tensor,
    tables: _Tables,
    const: PhysicsConstants,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One ``World.step`` for B worlds, batch-last.

    pos, vel: [E, 2, B]; action_u: [A, 2, B], the raw 2-d action of every agent (before
    sensitivity). Returns the new (pos, vel); landmark rows are returned unchanged.
    Batch-last keeps the innermost dimension long: with [B, E, 2] every broadcast runs over
    an innermost dimension of 2 and was 10x slower on the CPU.
    """
    n_ag = action_u.shape[0]
    force = action_u * tables.gain  # [A, 2, B]
    p_ag = pos[:n_ag]
    if tables.any_contact:
        p_col = pos.index_select(0, tables.col_idx_t)  # [C, 2, B]
        delta = p_ag[:, None] - p_col[None]  # [A, C, 2, B]
        dist = torch.sqrt(delta[:, :, 0] ** 2 + delta[:, :, 1] ** 2)  # [A, C, B]
        k = const.contact_margin
        # logaddexp(0, x) = softplus(x); above x = 20 softplus returns x (error < 2e-9 * k),
        # which also keeps float32 from overflowing when particles overlap deeply.
        pen = F.softplus(-(dist - tables.dist_min) / k) * k
        # The self pair has dist 0 (0/0); it is masked out before it can spread a NaN.
        coef = torch.where(tables.pair_mask, const.contact_force * pen / dist, 0.0)
        force = force + (coef[:, :, None] * delta).sum(dim=1)
    v = vel[:n_ag] * (1.0 - const.damping) + force * const.dt
    if tables.has_max_speed:
        speed = torch.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2)  # [A, B]
        over = speed > tables.max_speed
        scale = torch.where(over, tables.max_speed / speed, 1.0)
        v = v * scale[:, None]
    p = p_ag + v * const.dt
    new_pos = torch.cat([p, pos[n_ag:]], dim=0)
    new_vel = torch.cat([v, vel[n_ag:]], dim=0)
    return new_pos, new_vel


def norm2(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Euclidean norm over a coordinate dimension of size 2 (cheaper than vector_norm)."""
    return torch.sqrt(x.select(dim, 0) ** 2 + x.select(dim, 1) ** 2)


class MPEEnv:
    """Base class: B lock-stepped worlds of one scenario.

    Subclasses define ``table`` (EntityTable), ``n_learned``, ``obs_dims``, ``name``,
    ``reference_returns`` and implement ``_sample_positions``, ``_observe`` (learned agents), ``_rewards`` (all
    agents) and, for predator-prey, ``_scripted_actions``.
    """

    name: str = "mpe"
    episode_length: int = EPISODE_LENGTH
    reference_returns: dict[str, float] = {}

    def __init__(
        self,
        table: EntityTable,
        n_learned: int,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        dtype: torch.dtype = torch.float32,
        action_layout: str = "box2",
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if action_layout not in ("box2", "onehot5"):
            raise ValueError(f"action_layout must be 'box2' or 'onehot5', got {action_layout!r}")
        self.table = table
        self.n_agents = n_learned
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.dtype = dtype
        self.action_layout = action_layout
        self.const = PhysicsConstants()
        self._tables = _Tables(table, self.device, dtype)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else int(seed))
        # batch-last state: [E, 2, B] (see physics_step)
        self.pos: torch.Tensor | None = None
        self.vel: torch.Tensor | None = None
        self.t = 0

    # ----------------------------------------------------------------- properties
    @property
    def act_dims(self) -> tuple[int, ...]:
        d = 2 if self.action_layout == "box2" else 5
        return (d,) * self.n_agents

    @property
    def act_dim(self) -> int:
        return self.act_dims[0]

    @property
    def obs_dim(self) -> int:
        return max(self.obs_dims)

    @property
    def obs_dims(self) -> tuple[int, ...]:  # pragma: no cover - overridden
        raise NotImplementedError

    # ----------------------------------------------------------------- state
    def get_state(self) -> dict[str, Any]:
        """Copy of the full state: pos/vel [B, E, 2] in entity order, and the step count."""
        if self.pos is None:
            raise RuntimeError("call reset() before get_state()")
        return {"pos": self.pos.permute(2, 0, 1).clone(), "vel": self.vel.permute(2, 0, 1).clone(),
                "t": self.t}

    def set_state(self, state: dict[str, Any]) -> torch.Tensor:
        """Load a state (as from :meth:`get_state`); returns the observations [B, n, obs_dim]."""
        pos = torch.as_tensor(state["pos"], dtype=self.dtype, device=self.device)
        vel = torch.as_tensor(state["vel"], dtype=self.dtype, device=self.device)
        want = (self.num_envs, self.table.n_entities, 2)
        for key, val in (("pos", pos), ("vel", vel)):
            if tuple(val.shape) != want:
                raise ValueError(f"state[{key!r}] has shape {tuple(val.shape)}, expected {want}")
        self.pos = pos.permute(1, 2, 0).contiguous()
        self.vel = vel.permute(1, 2, 0).contiguous()
        self.t = int(state.get("t", 0))
        return self._observe_learned()

    # ----------------------------------------------------------------- API
    def reset(self, seed: int | torch.Generator | None = None) -> torch.Tensor:
        """Draw new initial states for all B worlds. Returns obs [B, n_agents, obs_dim].

        ``seed``: an int reseeds the env's generator, a ``torch.Generator`` (on the env's
        device) is used for this draw, None continues the env's own stream.
        """
        if isinstance(seed, torch.Generator):
            gen = seed
        else:
            if seed is not None:
                self.generator.manual_seed(int(seed))
            gen = self.generator
        pos = self._sample_positions(gen)  # [B, E, 2]
        self.pos = pos.to(self.dtype).permute(1, 2, 0).contiguous()
        self.vel = torch.zeros_like(self.pos)
        self.t = 0
        return self._observe_learned()

    def step(self, actions: torch.Tensor):
        """Advance all worlds one step.

        actions: [B, n_agents, act_dim] (act_dim 2: force direction in [-1, 1]^2; with
        ``action_layout="onehot5"``: 5 numbers, u = [a1 - a2, a3 - a4]). Not clipped, as in
        the original. Returns obs [B, n, obs_dim], rewards [B, n], done [B] bool (True at
        step 25), info dict with ``rewards_all`` [B, n_all_agents] (scripted agents too) and,
        in predator-prey tasks, ``scripted_actions`` [B, n_scripted, 2].
        """
        if self.pos is None:
            raise RuntimeError("call reset() before step()")
        if self.t >= self.episode_length:
            raise RuntimeError(
                f"episode finished after {self.episode_length} steps; call reset()"
            )
        want = (self.num_envs, self.n_agents, self.act_dim)
        if tuple(actions.shape) != want:
            raise ValueError(f"actions has shape {tuple(actions.shape)}, expected {want}")
        a = actions.to(device=self.device, dtype=self.dtype).permute(1, 2, 0)  # [n, act, B]
        if self.action_layout == "onehot5":
            a = torch.stack([a[:, 1] - a[:, 2], a[:, 3] - a[:, 4]], dim=1)
        info: dict[str, Any] = {}
        n_scripted = self.table.n_agents - self.n_agents
        if n_scripted:
            scripted = self._scripted_actions()  # [n_scripted, 2, B]
            info["scripted_actions"] = scripted.permute(2, 0, 1)
            a = torch.cat([a, scripted.to(self.dtype)], dim=0)
        self.pos, self.vel = physics_step(self.pos, self.vel, a, self._tables, self.const)
        self.t += 1
        rew_all = self._rewards().t()  # [B, n_all_agents]
        info["rewards_all"] = rew_all
        obs = self._observe_learned()
        done_flag = self.t >= self.episode_length
        done = torch.full((self.num_envs,), done_flag, dtype=torch.bool, device=self.device)
        return obs, rew_all[:, : self.n_agents].contiguous(), done, info

    def episode_return(self, rewards: torch.Tensor) -> torch.Tensor:
        """DESIGN.md 1.7 return; rewards [B, T, n_agents] -> [B]. Cooperative tasks: sum over
        steps of the mean agent reward (predator-prey tasks override: predator 0's sum)."""
        return rewards.mean(dim=2).sum(dim=1)

    def sample_random_actions(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Uniform actions in [-1, 1]^act_dim (``action_space.sample()``): [B, n, act_dim]."""
        gen = self.generator if generator is None else generator
        u = torch.rand(
            self.num_envs, self.n_agents, self.act_dim,
            generator=gen, device=self.device, dtype=self.dtype,
        )
        return u * 2.0 - 1.0

    # ----------------------------------------------------------------- helpers
    def _uniform(self, gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
        u = torch.rand(self.num_envs, n, 2, generator=gen, device=self.device, dtype=torch.float64)
        return (low + (high - low) * u).to(self.dtype)

    def _observe_learned(self) -> torch.Tensor:
        return self._observe().permute(2, 0, 1).contiguous()

    # ----------------------------------------------------------------- to override
    def _sample_positions(self, gen: torch.Generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _observe(self) -> torch.Tensor:  # pragma: no cover
        """Observations of the learned agents, batch-last: [n_agents, obs_dim, B]."""
        raise NotImplementedError

    def _rewards(self) -> torch.Tensor:  # pragma: no cover
        """Rewards of all agents (learned first), batch-last: [n_all_agents, B]."""
        raise NotImplementedError

    def _scripted_actions(self) -> torch.Tensor:  # pragma: no cover
        """Actions of the scripted agents, batch-last: [n_scripted, 2, B]."""
        raise NotImplementedError
