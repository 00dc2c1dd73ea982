"""Predator-prey ("simple_tag") as used by OMAR / MADiff / OMSD, batched.

Followed zbzhu99/madiff ``third_party/multiagent-particle-envs/multiagent/scenarios/
simple_tag.py`` (the OMAR copy; OMAR's ``main.py`` loads a pretrained prey for it):

- Agents 0-2 are predators ("adversaries": size 0.075, accel 3, max speed 1.0), agent 3 is
  the prey (size 0.05, accel 4, max speed 1.3); all collide, all silent. Forces are
  ``accel * (accel * a)``: 9 a for predators, 16 a for the prey (see core.py).
- Two landmarks, size 0.2, collide, not movable.
- Reset: each agent at ``uniform(-1, 1, 2)``, each landmark at ``uniform(-0.9, 0.9, 2)``,
  velocities 0.
- Predator reward (the same for every predator): ``-0.1 * sum_adv min_prey |p_adv - p_prey|
  + 10 * #(prey, adv) pairs with |p_prey - p_adv| < 0.125``.
- Prey reward: ``0.1 * sum_adv |p - p_adv| - 10 * #collisions - sum_axis bound(|x|)`` with
  bound(x) = 0 below 0.9, 10 (x - 0.9) below 1, min(exp(2x - 2), 10) beyond.
- Observation: ``[v_i, p_i, p_l - p_i for the 2 landmarks, p_j - p_i for each other agent
  j in index order, v_j for each other agent j that is not an adversary]``: 16 for a
  predator (the prey's velocity is the last pair), 14 for the prey.
- Episode return: predator 0's reward summed over 25 steps (OMAR ``eval_policy``).
  References: random -4.1, expert 185.6.

The prey is not learned: ``prey.py`` scripts it (the original's pretrained prey cannot be
fetched).
"""

from __future__ import annotations

import torch

from .core import EntityTable, MPEEnv, norm2
from .prey import PREY_PARAMS, PreyParams, prey_action

N_PREDATORS = 3
PREDATOR_SIZE = 0.075
PREDATOR_ACCEL = 3.0
PREDATOR_MAX_SPEED = 1.0
LANDMARK_SIZE = 0.2
REFERENCE_RETURNS = {"random": -4.1, "expert": 185.6}


def bound_penalty(x: torch.Tensor) -> torch.Tensor:
    """``agent_reward.bound`` of simple_tag/simple_world, elementwise on |x|."""
    mid = (x - 0.9) * 10.0
    far = torch.clamp(torch.exp(2.0 * x - 2.0), max=10.0)
    return torch.where(x < 0.9, torch.zeros_like(x), torch.where(x < 1.0, mid, far))


