"""A dataset as tensors on one device, sampled with an explicit generator (reproducible batches)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scoredec.layout import AgentSpec


@dataclass
class Batch:
    """obs/next_obs [B, n, obs_max], actions [B, n, act_max], rewards [B, n], terminals [B]."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminals: Tensor


class OfflineData:
    """All transitions of a MultiAgentDataset as tensors, with uniform minibatch sampling."""

    def __init__(self, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor,
                 terminals: Tensor, spec: AgentSpec):
        self.obs, self.actions, self.rewards = obs, actions, rewards
        self.next_obs, self.terminals, self.spec = next_obs, terminals, spec

    @classmethod
    def from_dataset(cls, ds, device: str | torch.device = "cpu",
                     dtype: torch.dtype = torch.float32) -> "OfflineData":
        """ds: scoredec.data.MultiAgentDataset (validated on read)."""
        def t(x):
            return torch.as_tensor(x, device=device).to(dtype)
        return cls(t(ds.observations), t(ds.actions), t(ds.rewards), t(ds.next_observations),
                   torch.as_tensor(ds.terminals, device=device).to(dtype),
                   AgentSpec(tuple(ds.obs_dims), tuple(ds.act_dims)))

    def __len__(self) -> int:
        return self.obs.shape[0]

    @property
    def device(self) -> torch.device:
        return self.obs.device

    def to(self, dtype: torch.dtype) -> "OfflineData":
        return OfflineData(self.obs.to(dtype), self.actions.to(dtype), self.rewards.to(dtype),
                           self.next_obs.to(dtype), self.terminals.to(dtype), self.spec)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=generator.device)
        idx = idx.to(self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.terminals[idx])
