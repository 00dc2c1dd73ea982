"""A dataset as tensors on one device, sampled with an explicit generator (reproducible batches),
and :func:`draw_rows`, the one way the package picks dataset rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scoredec.layout import AgentSpec


def draw_rows(n_rows: int, count: int, generator: torch.Generator | np.random.Generator, *,
              replace: bool = True) -> Tensor:
    """Indices of dataset rows drawn uniformly from [0, n_rows): int64 [count], or
    [min(count, n_rows)] with ``replace=False``.

    replace=True: independent draws (training minibatches, ``scoredec sample``); replace=False:
    distinct rows, a fixed subsample to judge a model on (the diagnostics and the stage-1
    report), all rows when count >= n_rows.
    generator: a torch.Generator (the indices come back on its device) or a numpy Generator
    (only ``scoredec sample`` uses one: its rows, and so its output for a seed, stay those of
    earlier versions). Each draws in one fixed way, below: changing it changes every number
    made downstream of a seed.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive integer (a dataset with rows), got {n_rows!r}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(generator, np.random.Generator):
        idx = (generator.integers(0, n_rows, size=count) if replace
               else generator.permutation(n_rows)[:count])
        return torch.from_numpy(np.asarray(idx, dtype=np.int64))
    if isinstance(generator, torch.Generator):
        if replace:
            return torch.randint(n_rows, (count,), generator=generator, device=generator.device)
        return torch.randperm(n_rows, generator=generator, device=generator.device)[:count]
    raise TypeError(f"generator must be a torch.Generator or a numpy Generator, got "
                    f"{type(generator).__name__}")


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
        idx = draw_rows(len(self), batch_size, generator).to(self.device)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.terminals[idx])
