"""Record a dataset from one's own multi-agent episodes, step by step (docs/dataset_schema.md).

    rec = EpisodeRecorder(agent_names=("rover", "drone"), obs_dims=(4, 6), act_dims=(2, 2))
    obs, _ = env.reset(seed=0)
    while env.agents:
        actions = {a: policy(a, obs[a]) for a in env.agents}
        nxt, rewards, terms, truncs, _ = env.step(actions)
        rec.add(obs, {a: action_from_env(actions[a], env.action_space(a)) for a in actions},
                rewards, nxt, terms, truncs)
        obs = nxt
    write_dataset("mine.h5", rec.dataset(env_id="my-robots", quality="scripted",
                                         generator="my_script.py", seed=0))

Each `add` is one row: every agent's observation flattened and zero-padded to the widest
agent, its action (already in [-1, 1]: scoredec.envs.parallel.action_from_env maps a Box
action there), its reward, the next observation, and whether the episode ended there:
when every agent still acting has finished: terminal if all of them terminated, else a
timeout (truncated).
An agent missing from the dicts (it has finished) gets zeros.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scoredec.data.schema import MultiAgentDataset

__all__ = ["EpisodeRecorder"]


class EpisodeRecorder:
    """Rows of a MultiAgentDataset, added one joint step at a time."""

    def __init__(self, agent_names: Sequence[str], obs_dims: Sequence[int],
                 act_dims: Sequence[int]):
        if not (len(agent_names) == len(obs_dims) == len(act_dims)) or not agent_names:
            raise ValueError(f"agent_names {list(agent_names)}, obs_dims {list(obs_dims)} and "
                             f"act_dims {list(act_dims)} need one entry per agent")
        self.agent_names = tuple(str(a) for a in agent_names)
        self.obs_dims, self.act_dims = tuple(int(d) for d in obs_dims), tuple(int(d) for d in act_dims)
        self._keys = tuple(agent_names)
        self._rows: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards",
                                                        "next_observations", "terminals",
                                                        "timeouts")}

    def __len__(self) -> int:
        return len(self._rows["rewards"])

    def _padded(self, values: Mapping, dims: tuple[int, ...], what: str) -> np.ndarray:
        out = np.zeros((len(dims), max(dims)), np.float32)
        for i, (agent, d) in enumerate(zip(self._keys, dims)):
            if agent not in values:
                continue
            v = np.asarray(values[agent], np.float32).reshape(-1)
            if v.size != d:
                raise ValueError(f"{what} of agent {agent!r} has {v.size} values, expected {d}")
            out[i, :d] = v
        return out

    def add(self, obs: Mapping, actions: Mapping, rewards: Mapping, next_obs: Mapping,
            terminations: Mapping, truncations: Mapping) -> None:
        """One joint step; dicts keyed by agent (PettingZoo's step output fits as is)."""
        self._rows["observations"].append(self._padded(obs, self.obs_dims, "observation"))
        self._rows["actions"].append(self._padded(actions, self.act_dims, "action"))
        self._rows["rewards"].append(np.array([float(rewards.get(a, 0.0)) for a in self._keys],
                                              np.float32))
        self._rows["next_observations"].append(self._padded(next_obs, self.obs_dims,
                                                            "next observation"))
        live = [a for a in self._keys if a in terminations or a in truncations]
        ended = bool(live) and all(terminations.get(a, False) or truncations.get(a, False)
                                   for a in live)
        terminal = ended and all(terminations.get(a, False) for a in live)
        timeout = ended and not terminal
        self._rows["terminals"].append(terminal)
        self._rows["timeouts"].append(timeout)

    def dataset(self, env_id: str, quality: str, generator: str, seed: int,
                reference_returns: dict[str, float] | None = None,
                attrs: dict | None = None) -> MultiAgentDataset:
        """The rows so far as a validated MultiAgentDataset (write it with write_dataset)."""
        if not len(self):
            raise ValueError("no steps recorded")
        arrays = {k: np.stack(v) if k not in ("terminals", "timeouts") else np.array(v, bool)
                  for k, v in self._rows.items()}
        ds = MultiAgentDataset(**arrays, obs_dims=self.obs_dims, act_dims=self.act_dims,
                               agent_names=self.agent_names, env_id=env_id, quality=quality,
                               generator=generator, seed=int(seed),
                               reference_returns=reference_returns, attrs=dict(attrs or {}))
        ds.validate(f"<{env_id}/{quality}>")
        return ds
