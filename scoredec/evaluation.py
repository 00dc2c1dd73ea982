"""Decentralized evaluation on a user's own PettingZoo environment (issue 16).

    from scoredec.evaluation import evaluate_env
    result = evaluate_env("runs/mine", env=make_my_env, episodes=20, num_envs=4)
    print(result["return_mean"], result["return_std"])

Each agent's actor sees only its own observation, a_i = pi_i(o_i), as in scoredec.rollout for
the built-in tasks; the environment is wrapped by scoredec.envs.parallel.ParallelEnvBatch,
which checks it against the run and maps actions onto its Box bounds. The return of an
episode is the sum over steps of the mean agent reward (team_return="mean", the MPE
convention) or of the summed agent rewards ("sum"). Scores are normalized only when
reference returns are given; otherwise the result says the returns are raw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from scoredec.envs.parallel import ParallelEnvBatch, make_envs
from scoredec.rollout import normalized

__all__ = ["evaluate_env", "TEAM_RETURNS", "MAX_STEPS"]

TEAM_RETURNS = ("mean", "sum")
MAX_STEPS = 10_000
"""Steps after which an episode that has not ended is an error (an environment without a
time limit would otherwise never return)."""


def _actors_of(run_or_actors, device) -> tuple[Callable, dict, torch.device]:
    """(actors callable, meta, the device observations go to) from a run directory, a torch
    module (observations go to its parameters' device) or any callable."""
    if isinstance(run_or_actors, (str, Path)):
        from scoredec.pipeline import load_actors

        actors, meta = load_actors(Path(run_or_actors), device)
        return actors, meta, device
    actors = run_or_actors
    if isinstance(actors, torch.nn.Module):
        actors.eval()
        device = next(actors.parameters(), torch.empty(0, device=device)).device
    return actors, {}, device


@torch.no_grad()
def evaluate_env(run_or_actors, env: Any, *, episodes: int = 10, num_envs: int = 1,
                 seed: int = 0, device: str | torch.device = "cpu",
                 reference_returns: dict[str, float] | None = None, team_return: str = "mean",
                 max_steps: int = MAX_STEPS, agent_names=None, obs_dims=None,
                 act_dims=None) -> dict:
    """Roll out `episodes` episodes of the run's actors on the user's environment.

    run_or_actors: a run directory (its actors, loaded on `device`, and the dataset's agent
    names), a scoredec.actors.Actors (obs_dims/act_dims from it; agent_names optional), or
    any callable obs [B, n, obs_max] -> actions [B, n, act_max] with obs_dims and act_dims.
    env: a PettingZoo ParallelEnv, a list of them (stepped side by side), a factory returning
    either, or a 'module:factory' string; a factory returning one env is called up to
    num_envs times. Episode e is reset with seed + e.
    reference_returns: {"random": R, "expert": R} to report a normalized score.
    Returns a dict: return_mean, return_std, returns, agent_return_mean (per agent), and
    normalized_mean/std when reference_returns is given (score "raw" otherwise)."""
    if episodes < 1 or num_envs < 1 or max_steps < 1:
        raise ValueError(f"episodes, num_envs and max_steps must be >= 1, got {episodes}, "
                         f"{num_envs}, {max_steps}")
    if team_return not in TEAM_RETURNS:
        raise ValueError(f"team_return must be one of {TEAM_RETURNS}, got {team_return!r}")
    if reference_returns is not None and (
            set(reference_returns) != {"random", "expert"}
            or reference_returns["random"] == reference_returns["expert"]):
        raise ValueError("reference_returns needs 'random' and 'expert', different, got "
                         f"{reference_returns!r}")
    device = torch.device(device)
    actors, meta, device = _actors_of(run_or_actors, device)
    spec = getattr(actors, "spec", None)
    obs_dims = tuple(obs_dims or (spec.obs_dims if spec else meta["spec"]["obs_dims"]))
    act_dims = tuple(act_dims or (spec.act_dims if spec else meta["spec"]["act_dims"]))
    names = agent_names or meta.get("agent_names")
    batch = ParallelEnvBatch(make_envs(env, num_envs), obs_dims, act_dims, names)
    returns, per_agent = [], []
    try:
        for start in range(0, episodes, batch.num_envs):
            seeds = [seed + e for e in range(start, min(start + batch.num_envs, episodes))]
            obs = batch.reset(seeds)
            total = np.zeros((len(seeds), batch.n_agents))
            for step in range(max_steps + 1):
                if step == max_steps:
                    raise ValueError(f"an episode did not end within {max_steps} steps; raise "
                                     "max_steps (--max-steps) or give the environment a time limit")
                act = actors(torch.as_tensor(obs, device=device))
                obs, rew, done = batch.step(act.detach().cpu().numpy())
                total += rew
                if done.all():
                    break
            returns.append(total.mean(1) if team_return == "mean" else total.sum(1))
            per_agent.append(total)
    finally:
        batch.close()
    returns = np.concatenate(returns).astype(np.float64)
    per_agent = np.concatenate(per_agent)
    out = {"env": str(env) if isinstance(env, str) else type(batch.envs[0]).__name__,
           "agents": [str(a) for a in batch.agents], "episodes": int(len(returns)),
           "team_return": team_return, "return_mean": float(returns.mean()),
           "return_std": float(returns.std()), "returns": returns.tolist(),
           "agent_return_mean": per_agent.mean(0).tolist(),
           "reference_returns": reference_returns, "score": "raw"}
    score = normalized(returns, reference_returns)
    if score is not None:
        out.update(score="normalized", normalized_mean=float(score.mean()),
                   normalized_std=float(score.std()))
    return out


def describe_result(result: dict, name: str) -> str:
    """One line: '<name>: return R +- S (raw|normalized N +- M) over E episodes'."""
    line = f"{name}: return {result['return_mean']:.3f} +- {result['return_std']:.3f}"
    if result["score"] == "normalized":
        line += f", normalized {result['normalized_mean']:.1f} +- {result['normalized_std']:.1f}"
    else:
        line += " (raw: pass --reference-random and --reference-expert for a normalized score)"
    return line + f" over {result['episodes']} episodes"
