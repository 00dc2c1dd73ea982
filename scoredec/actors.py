"""Deterministic decentralized actors, the product every method trains and `evaluate` runs.

OMSD, its ablations and BC (scoredec.policy) and every baseline (scoredec.baselines) train the
same `Actors` and save them with their description (pipeline.save_actors), so loading and
evaluation are one code path for all methods.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scoredec.layout import ActorLayout, AgentSpec
from scoredec.nets import StackedBatchNorm, StackedMLP


def squared_error(actions: Tensor, targets: Tensor, act_mask: Tensor) -> Tensor:
    """(actions - targets)^2 on each agent's own action dims, 0 on the padding: [B, n, act_max].

    actions, targets [B, n, act_max]; act_mask [n, act_max], 1 where an agent has the dim.
    Every imitation term (BC, IQL's weighted regression, TD3+BC, OMAR) reduces this."""
    return (actions - targets) ** 2 * act_mask


class Actors(nn.Module):
    """Deterministic actors pi_k(o_k) = tanh(MLP(o_k)) in one stack (or one joint actor)."""

    def __init__(self, spec: AgentSpec, mode: str = "decentralized", hidden: int = 256,
                 layers: int = 2, input_norm: bool = False):
        super().__init__()
        self.spec, self.hidden, self.layers = spec, hidden, layers
        self.layout = ActorLayout(spec, mode)
        lay = self.layout
        # input_norm: a BatchNorm on each actor's input, as OMAR's public MLPs (its MA-CQL and
        # OMAR actors); call .eval() before acting, or one observation has no batch statistics.
        self.norm = StackedBatchNorm(lay.models, lay.in_dim) if input_norm else None
        self.mlp = StackedMLP(lay.models, lay.in_dim, (hidden,) * layers, lay.out_dim,
                              activation="relu", in_mask=lay.in_mask())
        self.register_buffer("out_mask", lay.out_mask().to(torch.float32)[:, None, :])
        # [n, act_max] valid action slots, on the actors' device (no host copy inside a step,
        # which CUDA-graph capture forbids); not saved: it follows from the spec.
        self.register_buffer("act_mask", spec.act_mask().to(torch.float32), persistent=False)

    def forward(self, obs: Tensor) -> Tensor:
        """obs [B, n, obs_max] -> actions [B, n, act_max] in [-1, 1], zero beyond act_dims.

        Decentralized: actor k reads only row k of obs."""
        return self.layout.actions_from(self.forward_models(self.layout.inputs(obs)))

    def forward_models(self, x: Tensor) -> Tensor:
        """The actors on their own stacked layout: x = layout.inputs(obs) [m, B, in_dim] ->
        [m, B, out_dim], zero beyond act_dims (the one padding mask of the actions)."""
        if self.norm is not None:
            x = self.norm(x)
        return torch.tanh(self.mlp(x)) * self.out_mask.to(x.dtype)

    @torch.no_grad()
    def act(self, obs: Tensor) -> Tensor:
        return self(obs)

    def describe(self) -> dict:
        """What rebuilds these actors: saved beside their weights by every method."""
        return {"obs_dims": list(self.spec.obs_dims), "act_dims": list(self.spec.act_dims),
                "mode": self.layout.mode, "hidden": self.hidden, "layers": self.layers,
                "input_norm": self.norm is not None}

    @classmethod
    def from_description(cls, d: dict) -> "Actors":
        # input_norm is absent from descriptions saved before it existed: none then.
        return cls(AgentSpec(tuple(d["obs_dims"]), tuple(d["act_dims"])), d["mode"], d["hidden"],
                   d["layers"], d.get("input_norm", False))
