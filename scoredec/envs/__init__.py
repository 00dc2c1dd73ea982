"""Environments: the multimodal bandit and the vectorized MPE tasks, behind one constructor.

Every environment is batched: reset(seed) -> obs [B, n, obs_max]; step(actions [B, n, act_max])
-> (obs, rewards [B, n], done [B], info); episode_return(rewards [B, T, n]) -> [B];
reference_returns {"random", "expert"} for normalized scores (DESIGN.md 1.7)."""

from __future__ import annotations

MPE_TASKS = ("spread", "tag", "world")


def env_names() -> tuple[str, ...]:
    return ("bandit", *MPE_TASKS)


def make_env(env_id: str, num_envs: int, device="cpu", **kwargs):
    """A batched environment by its dataset env_id (MPE also by its simple_* name)."""
    if env_id == "bandit":
        from scoredec.envs.bandit import BanditEnv

        return BanditEnv(num_envs, device=device, **kwargs)
    name = env_id.removeprefix("simple_")
    if name in MPE_TASKS:
        from scoredec.envs.mpe import make_mpe

        return make_mpe(name, num_envs, device=device, **kwargs)
    raise ValueError(f"unknown environment {env_id!r}; available: {', '.join(env_names())}")
