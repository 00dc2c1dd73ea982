"""The stage-1 report: how good a trained behaviour model is, judged as a policy (issue 14).

A BehaviorModel samples joint actions agent after agent (DESIGN.md 1.6): a *centralized* policy.
Three views of it, all plain JSON-able numbers:

- closed loop: the model sampled as that policy in the environment, return and normalized
  score (DESIGN.md 1.7), through the same scoredec.rollout.evaluate as the actors;
- denoising by noise level t on a fixed subsample of dataset rows: the error of its noise
  prediction E||eps - z||^2 and of the clean action it implies, (x_t - sigma_t eps) / alpha_t,
  per agent;
- spread: per agent, the std of its samples over the rows against the data actions' std over
  the same rows, the mean size |a| of both, the error of one sample against the data action,
  and the mean std of several samples for one observation (the data of a deterministic expert
  has none: a model spreading there is noise, not a mode).

Rows come from the training data: the numbers say what the model learnt of its data, not how it
generalizes. Every draw comes from generators seeded from `seed`: the same seed, model and data
give the same report on one machine.
"""

from __future__ import annotations

import logging
import os
import time

import torch
from torch import Tensor

from scoredec.envs import MAMUJOCO_TASKS

__all__ = ["NOISE_LEVELS", "REPORT_ROWS", "REPORT_SAMPLES", "REPORT_WITHIN_ROWS",
           "default_episodes", "denoising_by_noise_level", "sample_spread", "behaviour_report",
           "render_report", "summary_for_cell"]

log = logging.getLogger(__name__)

NOISE_LEVELS = (0.01, 0.05, 0.1, 0.3, 0.6, 0.9)
"""t of the denoising table: the small-t end is where stage 2's "score" weighting pulls."""

REPORT_ROWS = 2048
"""Dataset rows of the denoising table and of the spread over rows."""

REPORT_WITHIN_ROWS = 256
"""Rows sampled REPORT_SAMPLES times each for the within-observation spread."""

REPORT_SAMPLES = 8
"""Samples per observation for the within-observation spread."""

EPISODES = {"mpe": 100, "mamujoco": 10}
"""Closed-loop episodes by default: MPE episodes are 25 steps, MaMuJoCo ones 1000 (the suite
evaluates 10 of those too)."""

# Each part of the report draws from its own generator (seed * PARTS + part), so changing one
# part's size does not change the numbers of another.
PARTS = 4
_ROLLOUT, _ROWS, _NOISE, _SAMPLES = range(PARTS)


def default_episodes(env_id: str) -> int:
    """Closed-loop episodes of the report when none are given."""
    return EPISODES["mamujoco" if env_id in MAMUJOCO_TASKS else "mpe"]


def _generator(seed: int, part: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * PARTS + part)


def _agent_values(x: Tensor, act_dims) -> list[float]:
    """x [..., n, act_max] -> per agent the mean over everything but the agent axis, over the
    agent's own action columns only (the padding is zero, not an action)."""
    return [float(x[..., i, :d].mean()) for i, d in enumerate(act_dims)]


@torch.no_grad()
def denoising_by_noise_level(behavior, obs: Tensor, actions: Tensor, generator: torch.Generator,
                             levels=NOISE_LEVELS) -> list[dict]:
    """Per noise level t: how well the model denoises dataset actions.

    obs [B, n, obs_max], actions [B, n, act_max] (dataset rows); generator: the noise z, on the
    rows' device. One row per t: sigma_t; eps_mse, the squared error ||eps - z||^2 summed over
    an agent's action columns (2 for a 2-d action = no better than predicting eps = 0);
    clean_error, the Euclidean error of the implied clean action (x_t - sigma_t eps) / alpha_t
    against the data action; both averaged over rows and agents, and per agent (lists of n, in
    agent index order). behavior.epsilon always returns eps, whatever the network predicts."""
    lay = behavior.layout
    x0 = lay.targets(actions)                                          # [m, B, x_dim]
    mask = behavior.x_mask.to(x0.dtype)
    rows = []
    for level in levels:
        t = torch.full(x0.shape[:2], float(level), dtype=x0.dtype, device=x0.device)
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device) * mask
        alpha, sigma = behavior.vp.alpha_sigma(t)
        x_t = alpha[..., None] * x0 + sigma[..., None] * z
        eps = behavior.epsilon(x_t, t, obs, actions) * mask
        clean = (x_t - sigma[..., None] * eps) / alpha[..., None]
        # Back to [B, n, act_max]: the joint model's one row splits into its agents.
        eps_err = (lay.actions_from((eps - z) ** 2)).sum(-1)            # [B, n]
        clean_err = lay.actions_from(clean - x0).norm(dim=-1)           # [B, n]
        rows.append({"t": float(level), "sigma": float(sigma.flatten()[0]),
                     "eps_mse": float(eps_err.mean()), "clean_error": float(clean_err.mean()),
                     "per_agent": {"eps_mse": eps_err.mean(0).tolist(),
                                   "clean_error": clean_err.mean(0).tolist()}})
    return rows


