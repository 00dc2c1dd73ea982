"""Scripted, decentralized expert policies for spread, tag and world.

Every agent acts on its own observation only. Coordination comes from a convention: at
``reset`` every policy receives the same per-episode ``key`` [B] (an integer drawn by the data
generator, like a shared random seed agreed before the episode), and each agent derives the
same joint plan from its own view of the initial layout plus that key. Different keys give
different, near-optimal joint plans, so the joint behaviour is multimodal (DESIGN.md 1.1)
while every single agent's behaviour is sensible.

- :class:`SpreadExpert`: each agent rebuilds the absolute layout (all agents and landmarks)
  from its own observation, scores every agent->landmark assignment (N! permutations) by
  total distance, and draws one from ``softmax(-(cost - min_cost) / temperature)`` using the
  key as a shared uniform number (inverse CDF over a fixed permutation order). It then
  PD-steers to its landmark. The plan is fixed at reset.
- :class:`PredatorExpert` (tag and world): each predator aims at a point of a small
  three-pointed star centred on the prey (slots 120 degrees apart, radius 0.04, inside the
  collision distance), so the team closes in from three sides. The cyclic order of the
  predators on the star is drawn from the key (6 orders); the star's rotation follows the
  team (circular mean of the bearings minus the slot offsets), which every predator
  computes from its own observation since it sees all predators and the prey. An optional
  ring stage (form up at a distance first) exists but is slower against the scripted prey.

Both return actions [B, n, 2] in [-1, 1] for the default ``box2`` action layout.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

__all__ = ["SpreadExpert", "PredatorExpert", "ExpertParams", "key_to_uniform", "make_expert",
           "SPREAD_EXPERT_AGENTS"]

SPREAD_EXPERT_AGENTS = (2, 6)
"""Agent counts the spread expert takes: it scores all N! assignments (720 at N = 6, a
[B, N, 720, N] cost gather; 40,320 at N = 8 would not fit a 1000-episode round)."""


def key_to_uniform(key: torch.Tensor, salt: int = 0) -> torch.Tensor:
    """Deterministic integer hash (splitmix-like, 31-bit) -> uniform in [0, 1). key: [B]."""
    x = (key.to(torch.int64) * 2654435761 + 97 * salt + 12345) & 0x7FFFFFFF
    x = (x ^ (x >> 13)) * 1274126177 & 0x7FFFFFFF
    x = x ^ (x >> 16)
    return (x & 0xFFFFFF).to(torch.float64) / float(1 << 24)


def _steer(rel: torch.Tensor, vel: torch.Tensor, kp: float, kd: float) -> torch.Tensor:
    """PD command towards ``rel`` (target minus own position), norm saturated at 1."""
    cmd = kp * rel - kd * vel
    mag = torch.linalg.vector_norm(cmd, dim=-1, keepdim=True)
    return torch.clamp(cmd / torch.clamp(mag, min=1.0), -1.0, 1.0)


@dataclass(frozen=True)
class ExpertParams:
    """Constants of the scripted experts."""

    spread_kp: float = 8.0
    """Spread PD gain on the position error."""
    spread_kd: float = 1.0
    """Spread PD gain on the velocity."""
    spread_temperature: float = 0.15
    """Assignment sampling temperature (units of total distance)."""
    chase_kp: float = 4.0
    """Predator PD gain on the aim-point error."""
    chase_kd: float = 0.3
    """Predator PD gain on the velocity."""
    ring_stage: bool = False
    """Form a ring at ``ring_radius`` first and close in only when all three predators are on
    station. Measured against the scripted prey it is slower than closing in at once
    (tag ~42 vs ~70 normalized), so it is off by default."""
    ring_radius: float = 0.2
    """Station radius around the prey (outside the scripted prey's 0.17 sense radius)."""
    ring_tol: float = 0.1
    """A predator is on station within ring_radius + ring_tol of the prey ..."""
    angle_tol: float = 0.6
    """... and within this many radians of its slot angle."""
    max_turn: float = 1.5
    """Near the ring, a predator orbits towards its slot by at most this angle per step."""
    orbit_range: float = 2.0
    """Orbiting (instead of heading straight to the slot) starts within this many ring radii."""
    close_radius: float = 0.04
    """Radius of the final star around the prey (inside the 0.125 / 0.12 collision
    distance): the predators press on the prey from three sides."""
    lead_time: float = 0.0
    """Seconds of prey velocity added to the prey position the predators aim around."""


class SpreadExpert:
    """Decentralized spread expert (see module docstring). Supports N <= 6 agents."""

    def __init__(self, n_agents: int = 3, params: ExpertParams = ExpertParams()):
        lo, hi = SPREAD_EXPERT_AGENTS
        if not lo <= n_agents <= hi:
            raise ValueError(f"SpreadExpert enumerates N! assignments; needs {lo} <= N <= {hi}, "
                             f"got {n_agents}")
        self.n = n_agents
        self.params = params
        self.perms = torch.tensor(list(itertools.permutations(range(n_agents))), dtype=torch.long)
        others = [[j for j in range(n_agents) if j != i] for i in range(n_agents)]
        self.others = torch.tensor(others, dtype=torch.long)
        self.target: torch.Tensor | None = None  # [B, N] landmark index per agent

    def _layout(self, obs: torch.Tensor):
        """Absolute layout as each agent sees it: agents [B, N(view), N, 2], landmarks [B, N, L, 2]."""
        n = self.n
        bsz = obs.shape[0]
        p = obs[..., 2:4]  # [B, N, 2]
        lm = p[:, :, None, :] + obs[..., 4 : 4 + 2 * n].reshape(bsz, n, n, 2)
        oth = p[:, :, None, :] + obs[..., 4 + 2 * n : 4 + 2 * n + 2 * (n - 1)].reshape(bsz, n, n - 1, 2)
        ag = torch.empty(bsz, n, n, 2, dtype=obs.dtype, device=obs.device)
        idx = torch.arange(n, device=obs.device)
        ag[:, idx, idx] = p
        others = self.others.to(obs.device)
        ag[:, idx[:, None], others] = oth
        return ag, lm

    def reset(self, obs: torch.Tensor, key: torch.Tensor) -> None:
        """obs: [B, N, obs_dim] initial observations; key: [B] int per-episode shared key."""
        ag, lm = self._layout(obs.to(torch.float64))
        cost = torch.linalg.vector_norm(ag[:, :, :, None, :] - lm[:, :, None, :, :], dim=-1)
        perms = self.perms.to(obs.device)  # [P, N]
        n = self.n
        ar = torch.arange(n, device=obs.device)
        total = cost[:, :, ar[None, :], perms].sum(-1)  # [B, N(view), P]
        logits = -(total - total.amin(-1, keepdim=True)) / self.params.spread_temperature
        prob = torch.softmax(logits, dim=-1)
        cdf = prob.cumsum(-1)
        u = key_to_uniform(key.to(obs.device))[:, None, None]  # same u for every agent
        pick = torch.clamp((cdf < u).sum(-1), max=perms.shape[0] - 1)  # [B, N(view)]
        chosen = perms[pick]  # [B, N(view), N]
        # agent i follows its own view of the plan, and only its own slot of it
        self.target = chosen[:, ar, ar]  # [B, N]
        self.plans = chosen

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """obs: [B, N, obs_dim] -> actions [B, N, 2]."""
        if self.target is None:
            raise RuntimeError("call reset(obs, key) at the start of each episode")
        n = self.n
        bsz = obs.shape[0]
        rel_all = obs[..., 4 : 4 + 2 * n].reshape(bsz, n, n, 2)
        rel = torch.gather(rel_all, 2, self.target[:, :, None, None].expand(bsz, n, 1, 2))[:, :, 0]
        return _steer(rel, obs[..., 0:2], self.params.spread_kp, self.params.spread_kd).to(obs.dtype)


class PredatorExpert:
    """Decentralized predators for tag (obs width 16) and world (obs width 24)."""

    def __init__(self, task: str, params: ExpertParams = ExpertParams()):
        if task not in ("tag", "world"):
            raise ValueError(f"PredatorExpert is for 'tag' or 'world', got {task!r}")
        # the prey is the last of the "other agents"; its velocity follows them
        self.prey_rel = slice(12, 14) if task == "tag" else slice(18, 20)
        self.prey_vel = slice(14, 16) if task == "tag" else slice(20, 22)
        self.params = params
        self.perms = torch.tensor(list(itertools.permutations(range(3))), dtype=torch.long)
        self.angle: torch.Tensor | None = None

    def reset(self, obs: torch.Tensor, key: torch.Tensor) -> None:
        """obs: [B, 3, obs_dim]; key: [B] int per-episode shared key."""
        key = key.to(obs.device)
        u_perm = key_to_uniform(key, salt=1)
        perm = self.perms.to(obs.device)[(u_perm * 6).long().clamp(max=5)]  # [B, 3]
        # slot offsets 0, 120, 240 degrees in a per-episode order (clockwise or not, and
        # who leads); the star's rotation itself follows the team (see act)
        self.slot_offset = (2 * math.pi * perm.to(torch.float64) / 3.0).to(obs.dtype)
        self.angle = self.slot_offset

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """obs: [B, 3, obs_dim] -> actions [B, 3, 2]."""
        if self.angle is None:
            raise RuntimeError("call reset(obs, key) at the start of each episode")
        prm = self.params
        bsz = obs.shape[0]
        rel = obs[..., self.prey_rel]  # prey - me, [B, 3, 2]
        center = rel + prm.lead_time * obs[..., self.prey_vel]  # aim centre, relative to me
        # Every predator rebuilds the whole team's offsets from the prey out of its own
        # observation (other agents' relative positions), to agree on "all on station".
        others = obs[..., 8 if self.prey_rel.start == 12 else 14 : self.prey_rel.start]
        others = others.reshape(bsz, 3, 2, 2)  # the two other predators, minus me
        me_from_prey = -rel  # [B, 3, 2]
        team = torch.empty(bsz, 3, 3, 2, dtype=obs.dtype, device=obs.device)  # [view, who]
        idx = torch.arange(3, device=obs.device)
        team[:, idx, idx] = me_from_prey
        other_idx = torch.tensor([[1, 2], [0, 2], [0, 1]], device=obs.device)
        team[:, idx[:, None], other_idx] = others - rel[:, :, None, :]
        dist = torch.linalg.vector_norm(team, dim=-1)  # [B, view, who]
        bearing = torch.atan2(team[..., 1], team[..., 0])
        # The star's rotation follows the team: circular mean of bearing_j - slot offset_j.
        psi = bearing - self.slot_offset[:, None, :]
        phase = torch.atan2(torch.sin(psi).mean(-1), torch.cos(psi).mean(-1))  # [B, view]
        slot = phase[..., None] + self.slot_offset[:, None, :]  # [B, view, who]
        err = torch.remainder(slot - bearing + math.pi, 2 * math.pi) - math.pi
        on_station = (dist < prm.ring_radius + prm.ring_tol) & (err.abs() < prm.angle_tol)
        ready = on_station.all(dim=-1) | (not prm.ring_stage)  # [B, view]
        my_slot = slot[:, idx, idx]
        my_err = err[:, idx, idx]
        my_bearing = bearing[:, idx, idx]
        my_dist = dist[:, idx, idx]
        orbit = my_dist < prm.orbit_range * prm.ring_radius
        turn = torch.clamp(my_err, -prm.max_turn, prm.max_turn)
        approach_angle = torch.where(orbit, my_bearing + turn, my_slot)
        angle = torch.where(ready, my_slot, approach_angle)
        radius = torch.where(ready, torch.full_like(my_dist, prm.close_radius),
                             torch.full_like(my_dist, prm.ring_radius))
        offset = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
        return _steer(center + radius[..., None] * offset, obs[..., 0:2], prm.chase_kp, prm.chase_kd)


def make_expert(task: str, n_agents: int = 3, params: ExpertParams = ExpertParams()):
    """The scripted expert for a task name ("spread", "tag", "world"); spread takes
    SPREAD_EXPERT_AGENTS agents, the predators are always three."""
    if task in ("spread", "simple_spread"):
        return SpreadExpert(n_agents, params)
    if n_agents != 3:
        raise ValueError(f"the {task} predator expert is built for 3 predators (a 3-slot star "
                         f"around the prey), got n_agents={n_agents}")
    return PredatorExpert(task.replace("simple_", ""), params)