class PredatorPreyEnv(MPEEnv):
    """Shared machinery of tag and world: 3 learned predators, 1 scripted prey (last agent)."""

    n_prey = 1
    collide_bonus: float = 10.0
    prey_size: float = 0.05
    prey_accel: float = 4.0
    prey_max_speed: float = 1.3

    def __init__(self, table: EntityTable, num_envs, device, seed, dtype, action_layout,
                 prey_params: PreyParams = PREY_PARAMS):
        super().__init__(table, N_PREDATORS, num_envs, device, seed, dtype, action_layout)
        self.prey_params = prey_params
        n_all = table.n_agents
        others = [[j for j in range(n_all) if j != i] for i in range(n_all)]
        self._others = torch.tensor(others, dtype=torch.long, device=self.device)
        self._self_idx = torch.arange(n_all, device=self.device)[:, None]

    def _sample_positions(self, gen):
        # Both scenarios: 3 predators + 1 prey in [-1, 1]^2, every landmark in [-0.9, 0.9]^2.
        agents = self._uniform(gen, N_PREDATORS + self.n_prey, -1.0, 1.0)
        landmarks = self._uniform(gen, self.n_landmarks, -0.9, 0.9)
        return torch.cat([agents, landmarks], dim=1)

    def episode_return(self, rewards: torch.Tensor) -> torch.Tensor:
        """DESIGN.md 1.7 return: predator 0's reward summed. rewards [B, T, 3] -> [B]."""
        return rewards[:, :, 0].sum(dim=1)

    # indices into self.pos
    @property
    def prey_index(self) -> int:
        return N_PREDATORS

    def _predator_prey_dist(self) -> torch.Tensor:
        """[3, B] distance of each predator to the prey."""
        p = self.pos
        return norm2(p[:N_PREDATORS] - p[N_PREDATORS : N_PREDATORS + 1], dim=1)

    def _relative_others(self) -> torch.Tensor:
        """[n_all, n_all - 1, 2, B]: p_j - p_i for every agent i and the others j in order."""
        n_all = self.table.n_agents
        p = self.pos[:n_all]
        rel = p[None] - p[:, None]
        return rel[self._self_idx, self._others]

    def _predator_rewards(self, d_pp: torch.Tensor) -> torch.Tensor:
        """[B] shaped predator reward shared by all predators."""
        hits = (d_pp < PREDATOR_SIZE + self.prey_size).sum(dim=0).to(d_pp.dtype)
        return -0.1 * d_pp.sum(dim=0) + self.collide_bonus * hits

    def _obstacle_rel(self, who: int) -> torch.Tensor:
        """[L, 2, B] positions of the colliding landmarks relative to agent ``who``."""
        lm = self.pos[self._obstacle_idx]
        return lm - self.pos[who : who + 1]

    def _prey_home_rel(self) -> torch.Tensor:
        """[2, B] the prey's home point minus its position (tag: the origin)."""
        return -self.pos[self.prey_index]

    def _scripted_actions(self) -> torch.Tensor:
        i = self.prey_index
        pred_rel = self.pos[:N_PREDATORS] - self.pos[i : i + 1]
        act = prey_action(self.pos[i], self.vel[i], pred_rel, self._obstacle_rel(i),
                          self._prey_home_rel(), self.prey_params)
        return act[None]


def tag_table() -> EntityTable:
    n_lm = 2
    return EntityTable(
        size=(PREDATOR_SIZE,) * 3 + (0.05,) + (LANDMARK_SIZE,) * n_lm,
        movable=(True,) * 4 + (False,) * n_lm,
        collide=(True,) * (4 + n_lm),
        accel=(PREDATOR_ACCEL,) * 3 + (4.0,) + (None,) * n_lm,
        max_speed=(PREDATOR_MAX_SPEED,) * 3 + (1.3,) + (None,) * n_lm,
        n_agents=4,
    )


class TagEnv(PredatorPreyEnv):
    """B worlds of simple_tag: 3 learned predators, 1 scripted prey, 2 obstacles."""

    name = "tag"
    reference_returns = REFERENCE_RETURNS
    n_landmarks = 2

    def __init__(self, num_envs: int, device="cpu", seed=None, dtype=torch.float32,
                 action_layout: str = "box2", prey_params: PreyParams = PREY_PARAMS):
        super().__init__(tag_table(), num_envs, device, seed, dtype, action_layout, prey_params)
        self._obstacle_idx = torch.tensor([4, 5], dtype=torch.long, device=self.device)

    @property
    def obs_dims(self) -> tuple[int, ...]:
        return (16,) * N_PREDATORS

    def _observe(self):
        bsz = self.num_envs
        p = self.pos[:N_PREDATORS]  # [3, 2, B]
        v = self.vel[:N_PREDATORS]
        lm = self.pos[4:]
        rel_lm = (lm[None] - p[:, None]).reshape(N_PREDATORS, -1, bsz)
        rel_o = self._relative_others()[:N_PREDATORS].reshape(N_PREDATORS, -1, bsz)
        prey_v = self.vel[N_PREDATORS : N_PREDATORS + 1].expand(N_PREDATORS, 2, bsz)
        return torch.cat([v, p, rel_lm, rel_o, prey_v], dim=1)

    def _rewards(self):
        d_pp = self._predator_prey_dist()
        r_adv = self._predator_rewards(d_pp)
        hits = (d_pp < PREDATOR_SIZE + self.prey_size).sum(dim=0).to(d_pp.dtype)
        prey_p = self.pos[N_PREDATORS]  # [2, B]
        r_prey = 0.1 * d_pp.sum(0) - 10.0 * hits - bound_penalty(prey_p.abs()).sum(0)
        return torch.cat([r_adv[None].expand(N_PREDATORS, -1), r_prey[None]], dim=0)


__all__ = ["TagEnv", "PredatorPreyEnv", "bound_penalty", "REFERENCE_RETURNS"]