@torch.no_grad()
def sample_spread(behavior, obs: Tensor, actions: Tensor, generator: torch.Generator,
                  within_rows: int = REPORT_WITHIN_ROWS, samples: int = REPORT_SAMPLES) -> dict:
    """The spread of the model's samples against the data's, per agent (lists of n).

    obs [B, n, obs_max], actions [B, n, act_max]: one sample per row gives sample_std /
    data_std (std over the rows, averaged over the agent's action columns), sample_size /
    data_size (mean |a| per column) and sample_error (mean Euclidean error of the sample
    against the row's data action); the first `within_rows` rows sampled `samples` times each
    give within_obs_std (std over the samples of one observation, averaged over rows and
    columns)."""
    act_dims = behavior.spec.act_dims
    one = behavior.sample(obs, generator=generator)                     # [B, n, act_max]
    head = obs[:within_rows]
    many = torch.stack([behavior.sample(head, generator=generator) for _ in range(samples)])
    return {"rows": int(obs.shape[0]), "within_rows": int(head.shape[0]), "samples": samples,
            "sample_std": _agent_values(one.std(0, unbiased=False), act_dims),
            "data_std": _agent_values(actions.std(0, unbiased=False), act_dims),
            "sample_size": _agent_values(one.abs(), act_dims),
            "data_size": _agent_values(actions.abs(), act_dims),
            "sample_error": (one - actions).norm(dim=-1).mean(0).tolist(),
            "within_obs_std": _agent_values(many.std(0, unbiased=False), act_dims)}


def _data_rows(data) -> tuple[Tensor, Tensor]:
    """(observations, actions) of every row of a dataset file path, a MultiAgentDataset or an
    OfflineData, as float32 tensors on the CPU."""
    if isinstance(data, (str, os.PathLike)):
        from scoredec.data.hdf5 import read_dataset

        data = read_dataset(data)
    if hasattr(data, "observations"):
        obs, act = data.observations, data.actions
    else:
        obs, act = data.obs, data.actions
    return (torch.as_tensor(obs).detach().to("cpu", torch.float32),
            torch.as_tensor(act).detach().to("cpu", torch.float32))


