"""Cooperative navigation ("simple_spread") as used by OMAR / MADiff / OMSD, batched.

Followed ling-pan/OMAR ``multiagent-particle-envs/multiagent/scenarios/simple_spread.py``
(identical in zbzhu99/madiff ``third_party/multiagent-particle-envs``):

- N agents (default 3), size 0.15, collide, silent, no accel (sensitivity 5, force = 5 a),
  no max speed; N landmarks, size 0.05 (Entity default), collide False, not movable.
- Reset: every agent then every landmark at ``uniform(-b, b, 2)``, b = 1 for N <= 3 and
  b = 2 for N <= 10 (the original does not handle N > 10; here that raises). Velocities 0.
- Reward of agent i (the "modified by ling" reward): ``sum_l min(1 / min_a |p_a - p_l|, 10)``
  minus 5 for every other agent j with ``|p_i - p_j| < 0.3`` (strict, sizes summed).
- Observation of agent i (dim 4 + 2N + 4(N-1), 18 for N = 3):
  ``[v_i, p_i, p_l - p_i for each landmark l, p_j - p_i for each other agent j in index
  order, c_j for each other agent j]`` where the comm states c_j are always zeros(2)
  (``dim_c = 2``, silent agents).
- Episode return (DESIGN.md 1.7, OMAR ``eval_policy``): sum over 25 steps of the mean agent
  reward. References: random 159.8, expert 516.8 (published, for N = 3). At N != 3 a
  SpreadEnv has none of its own (``reference_returns`` is None); ``make_mpe`` attaches the
  ones measured with the package's policies (references.py).
"""

from __future__ import annotations

import torch

from .core import EntityTable, MPEEnv, norm2

AGENT_SIZE = 0.15
LANDMARK_SIZE = 0.05
DIM_C = 2
REWARD_CAP = 10.0
COLLISION_PENALTY = 5.0
REFERENCE_RETURNS = {"random": 159.8, "expert": 516.8}


def spread_table(n_agents: int) -> EntityTable:
    n = n_agents
    return EntityTable(
        size=(AGENT_SIZE,) * n + (LANDMARK_SIZE,) * n,
        movable=(True,) * n + (False,) * n,
        collide=(True,) * n + (False,) * n,
        accel=(None,) * (2 * n),
        max_speed=(None,) * (2 * n),
        n_agents=n,
    )


def spread_boundary(n_agents: int) -> float:
    """Half-width of the reset square (``reset_world``)."""
    if n_agents <= 3:
        return 1.0
    if n_agents <= 10:
        return 2.0
    raise ValueError(f"simple_spread defines initial states for n_agents <= 10, got {n_agents}")


class SpreadEnv(MPEEnv):
    """B worlds of cooperative navigation with N agents and N landmarks."""

    name = "spread"
    reference_returns = REFERENCE_RETURNS

    def __init__(self, num_envs: int, device="cpu", seed=None, n_agents: int = 3,
                 dtype=torch.float32, action_layout: str = "box2"):
        if n_agents < 2:
            raise ValueError(f"spread needs n_agents >= 2, got {n_agents}")
        self.boundary = spread_boundary(n_agents)
        # the published references are 3-agent returns: meaningless for another count
        self.reference_returns = REFERENCE_RETURNS if n_agents == 3 else None
        super().__init__(spread_table(n_agents), n_agents, num_envs, device, seed, dtype,
                         action_layout)
        n = n_agents
        others = [[j for j in range(n) if j != i] for i in range(n)]
        self._others = torch.tensor(others, dtype=torch.long, device=self.device)  # [N, N-1]
        self._self_idx = torch.arange(n, device=self.device)[:, None]
        self._eye = torch.eye(n, dtype=torch.bool, device=self.device)[..., None]

    @property
    def obs_dims(self) -> tuple[int, ...]:
        n = self.n_agents
        return (4 + 2 * n + 2 * (n - 1) + DIM_C * (n - 1),) * n

    def _sample_positions(self, gen):
        n = self.n_agents
        b = self.boundary
        agents = self._uniform(gen, n, -b, b)
        landmarks = self._uniform(gen, n, -b, b)
        return torch.cat([agents, landmarks], dim=1)

    def _observe(self):
        n = self.n_agents
        p = self.pos[:n]  # [N, 2, B]
        lm = self.pos[n:]
        v = self.vel[:n]
        bsz = p.shape[-1]
        rel_lm = lm[None] - p[:, None]  # [N, L, 2, B]
        rel_ag = p[None] - p[:, None]  # [N(obs), N, 2, B]
        rel_other = rel_ag[self._self_idx, self._others]  # [N, N-1, 2, B]
        comm = torch.zeros(n, DIM_C * (n - 1), bsz, dtype=p.dtype, device=p.device)
        return torch.cat(
            [v, p, rel_lm.reshape(n, -1, bsz), rel_other.reshape(n, -1, bsz), comm], dim=1
        )

    def _rewards(self):
        n = self.n_agents
        p = self.pos[:n]
        lm = self.pos[n:]
        d_lm = norm2(lm[:, None] - p[None], dim=2)  # [L, N, B]
        cover = torch.clamp(1.0 / d_lm.amin(dim=1), max=REWARD_CAP).sum(dim=0)  # [B]
        d_ag = norm2(p[:, None] - p[None], dim=2)  # [N, N, B]
        hits = ((d_ag < 2 * AGENT_SIZE) & ~self._eye).sum(dim=1)  # [N, B]
        return cover[None] - COLLISION_PENALTY * hits.to(p.dtype)
