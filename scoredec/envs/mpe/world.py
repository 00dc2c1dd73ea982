"""The offline-MARL "world" task (``simple_world``), batched.

Followed zbzhu99/madiff ``third_party/multiagent-particle-envs/multiagent/scenarios/
simple_world.py`` (the OMAR copy). This is not the original MPE ``simple_world_comm``:

- ``make_world`` overrides its arguments to 3 adversaries + 1 good agent and 1 landmark.
  Agents 0-2 are predators (size 0.075, accel 3, max speed 1.0), agent 3 is the prey (size
  0.045, accel 4, max speed 1.3). All collide, all silent (``dim_c = 4`` is unused: world
  observations carry no comm). Every agent has ``leader = True``.
- ``world.landmarks`` = [1 obstacle (size 0.2, collide), 2 food (size 0.03, no collide),
  2 forests (size 0.3, no collide)], none movable. Only the obstacle exerts contact forces.
- Reset: agents at ``uniform(-1, 1, 2)``, all five landmarks at ``uniform(-0.9, 0.9, 2)``
  (the original draws food and forests a second time from the same law; the law is
  unchanged), velocities 0.
- Predator reward: ``-0.1 * sum_adv |p_adv - p_prey| + 5 * #pairs`` (collision at < 0.12).
- Prey reward: ``0.1 * sum_adv |p - p_adv| - 5 * #pairs - 2 * sum_axis bound(|x|)
  + 2 * #food within 0.075 + 0.05 * min_food |p_food - p|`` (sic: the last term rewards
  distance to the nearest food).
- Observation (``observation``, not ``observation2``): ``[v_i, p_i, p_e - p_i for the 5
  landmarks in order (obstacle, food 0, food 1, forest 0, forest 1), p_j - p_i for each other
  agent j, v_j for each other non-adversary j, f_0, f_1]`` with ``f_k = +1`` if
  ``|p_i - p_forest_k| < size_i + 0.3`` else -1. Forest hiding never applies because every
  agent is a leader (``... or agent.leader``), so other agents are always visible.
  Width 24 for a predator, 22 for the prey.
- Episode return: predator 0's reward summed over 25 steps. References: random -6.8,
  expert 79.5.
"""

from __future__ import annotations

import torch

from .core import EntityTable, norm2
from .prey import PREY_PARAMS, PreyParams
from .tag import (N_PREDATORS, PREDATOR_ACCEL, PREDATOR_MAX_SPEED, PREDATOR_SIZE,
                  PredatorPreyEnv, bound_penalty)

PREY_SIZE = 0.045
OBSTACLE_SIZE = 0.2
FOOD_SIZE = 0.03
FOREST_SIZE = 0.3
N_FOOD = 2
N_FOREST = 2
REFERENCE_RETURNS = {"random": -6.8, "expert": 79.5}


def world_table() -> EntityTable:
    lm_size = (OBSTACLE_SIZE,) + (FOOD_SIZE,) * N_FOOD + (FOREST_SIZE,) * N_FOREST
    n_lm = len(lm_size)
    return EntityTable(
        size=(PREDATOR_SIZE,) * 3 + (PREY_SIZE,) + lm_size,
        movable=(True,) * 4 + (False,) * n_lm,
        collide=(True,) * 4 + (True,) + (False,) * (n_lm - 1),
        accel=(PREDATOR_ACCEL,) * 3 + (4.0,) + (None,) * n_lm,
        max_speed=(PREDATOR_MAX_SPEED,) * 3 + (1.3,) + (None,) * n_lm,
        n_agents=4,
    )


class WorldEnv(PredatorPreyEnv):
    """B worlds of simple_world: 3 learned predators, 1 scripted prey, obstacle, food, forests."""

    name = "world"
    reference_returns = REFERENCE_RETURNS
    collide_bonus = 5.0
    prey_size = PREY_SIZE
    n_landmarks = 1 + N_FOOD + N_FOREST

    def __init__(self, num_envs: int, device="cpu", seed=None, dtype=torch.float32,
                 action_layout: str = "box2", prey_params: PreyParams = PREY_PARAMS):
        super().__init__(world_table(), num_envs, device, seed, dtype, action_layout,
                         prey_params)
        self._obstacle_idx = torch.tensor([4], dtype=torch.long, device=self.device)
        self._food = slice(5, 5 + N_FOOD)
        self._forest = slice(5 + N_FOOD, 5 + N_FOOD + N_FOREST)

    @property
    def obs_dims(self) -> tuple[int, ...]:
        return (24,) * N_PREDATORS

    def _observe(self):
        bsz = self.num_envs
        p = self.pos[:N_PREDATORS]  # [3, 2, B]
        v = self.vel[:N_PREDATORS]
        lm = self.pos[4:]
        rel_lm = lm[None] - p[:, None]  # [3, 5, 2, B]
        rel_o = self._relative_others()[:N_PREDATORS].reshape(N_PREDATORS, -1, bsz)
        prey_v = self.vel[N_PREDATORS : N_PREDATORS + 1].expand(N_PREDATORS, 2, bsz)
        d_forest = norm2(rel_lm[:, 1 + N_FOOD :], dim=2)  # [3, 2, B]
        inside = d_forest < (PREDATOR_SIZE + FOREST_SIZE)
        flags = torch.where(inside, 1.0, -1.0).to(p.dtype)
        return torch.cat([v, p, rel_lm.reshape(N_PREDATORS, -1, bsz), rel_o, prey_v, flags],
                         dim=1)

    def _prey_home_rel(self):
        """The nearest food, relative to the prey (from the prey's own observation)."""
        prey_p = self.pos[N_PREDATORS]
        rel = self.pos[self._food] - prey_p[None]  # [2 food, 2, B]
        d = norm2(rel, dim=1)  # [2, B]
        # ties go to food 0, as argmin over a list would
        pick = (d[1] < d[0])[None]
        return torch.where(pick, rel[1], rel[0])

    def _rewards(self):
        d_pp = self._predator_prey_dist()
        r_adv = self._predator_rewards(d_pp)
        hits = (d_pp < PREDATOR_SIZE + PREY_SIZE).sum(dim=0).to(d_pp.dtype)
        prey_p = self.pos[N_PREDATORS]
        d_food = norm2(self.pos[self._food] - prey_p[None], dim=1)  # [2, B]
        eaten = (d_food < PREY_SIZE + FOOD_SIZE).sum(0).to(d_pp.dtype)
        r_prey = (0.1 * d_pp.sum(0) - 5.0 * hits - 2.0 * bound_penalty(prey_p.abs()).sum(0)
                  + 2.0 * eaten + 0.05 * d_food.amin(0))
        return torch.cat([r_adv[None].expand(N_PREDATORS, -1), r_prey[None]], dim=0)


__all__ = ["WorldEnv", "REFERENCE_RETURNS"]