def behaviour_report(behavior, data, env_id: str, *, episodes: int | None = None,
                     num_envs: int | None = None, seed: int = 0, rows: int = REPORT_ROWS,
                     within_rows: int = REPORT_WITHIN_ROWS, samples: int = REPORT_SAMPLES,
                     levels=NOISE_LEVELS, device: str | torch.device = "cpu",
                     env_kwargs: dict | None = None, reference_returns: dict | None = None) -> dict:
    """Judge a trained behaviour model (scoredec.behavior.BehaviorModel) as a policy.

    data: the dataset it was trained on (file path, MultiAgentDataset or OfflineData);
    env_id: its environment; episodes: closed-loop episodes (default: default_episodes);
    num_envs: environments stepped at once (default: min(episodes, 100)); seed: the closed
    loop's first environment seed (scoredec.rollout.evaluate's) and the seed of every draw;
    rows: dataset rows of the denoising and spread tables (drawn once with the seed);
    env_kwargs, reference_returns: the run's environment (scoredec.rollout.TrainedEnv).
    Returns {"mode", "seed", "closed_loop": evaluate's dict (return_mean/std, normalized_mean/
    std when the env has references, returns), "denoising": denoising_by_noise_level's rows,
    "spread": sample_spread's dict, "seconds"}."""
    from scoredec.behavior import eval_mode
    from scoredec.data.tensors import draw_rows
    from scoredec.rollout import evaluate

    if rows < 1 or within_rows < 1 or samples < 2:
        raise ValueError(f"rows and within_rows must be >= 1 and samples >= 2, got {rows}, "
                         f"{within_rows}, {samples}")
    device = torch.device(device)
    episodes = default_episodes(env_id) if episodes is None else episodes
    num_envs = min(episodes, 100) if num_envs is None else num_envs
    start = time.perf_counter()
    obs_all, act_all = _data_rows(data)
    pick = draw_rows(obs_all.shape[0], rows, _generator(seed, _ROWS, torch.device("cpu")),
                     replace=False)
    obs, act = obs_all[pick].to(device), act_all[pick].to(device)
    behavior = behavior.to(device)
    with eval_mode(behavior):
        gen = _generator(seed, _ROLLOUT, device)
        closed = evaluate(lambda o: behavior.sample(o, generator=gen), env_id, episodes=episodes,
                          num_envs=num_envs, seed=seed, device=device, env_kwargs=env_kwargs,
                          reference_returns=reference_returns, spec=behavior.spec)
        denoising = denoising_by_noise_level(behavior, obs, act, _generator(seed, _NOISE, device),
                                             levels)
        spread = sample_spread(behavior, obs, act, _generator(seed, _SAMPLES, device),
                               within_rows=within_rows, samples=samples)
    seconds = time.perf_counter() - start
    log.info("behaviour report (%s model, %s): %d episodes, %d rows, %.1f s", behavior.mode,
             env_id, closed["episodes"], int(pick.numel()), seconds)
    return {"mode": behavior.mode, "seed": seed, "closed_loop": closed, "denoising": denoising,
            "spread": spread, "seconds": seconds}


def render_report(report: dict) -> str:
    """A short readable summary of behaviour_report's dict (what `scoredec evaluate --behaviour`
    prints)."""
    from scoredec.rollout import env_label

    c, sp = report["closed_loop"], report["spread"]
    env = env_label(c["env"], (c.get("env_kwargs") or {}).get("n_agents"))
    who = f"{env} {report['method']}" if "method" in report else env
    line = (f"{who}: {report['mode']} behaviour model sampled as a centralized policy: "
            f"return {c['return_mean']:.3f} ± {c['return_std']:.3f}")
    if "normalized_mean" in c:
        line += f", normalized {c['normalized_mean']:.1f} ± {c['normalized_std']:.1f}"
    n = len(sp["sample_std"])
    agents = " | ".join(f"agent {i}" for i in range(n))
    lines = [line + f" over {c['episodes']} episodes", "",
             f"clean-action error by noise level ({sp['rows']} dataset rows; mean over agents, "
             "then per agent):", "",
             f"| t | sigma_t | eps sq. error | clean-action error | {agents} |",
             "|---|---|---|---|" + "---|" * n]
    for r in report["denoising"]:
        per = " | ".join(f"{v:.3f}" for v in r["per_agent"]["clean_error"])
        lines.append(f"| {r['t']:g} | {r['sigma']:.3f} | {r['eps_mse']:.3f} | "
                     f"{r['clean_error']:.3f} | {per} |")
    lines += ["", f"spread of samples vs data per agent (std over rows; within one observation: "
                  f"{sp['samples']} samples on {sp['within_rows']} rows):", "",
              "| agent | sample std | data std | sample abs | data abs | sample error | "
              "within-obs std |", "|---|---|---|---|---|---|---|"]
    for i in range(n):
        lines.append(f"| {i} | {sp['sample_std'][i]:.3f} | {sp['data_std'][i]:.3f} | "
                     f"{sp['sample_size'][i]:.3f} | {sp['data_size'][i]:.3f} | "
                     f"{sp['sample_error'][i]:.3f} | {sp['within_obs_std'][i]:.3f} |")
    return "\n".join(lines)


def summary_for_cell(report: dict) -> dict:
    """The report without the per-episode returns: what a suite cell records."""
    closed = {k: v for k, v in report["closed_loop"].items() if k != "returns"}
    return {**report, "closed_loop": closed,
            "normalized_mean": closed.get("normalized_mean"),
            "normalized_std": closed.get("normalized_std"),
            "return_mean": closed["return_mean"], "return_std": closed["return_std"]}

