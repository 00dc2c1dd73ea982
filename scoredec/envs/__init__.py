"""Environments: the multimodal bandit, the vectorized MPE tasks and the MaMuJoCo layouts
(optional: gymnasium-robotics), behind one constructor.

Every environment is batched: reset(seed) -> obs [B, n, obs_max]; step(actions [B, n, act_max])
-> (obs, rewards [B, n], done [B], info); episode_return(rewards [B, T, n]) -> [B];
reference_returns {"random", "expert"} for normalized scores (DESIGN.md 1.7)."""

from __future__ import annotations

MPE_TASKS = ("spread", "tag", "world")
MAMUJOCO_TASKS = ("halfcheetah-2x3", "ant-2x4", "hopper-3x1", "walker2d-2x3", "halfcheetah-6x1")
"""scoredec.envs.mamujoco.TASKS, named here so that listing them needs no MuJoCo install."""


def env_names() -> tuple[str, ...]:
    return ("bandit", *MPE_TASKS, *MAMUJOCO_TASKS)


def make_env(env_id: str, num_envs: int, device="cpu", **kwargs):
    """A batched environment by its dataset env_id (MPE also by its simple_* name)."""
    if env_id == "bandit":
        from scoredec.envs.bandit import BanditEnv

        return BanditEnv(num_envs, device=device, **kwargs)
    name = env_id.removeprefix("simple_")
    if name in MPE_TASKS:
        from scoredec.envs.mpe import make_mpe

        return make_mpe(name, num_envs, device=device, **kwargs)
    if env_id in MAMUJOCO_TASKS:
        # ImportError naming gymnasium-robotics / mujoco and the extra when they are missing
        from scoredec.envs.mamujoco import make_mamujoco

        return make_mamujoco(env_id, num_envs, device=device, **kwargs)
    raise ValueError(f"unknown environment {env_id!r}; available: {', '.join(env_names())}")
