"""How agents map onto stacked models: what each model sees and which outputs it owns.

Dataset arrays are agent-major per row: observations [B, n, obs_max], actions [B, n, act_max],
zero-padded beyond each agent's own width. Stacked networks take [m, B, width]. A layout
turns one into the other for one way of splitting the joint behaviour mu(a | s):

  sequential  m = n   model k (agent order[k]) sees [o_order[k], a_order[0], ..., a_order[k-1]]
                      and models mu_k(a_k | s, a_<k): the OMSD chain rule (DESIGN.md 1.1, 1.3)
  marginal    m = n   model k sees o_k only: mu_k(a_k | o_k), the IND/CTDE baselines
  joint       m = 1   one model over all actions conditioned on all observations (JAL)

Later agents' actions are zeroed in a prefix condition and masked out of the first layer, so
every model has the same input width and all n run in one batched launch.

Stage 2 converts a batch once: ActorLayout.inputs gives the actors' observation stack, and
ScoreLayout's *_from_models take that stack and the actors' output stack as they are (a
decentralized stack in agent index order, reordered for a sequential order; or the joint one).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

SCORE_MODES = ("sequential", "marginal", "joint")
ACTOR_MODES = ("decentralized", "joint")


@dataclass(frozen=True)
class AgentSpec:
    """Per-agent widths, taken from the data: nothing assumes a number of agents."""

    obs_dims: tuple[int, ...]
    act_dims: tuple[int, ...]

    def __post_init__(self):
        if len(self.obs_dims) != len(self.act_dims) or not self.obs_dims:
            raise ValueError(f"obs_dims {self.obs_dims} and act_dims {self.act_dims} must be "
                             "non-empty and of equal length")
        if min(self.obs_dims) < 1 or min(self.act_dims) < 1:
            raise ValueError(f"every width must be >= 1: {self.obs_dims}, {self.act_dims}")

    @property
    def n_agents(self) -> int:
        return len(self.obs_dims)

    @property
    def obs_max(self) -> int:
        return max(self.obs_dims)

    @property
    def act_max(self) -> int:
        return max(self.act_dims)

    def obs_mask(self) -> Tensor:
        """[n, obs_max] bool: True where agent i has an observation column."""
        return torch.arange(self.obs_max)[None, :] < torch.tensor(self.obs_dims)[:, None]

    def act_mask(self) -> Tensor:
        """[n, act_max] bool: True where agent i has an action column."""
        return torch.arange(self.act_max)[None, :] < torch.tensor(self.act_dims)[:, None]


def check_order(order, n: int) -> tuple[int, ...]:
    order = tuple(range(n)) if order is None else tuple(int(i) for i in order)
    if sorted(order) != list(range(n)):
        raise ValueError(f"agent order must be a permutation of 0..{n - 1}, got {order}")
    return order


def to_stack(x: Tensor, order: tuple[int, ...]) -> Tensor:
    """[B, n, w] -> [n, B, w], model k holding agent order[k]. Basic indexing only: a Python
    list index on CUDA data is a host-to-device copy, which CUDA-graph capture forbids."""
    return torch.stack([x[:, i] for i in order])


def reorder(x: Tensor, order: tuple[int, ...]) -> Tensor:
    """A stack in agent index order [n, B, w] -> model k holding agent order[k] (the tensor
    itself when order is the index order). Basic indexing only, as to_stack."""
    if order == tuple(range(len(order))):
        return x
    return torch.stack([x[i] for i in order])


def from_stack(x: Tensor, order: tuple[int, ...]) -> Tensor:
    """Inverse of to_stack: [n, B, w] -> [B, n, w] in agent index order."""
    inverse = [0] * len(order)
    for k, agent in enumerate(order):
        inverse[agent] = k
    return torch.stack([x[k] for k in inverse], dim=1)


def to_joint(x: Tensor) -> Tensor:
    """[B, n, w] -> [1, B, n * w]."""
    return x.reshape(x.shape[0], -1)[None]


def from_joint(x: Tensor, n: int) -> Tensor:
    """[1, B, n * w] -> [B, n, w]."""
    return x[0].reshape(x.shape[1], n, -1)


def to_models(x: Tensor, joint: bool, order: tuple[int, ...]) -> Tensor:
    """[B, n, w] -> [m, B, w'] as a stack of models sees it: one joint model (m = 1,
    w' = n w) or one model per agent, model k on agent order[k]."""
    return to_joint(x) if joint else to_stack(x, order)


def from_models(x: Tensor, joint: bool, order: tuple[int, ...]) -> Tensor:
    """Inverse of to_models: [m, B, w'] -> [B, n, w] in agent index order."""
    return from_joint(x, len(order)) if joint else from_stack(x, order)


class ScoreLayout:
    """Inputs, targets and masks of the behaviour score models for one decomposition."""

    def __init__(self, spec: AgentSpec, mode: str, order=None):
        if mode not in SCORE_MODES:
            raise ValueError(f"score mode must be one of {SCORE_MODES}, got {mode!r}")
        self.spec, self.mode = spec, mode
        n = spec.n_agents
        self.order = check_order(order, n) if mode == "sequential" else tuple(range(n))
        if mode == "joint":
            self.models, self.x_dim, self.cond_dim = 1, n * spec.act_max, n * spec.obs_max
        else:
            prefix = (n - 1) * spec.act_max if mode == "sequential" else 0
            self.models, self.x_dim, self.cond_dim = n, spec.act_max, spec.obs_max + prefix
        # Slot k of a prefix condition holds agent order[j] for j < k: mask [n, n - 1].
        self._prefix = (torch.arange(max(n - 1, 0))[None, :] < torch.arange(n)[:, None])

    def x_mask(self) -> Tensor:
        """[m, x_dim] bool: the action columns each model owns."""
        act = self.spec.act_mask()
        return act.reshape(1, -1) if self.mode == "joint" else act[list(self.order)]

    def in_mask(self) -> Tensor:
        """[m, x_dim + cond_dim] bool: the first-layer inputs each model really has."""
        spec, obs = self.spec, self.spec.obs_mask()
        if self.mode == "joint":
            return torch.cat([self.x_mask(), obs.reshape(1, -1)], dim=1)
        parts = [self.x_mask(), obs[list(self.order)]]
        if self.mode == "sequential":
            act = spec.act_mask()[list(self.order[:-1])]                     # [n-1, act_max]
            prefix = self._prefix[:, :, None] & act[None]                     # [n, n-1, act_max]
            parts.append(prefix.reshape(spec.n_agents, -1))
        return torch.cat(parts, dim=1)

    def targets(self, actions: Tensor) -> Tensor:
        """actions [B, n, act_max] -> x0 [m, B, x_dim]."""
        return to_models(actions, self.mode == "joint", self.order)

    def targets_from_models(self, y: Tensor) -> Tensor:
        """The actors' stacked actions y -> x0 [m, B, x_dim], without going through the
        agent-major layout. y as an ActorLayout of the same jointness gives it: [n, B, act_max]
        in agent index order (x0 is y in this layout's order), or joint [1, B, n * act_max]
        (x0 is y)."""
        return y if self.mode == "joint" else reorder(y, self.order)

    def actions_from(self, x: Tensor) -> Tensor:
        """x [m, B, x_dim] -> actions [B, n, act_max]."""
        return from_models(x, self.mode == "joint", self.order)

    def conditions(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """obs [B, n, obs_max], actions [B, n, act_max] -> c [m, B, cond_dim].

        Sequential mode needs actions (dataset actions in stage 1, the current policies'
        actions in stage 2); model k uses only those of agents order[:k]."""
        joint, index_order = self.mode == "joint", tuple(range(self.spec.n_agents))
        return self.conditions_from_models(
            to_models(obs, joint, index_order),
            None if actions is None or self.mode != "sequential" else to_stack(actions, index_order))

    def conditions_from_models(self, obs: Tensor, actions: Tensor | None = None) -> Tensor:
        """conditions() from stacked inputs, as an ActorLayout of the same jointness lays them
        out (stage 2 passes the actors' own input and output stacks): obs [n, B, obs_max] and
        actions [n, B, act_max] in agent index order, or joint [1, B, n * w] -> c [m, B, cond_dim]."""
        o = obs if self.mode == "joint" else reorder(obs, self.order)
        if self.mode != "sequential" or self.spec.n_agents == 1:
            return o
        if actions is None:
            raise ValueError("sequential conditions need the earlier agents' actions")
        n, batch = self.spec.n_agents, obs.shape[1]
        earlier = torch.stack([actions[i] for i in self.order[:-1]], 1)       # [B, n-1, act_max]
        # Slot j < k of model k: ones below the diagonal, made on the actions' device.
        tri = torch.ones(n, n - 1, dtype=earlier.dtype, device=earlier.device).tril(-1)
        prefix = earlier[:, None] * tri[None, :, :, None]
        prefix = prefix.reshape(batch, n, -1).transpose(0, 1)                # [n, B, (n-1) act_max]
        return torch.cat([o, prefix], dim=-1)


class ActorLayout:
    """Inputs and outputs of the actors: one per agent on its own observation, or one joint."""

    def __init__(self, spec: AgentSpec, mode: str = "decentralized"):
        if mode not in ACTOR_MODES:
            raise ValueError(f"actor mode must be one of {ACTOR_MODES}, got {mode!r}")
        self.spec, self.mode = spec, mode
        n, order = spec.n_agents, tuple(range(spec.n_agents))
        self.order = order
        if mode == "joint":
            self.models, self.in_dim, self.out_dim = 1, n * spec.obs_max, n * spec.act_max
        else:
            self.models, self.in_dim, self.out_dim = n, spec.obs_max, spec.act_max

    def in_mask(self) -> Tensor:
        obs = self.spec.obs_mask()
        return obs.reshape(1, -1) if self.mode == "joint" else obs

    def out_mask(self) -> Tensor:
        act = self.spec.act_mask()
        return act.reshape(1, -1) if self.mode == "joint" else act

    def inputs(self, obs: Tensor) -> Tensor:
        """obs [B, n, obs_max] -> [m, B, in_dim]."""
        return to_models(obs, self.mode == "joint", self.order)

    def actions_from(self, y: Tensor) -> Tensor:
        """y [m, B, out_dim] -> actions [B, n, act_max]."""
        return from_models(y, self.mode == "joint", self.order)
