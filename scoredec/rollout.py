"""Decentralized evaluation (DESIGN.md 1.6): a_i = pi_i(o_i), batched over environments."""

from __future__ import annotations

import math

import numpy as np
import torch

from scoredec.envs import make_env


def normalized(returns: np.ndarray, reference: dict | None) -> np.ndarray | None:
    """100 (R - R_random) / (R_expert - R_random) (DESIGN.md 1.7); None without references."""
    if not reference:
        return None
    return 100.0 * (returns - reference["random"]) / (reference["expert"] - reference["random"])


@torch.no_grad()
def evaluate(actors, env_id: str, episodes: int = 10, num_envs: int = 10, seed: int = 0,
             device: str | torch.device = "cpu", env_kwargs: dict | None = None) -> dict:
    """Roll out `episodes` episodes in rounds of `num_envs` parallel environments.

    actors: a callable obs [B, n, obs_max] -> actions [B, n, act_max] (scoredec.actors.Actors
    is decentralized by construction). Returns mean/std return and normalized score."""
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be >= 1, got {episodes}, {num_envs}")
    returns = []
    rounds = math.ceil(episodes / num_envs)
    for r in range(rounds):
        env = make_env(env_id, num_envs, device=device, **(env_kwargs or {}))
        obs = env.reset(seed=seed + r)
        rewards = []
        for _ in range(env.episode_length):
            obs, rew, done, _ = env.step(actors(obs.to(torch.float32)))
            rewards.append(rew)
            if bool(done.all()):
                break
        returns.append(env.episode_return(torch.stack(rewards, 1)).cpu().numpy())
    returns = np.concatenate(returns)[:episodes].astype(np.float64)
    out = {"env": env_id, "episodes": int(len(returns)), "return_mean": float(returns.mean()),
           "return_std": float(returns.std()), "returns": returns.tolist(),
           "reference_returns": env.reference_returns}
    score = normalized(returns, env.reference_returns)
    if score is not None:
        out["normalized_mean"] = float(score.mean())
        out["normalized_std"] = float(score.std())
    return out
