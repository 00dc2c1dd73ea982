"""`scoredec bandit`: OMSD against marginal regularization on the two-mode bandit (DESIGN.md 1.8).

For each seed: generate the dataset, train the sequential and the marginal behaviour models
(and the joint and local IQL critics when beta > 0), then the actors of every method, and
record where they end. Seeds run in worker processes with one thread each, so a seed's
result does not depend on how many workers ran.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from dataclasses import dataclass, replace

import numpy as np
import torch
from tqdm.auto import tqdm

from scoredec.actors import Actors
from scoredec.behavior import BehaviorConfig, BehaviorModel, BehaviorStage
from scoredec.config import SEED_BOUNDS, param
from scoredec.critic import CriticConfig, CriticStage, IQLCritic
from scoredec.data.tensors import OfflineData
from scoredec.envs import bandit
from scoredec.registry import family, variant
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage
from scoredec.training import run_stage

log = logging.getLogger(__name__)

# Coordinated: both agents in the same mode with a clear margin (a1 a2 > 0.3).
COORDINATED = 0.3


@dataclass
class BanditConfig:
    """The multimodal bandit study (small networks, minutes on 2 CPU cores)."""

    seeds: int = param(10, "number of seeds (0 .. seeds-1)", bounds="[1, inf)")
    first_seed: int = param(0, "first seed", bounds=SEED_BOUNDS)
    methods: tuple[str, ...] = param(("omsd", "brpo-ind", "brpo-ctde"), "stage-2 methods to compare",
                                     choices=family())
    samples: int = param(10_000, "dataset size (one-step episodes)", bounds="[1, inf)")
    sampler_samples: int = param(2_000, "joint samples drawn from each behaviour model",
                                 bounds="[1, inf)")
    workers: int = param(2, "worker processes (one thread each)", bounds="[1, inf)")
    # Sizes measured to coordinate OMSD on 10/10 seeds at beta = 0 in about 4 minutes on 2
    # cores; a larger batch (256) left the actors at the saddle a = 0 on most seeds.
    behavior: BehaviorConfig = param(BehaviorConfig(
        arch="compact", hidden=128, compact_layers=2, dropout=0.0, lr=2e-3, lr_end=1e-4,
        weight_decay=0.0, batch_size=128, steps=2000, sample_steps=15, solver="dpm2"),
        "behaviour score models")
    critic: CriticConfig = param(CriticConfig(hidden=64, layers=2, lr=1e-3, batch_size=128,
                                              steps=1000, expectile=0.7),
                                 "IQL critics (trained only when policy.beta > 0)")
    policy: PolicyConfig = param(PolicyConfig(beta=0.0, weighting="score", hidden=32, layers=2,
                                              lr=1e-3, lr_end=1e-4, batch_size=128, steps=1000),
                                 "actors")


def run_seed(cfg: BanditConfig, seed: int, progress: bool = False) -> dict:
    """Train everything for one seed; returns plain numbers (picklable, JSON-able)."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)  # before any network is built
    gen = torch.Generator().manual_seed(seed)
    data = OfflineData.from_dataset(bandit.make_dataset(cfg.samples, seed))
    spec = data.spec

    behaviors = {}
    for mode in sorted({variant(m).score_mode for m in cfg.methods} - {None}):
        model = BehaviorModel(spec, mode, cfg.behavior)
        run_stage(BehaviorStage(model, cfg.behavior), data, gen, progress=progress,
                  desc=f"seed {seed} behaviour/{mode}")
        behaviors[mode] = model
    critics = {}
    for scope in sorted({variant(m).critic_scope for m in cfg.methods} - {None}):
        critic = IQLCritic(spec, scope, cfg.critic)
        if cfg.policy.beta != 0.0:
            run_stage(CriticStage(critic, cfg.critic), data, gen, progress=progress,
                      desc=f"seed {seed} critic/{scope}")
        critics[scope] = critic

    obs = bandit.observations(1)
    result = {"seed": seed, "methods": {}, "samples": {}}
    for method in cfg.methods:
        m = variant(method)
        actors = Actors(spec, m.actor_mode, cfg.policy.hidden, cfg.policy.layers)
        objective = PolicyObjective(method, actors, cfg.policy, behaviors.get(m.score_mode),
                                    critics.get(m.critic_scope))
        run_stage(PolicyStage(objective), data, gen, progress=progress,
                  desc=f"seed {seed} policy/{method}")
        a = actors.act(obs)
        result["methods"][method] = {"actions": a[0, :, 0].tolist(),
                                     "reward": float(bandit.reward(a)[0])}
    for mode, model in behaviors.items():
        samples = model.sample(bandit.observations(cfg.sampler_samples), generator=gen)
        result["samples"][mode] = samples[:, :, 0].tolist()
    return result


def run_bandit(cfg: BanditConfig, progress: bool = True) -> list[dict]:
    """All seeds, in cfg.workers processes; results in seed order."""
    seeds = list(range(cfg.first_seed, cfg.first_seed + cfg.seeds))
    if cfg.workers <= 1:
        return [run_seed(cfg, s, progress=progress) for s in tqdm(seeds, desc="seeds",
                                                                  disable=None if progress else True)]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(cfg.workers, mp_context=ctx) as pool:
        futures = {pool.submit(run_seed, cfg, s): s for s in seeds}
        done = {}
        for fut in tqdm(concurrent.futures.as_completed(futures), total=len(seeds), desc="seeds",
                        disable=None if progress else True):
            done[futures[fut]] = fut.result()
    return [done[s] for s in seeds]


def summarize(results: list[dict]) -> dict:
    """Per method: coordinated / miscoordinated seed counts and mean reward;
    per behaviour mode: fraction of joint samples with both signs equal."""
    summary = {"methods": {}, "samples": {}}
    for method in results[0]["methods"]:
        rewards = np.array([r["methods"][method]["reward"] for r in results])
        summary["methods"][method] = {
            "coordinated": int((rewards > COORDINATED).sum()),
            "miscoordinated": int((rewards < 0).sum()),
            "mean_reward": float(rewards.mean()), "seeds": len(rewards)}
    for mode in results[0]["samples"]:
        same = [float((np.sign(np.array(r["samples"][mode])).prod(axis=1) > 0).mean())
                for r in results]
        summary["samples"][mode] = {"same_sign_mean": float(np.mean(same)),
                                    "same_sign_min": float(np.min(same))}
    return summary


def format_table(results: list[dict]) -> str:
    """Markdown table: one row per seed, (a1, a2) and reward per method."""
    methods = list(results[0]["methods"])
    head = "| seed | " + " | ".join(f"{m} (a1, a2) | {m} reward" for m in methods) + " |"
    rule = "|---|" + "---|---|" * len(methods)
    rows = [head, rule]
    for r in results:
        cells = []
        for m in methods:
            a1, a2 = r["methods"][m]["actions"]
            cells += [f"({a1:+.2f}, {a2:+.2f})", f"{r['methods'][m]['reward']:+.3f}"]
        rows.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def with_beta(cfg: BanditConfig, beta: float) -> BanditConfig:
    return replace(cfg, policy=replace(cfg.policy, beta=beta))
