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
- :class:`PredatorExpert` (tag and world): predators approach the prey from different
  angles (120 degrees apart); which predator takes which angle, and the rotation of the
  three-angle star, are drawn from the key. The approach radius shrinks with the distance,
  so the predators close in and ram the prey; they aim at a velocity-led prediction of it.

Both return actions [B, n, 2] in [-1, 1] for the default ``box2`` action layout.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

__all__ = ["SpreadExpert", "PredatorExpert", "ExpertParams", "key_to_uniform", "make_expert"]


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

    spread_kp: float = 4.0
    """Spread PD gain on the position error."""
    spread_kd: float = 1.0
    """Spread PD gain on the velocity."""
    spread_temperature: float = 0.15
    """Assignment sampling temperature (units of total distance)."""
    chase_kp: float = 4.0
    """Predator PD gain on the aim-point error."""
    chase_kd: float = 0.3
    """Predator PD gain on the velocity."""
    approach_ratio: float = 0.5
    """Approach radius as a fraction of the distance to the prey."""
    approach_max: float = 0.3
    """Cap on the approach radius."""
    lead_time: float = 0.2
    """Seconds of prey velocity added to the aim point."""


class SpreadExpert:
    """Decentralized spread expert (see module docstring). Supports N <= 6 agents."""

    def __init__(self, n_agents: int = 3, params: ExpertParams = ExpertParams()):
        if not 2 <= n_agents <= 6:
            raise ValueError(f"SpreadExpert enumerates N! assignments; needs 2 <= N <= 6, got {n_agents}")
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
        u_phase = key_to_uniform(key, salt=2)
        perm = self.perms.to(obs.device)[(u_perm * 6).long().clamp(max=5)]  # [B, 3]
        self.angle = (2 * math.pi * (u_phase[:, None] + perm.to(torch.float64) / 3.0)).to(obs.dtype)

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        if self.angle is None:
            raise RuntimeError("call reset(obs, key) at the start of each episode")
        prm = self.params
        rel = obs[..., self.prey_rel]
        aim = rel + prm.lead_time * obs[..., self.prey_vel]
        d = torch.linalg.vector_norm(aim, dim=-1, keepdim=True)
        radius = torch.clamp(prm.approach_ratio * d, max=prm.approach_max)
        offset = torch.stack([torch.cos(self.angle), torch.sin(self.angle)], dim=-1)
        return _steer(aim + radius * offset, obs[..., 0:2], prm.chase_kp, prm.chase_kd)


def make_expert(task: str, n_agents: int = 3, params: ExpertParams = ExpertParams()):
    """The scripted expert for a task name ("spread", "tag", "world")."""
    if task in ("spread", "simple_spread"):
        return SpreadExpert(n_agents, params)
    return PredatorExpert(task.replace("simple_", ""), params)
