"""Environments: the multimodal bandit and the vectorized MPE tasks, behind one constructor."""

from __future__ import annotations


def env_names() -> tuple[str, ...]:
    return ("bandit",)


def make_env(env_id: str, num_envs: int, device="cpu", **kwargs):
    """A batched environment by its dataset env_id."""
    if env_id == "bandit":
        from scoredec.envs.bandit import BanditEnv

        return BanditEnv(num_envs, device=device, **kwargs)
    raise ValueError(f"unknown environment {env_id!r}; available: {', '.join(env_names())}")
