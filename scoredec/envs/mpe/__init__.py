"""Batched multi-agent particle environments (spread, tag, world) in the variant of the
offline-MARL literature (OMAR / MADiff / OMSD), with a scripted prey and scripted experts.
The plain numpy reference they are tested against is tests/mpe_reference.py.

    env = make_mpe("spread", num_envs=1000, device="cpu", seed=0)
    obs = env.reset()                                  # [B, n, obs_dim] float32
    obs, rew, done, info = env.step(actions)           # actions [B, n, act_dim] in [-1, 1]
    R = episode_return("spread", rewards)              # rewards [B, 25, n] -> [B]
    score = normalized_score("spread", R)              # DESIGN.md 1.7
"""

from __future__ import annotations

import torch

from .core import EPISODE_LENGTH, MPEEnv
from .experts import SPREAD_EXPERT_AGENTS
from .spread import REFERENCE_RETURNS as SPREAD_REFERENCE, SpreadEnv
from .tag import REFERENCE_RETURNS as TAG_REFERENCE, TagEnv
from .world import REFERENCE_RETURNS as WORLD_REFERENCE, WorldEnv

__all__ = [
    "make_mpe",
    "episode_return",
    "normalized_score",
    "REFERENCE_RETURNS",
    "EPISODE_LENGTH",
    "MPEEnv",
    "SpreadEnv",
    "TagEnv",
    "WorldEnv",
]

REFERENCE_RETURNS = {
    "spread": SPREAD_REFERENCE,
    "tag": TAG_REFERENCE,
    "world": WORLD_REFERENCE,
}
"""DESIGN.md 1.7: the authors' random and expert returns per task."""

_ALIASES = {
    "spread": "spread", "simple_spread": "spread",
    "tag": "tag", "simple_tag": "tag",
    "world": "world", "simple_world": "world",
}


def _canonical(name: str) -> str:
    try:
        return _ALIASES[name]
    except KeyError:
        raise ValueError(f"unknown MPE task {name!r}; expected one of {sorted(_ALIASES)}") from None


def make_mpe(
    name: str,
    num_envs: int,
    device: str | torch.device = "cpu",
    seed: int | None = None,
    n_agents: int | None = None,
    dtype: torch.dtype = torch.float32,
    action_layout: str = "box2",
) -> MPEEnv:
    """Build B lock-stepped environments of one task.

    name: "spread" | "tag" | "world" (or the original "simple_*" names).
    n_agents: spread only (N agents and N landmarks, default 3); tag and world have three
    learned predators and one scripted prey. At N != 3 the spread environment carries the
    reference returns measured with the package's random and scripted-expert policies
    (references.py; measured once per N and process, well under a second).
    action_layout: "box2" (default; the literature's ``discrete_action=False``: 2-d force
    actions) or "onehot5" (``discrete_action=True``: u = [a1 - a2, a3 - a4]).
    """
    task = _canonical(name)
    if task == "spread":
        env = SpreadEnv(num_envs, device, seed, n_agents=3 if n_agents is None else n_agents,
                        dtype=dtype, action_layout=action_layout)
        if env.reference_returns is None and env.n_agents <= SPREAD_EXPERT_AGENTS[1]:
            from .references import spread_reference_returns

            env.reference_returns = spread_reference_returns(env.n_agents)[0]
        return env
    if n_agents not in (None, 3):
        raise ValueError(f"{task} has exactly 3 learned predators; got n_agents={n_agents}")
    cls = TagEnv if task == "tag" else WorldEnv
    return cls(num_envs, device, seed, dtype=dtype, action_layout=action_layout)


def episode_return(name: str, rewards: torch.Tensor) -> torch.Tensor:
    """DESIGN.md 1.7 episode return. rewards: [B, T, n_agents] -> [B].

    spread: sum over steps of the mean agent reward; tag/world: predator 0's reward summed.
    """
    task = _canonical(name)
    if rewards.dim() != 3:
        raise ValueError(f"rewards must be [B, T, n_agents], got shape {tuple(rewards.shape)}")
    if task == "spread":
        return rewards.mean(dim=2).sum(dim=1)
    return rewards[:, :, 0].sum(dim=1)


def normalized_score(name: str, returns):
    """100 (R - R_random) / (R_expert - R_random) with DESIGN.md 1.7's (3-agent) references."""
    ref = REFERENCE_RETURNS[_canonical(name)]
    return 100.0 * (returns - ref["random"]) / (ref["expert"] - ref["random"])
