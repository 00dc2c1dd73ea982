"""One cell of the grid: make the dataset if missing, train through the method registry,
evaluate decentralized (and, for the OMSD family, judge the behaviour model as a centralized
policy: scoredec/behaviour_report.py), and write <root>/cells/<key>.json atomically (last, so
that a cell with a JSON is a finished cell).

Paths under the suite root:
    <root>/data/<task>-<quality>-<episodes>ep-s<data_seed>.h5   datasets (git-ignored)
    <root>/runs/<key>/                                          run directories (git-ignored)
    <root>/cells/<key>.json                                     the results (committed)
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import time
from pathlib import Path

import torch

from scoredec.io import atomic_write_json
from scoredec.locks import output_lock
from scoredec.methods import get_method, merge
from scoredec.periodic_eval import PeriodicEval
from scoredec.provenance import hardware, versions
from scoredec.runs import run_lock
from scoredec.suite.grid import Cell, cell_path, split_task
from scoredec.suite.presets import Preset
from scoredec.suite.share import adopt_shared_stages
from scoredec.suite.summary import CURVE_POINTS, run_summary

__all__ = ["dataset_path", "ensure_dataset", "has_behaviour_model", "config_class",
           "resolve_overrides", "run_cell", "cell_behaviour_report", "run_summary", "hardware",
           "versions", "estimate_seconds", "CURVE_POINTS"]

log = logging.getLogger(__name__)


def dataset_path(root: Path, preset: Preset, task: str, quality: str) -> Path:
    episodes = preset.episodes_for(task, quality)
    return Path(root) / "data" / f"{task}-{quality}-{episodes}ep-s{preset.data_seed}.h5"


def ensure_dataset(root: Path, preset: Preset, task: str, quality: str) -> Path:
    """The cell's dataset: the user's file where the preset has one (suite --data), else the
    factory's, generated (seeded, written atomically) if missing. task: a task label (spread-n4:
    spread with 4 agents)."""
    from scoredec.datagen.factory import make_dataset_file

    if (task, quality) in preset.datasets:
        return Path(preset.datasets[(task, quality)])
    path = dataset_path(root, preset, task, quality)
    if path.is_file():
        return path
    task_id, n_agents = split_task(task)
    # Another shard may be making the same file: wait for it, then use what it made.
    with output_lock(path, wait=True):
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            episodes = preset.episodes_for(task, quality)
            log.info("dataset %s: generating %d episodes (seed %d)", path.name, episodes,
                     preset.data_seed)
            make_dataset_file(task_id, quality, path, episodes=episodes,
                              seed=preset.data_seed, progress=False, n_agents=n_agents)
    return path


def _is_pipeline(method: str) -> bool:
    from scoredec.methods import family

    return method in family()


def has_behaviour_model(method: str) -> bool:
    """The OMSD family trains a behaviour model (BC and the baselines do not)."""
    from scoredec.methods import family, variant

    return method in family() and variant(method).score_mode is not None


def config_class(method: str):
    """The config dataclass a method's overrides are checked against, or None if the
    registry entry does not say (a baseline without a ``config`` attribute)."""
    if _is_pipeline(method):
        from scoredec.pipeline import TrainConfig

        return TrainConfig
    entry = get_method(method)
    return getattr(entry, "config", None) or getattr(entry.train, "config", None)


def resolve_overrides(preset: Preset, cell: Cell) -> dict:
    """The nested config overrides of one cell (what goes to MethodEntry.train)."""
    method, quality = cell.method, cell.quality
    if _is_pipeline(method):
        out = merge(preset.pipeline, preset.method_overrides.get(method, {}))
        if method != "bc" and quality in preset.beta:
            out = merge(out, {"policy": {"beta": preset.beta[quality]}})
    elif (method in preset.method_overrides or method in preset.quality_overrides
          or method in preset.task_overrides):
        out = dict(preset.method_overrides.get(method, {}))
    else:
        out = {}
        cls = config_class(method)
        names = {f.name for f in dataclasses.fields(cls)} if cls is not None else set()
        if preset.baseline_steps is not None and "steps" in names:
            out["steps"] = preset.baseline_steps
        elif preset.baseline_steps is not None:
            log.warning("%s: no overrides in preset %s and no 'steps' field known in its config; "
                        "it runs its own defaults", method, preset.name)
        if "device" in names:
            out["device"] = preset.device
    out = merge(out, preset.task_overrides.get(method, {}).get(split_task(cell.task)[0], {}))
    return merge(out, preset.quality_overrides.get(method, {}).get(quality, {}))


# --------------------------------------------------------------------------- records

def _device(preset: Preset) -> str:
    if preset.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return preset.device


# --------------------------------------------------------------------------- one cell

def run_cell(cell: Cell, preset: Preset, root: Path, *, resume: bool = False,
             progress: bool = False, data_root: Path | None = None,
             donor_roots: tuple[Path, ...] = ()) -> dict:
    """Train and evaluate one cell; write and return its record.

    data_root: where datasets live (default: root); donor_roots: other suite roots whose
    finished stages this cell may take (suite/share.py; its own root is always searched)."""
    from scoredec.pipeline import load_actors
    from scoredec.rollout import evaluate, trained_env

    root = Path(root)
    entry = get_method(cell.method)
    start, cpu_start = time.perf_counter(), time.process_time()
    data = ensure_dataset(Path(data_root) if data_root else root, preset, cell.task, cell.quality)
    data_seconds = time.perf_counter() - start
    overrides = resolve_overrides(preset, cell)
    run = root / "runs" / cell.key
    resumed = run.exists()
    with run_lock(run):   # stage sharing writes into the run before training opens it
        shared = (adopt_shared_stages(root, cell, overrides, data, donor_roots)
                  if preset.share_stages else {})
        t0 = time.perf_counter()
        during = {"evaluation": PeriodicEval(preset.eval_every)} if preset.eval_every else {}
        entry.train(data, run, seed=cell.seed, overrides=overrides, progress=progress,
                    resume=resume, **during)
        train_seconds = time.perf_counter() - t0
    device = _device(preset)
    t0 = time.perf_counter()
    actors, meta = load_actors(run, device=device)
    # the run's dataset names the environment, its agent count and its reference returns
    target = trained_env(meta, task=None if meta.get("env_id") else split_task(cell.task)[0],
                         where=f"cell {cell.key}")
    eval_episodes = preset.eval_episodes_for(cell.task)
    result = evaluate(actors, episodes=eval_episodes,
                      num_envs=min(preset.eval_envs, eval_episodes), seed=preset.eval_seed + 1000 * cell.seed,
                      device=device, **target.evaluate_kwargs())
    eval_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    behaviour = (cell_behaviour_report(run, data, target.env_id, eval_episodes,
                                       min(preset.eval_envs, eval_episodes),
                                       preset.eval_seed + 1000 * cell.seed, device,
                                       env_kwargs=target.env_kwargs,
                                       reference_returns=target.reference_returns)
                 if has_behaviour_model(cell.method) else None)
    behaviour_seconds = time.perf_counter() - t0
    summary = run_summary(run)
    # Shared stages are in the run's metrics (copied with the product) but were not run here.
    total_steps = sum(s["steps"] for name, s in summary["stages"].items() if name not in shared)
    total = time.perf_counter() - start
    record = {
        "key": cell.key,
        "cell": dataclasses.asdict(cell),
        "preset": preset.name,
        "centralized": entry.centralized,
        "seed": cell.seed,
        "overrides": overrides,
        "dataset": ({"file": str(data), "episodes": None, "seed": None}   # a user's file
                    if (cell.task, cell.quality) in preset.datasets else
                    {"file": data.name, "episodes": preset.episodes_for(cell.task, cell.quality),
                     "seed": preset.data_seed}),
        "evaluation": {"episodes": result["episodes"], "envs": min(preset.eval_envs, eval_episodes),
                       "seed": preset.eval_seed + 1000 * cell.seed, "decentralized": not entry.centralized},
        "normalized_mean": result.get("normalized_mean"),
        "normalized_std": result.get("normalized_std"),
        "return_mean": result["return_mean"],
        "return_std": result["return_std"],
        "reference_returns": result.get("reference_returns"),
        # the stage-1 report (scoredec/behaviour_report.py): the behaviour model sampled as a
        # centralized policy on the same episodes as the actors; None without a behaviour model
        "behaviour": behaviour,
        "curve": summary["curve"],
        # the actors' score every preset.eval_every steps during training; None without
        "eval_curve": summary["eval_curve"],
        "stages": summary["stages"],
        "seconds": {"dataset": data_seconds, "train": train_seconds, "evaluate": eval_seconds,
                    "behaviour_report": behaviour_seconds, "total": total,
                    # CPU time of this process (all its threads): unlike the wall-clock, it does
                    # not grow when other jobs share the cores
                    "cpu": time.process_time() - cpu_start,
                    # what the method costs on its own: plus the stages another cell trained
                    "standalone": total + sum(v["seconds"] or 0.0 for v in shared.values())},
        "shared_stages": shared,
        "steps_per_s": total_steps / train_seconds if train_seconds > 0 else None,
        "resumed": resumed,
        "hardware": hardware(device),
        "versions": versions(),
    }
    atomic_write_json(cell_path(root, cell), record)
    return record


def cell_behaviour_report(run: Path, data: Path, env_id: str, episodes: int, num_envs: int,
                          seed: int, device: str, env_kwargs: dict | None = None,
                          reference_returns: dict | None = None) -> dict:
    """The stage-1 report of the cell's behaviour model, without per-episode returns: rolled out
    on the actors' evaluation episodes (same seed and count) in the run's environment
    (env_kwargs, reference_returns: rollout.TrainedEnv's), its tables on dataset rows drawn
    with that seed."""
    from scoredec.behaviour_report import behaviour_report, summary_for_cell
    from scoredec.pipeline import load_product

    behavior = load_product(run, "behavior", device).module
    return summary_for_cell(behaviour_report(behavior, data, env_id, episodes=episodes,
                                             env_kwargs=env_kwargs,
                                             reference_returns=reference_returns,
                                             num_envs=num_envs, seed=seed, device=device))


# --------------------------------------------------------------------------- estimate

def estimate_seconds(preset: Preset, cells: list[Cell]) -> dict:
    """Time the cells before running them: one short omsd run with the preset's networks
    (``probe_steps`` per stage, on a tiny dataset, in a temporary directory) gives seconds per
    step of each stage; an OMSD-family cell costs its stages' steps at those rates, a baseline
    is taken to cost a critic and a policy stage of ``baseline_steps`` (a rough guess until
    the baselines are measured), and each cell adds one measured evaluation (and the OMSD
    family's the measured behaviour report). The rates: scoredec.timing, as `train`'s estimate."""
    from scoredec.methods import family, variant
    from scoredec.timing import late_rates

    probe = dataclasses.replace(preset, episodes={q: 50 for q in preset.episodes},
                                task_episodes={}, eval_episodes=preset.eval_episodes)
    steps = preset.probe_steps
    small = merge(preset.pipeline, {"log_every": max(steps // 10, 1), "checkpoint_every": 10 ** 9,
                                    "behavior": {"steps": steps}, "critic": {"steps": steps},
                                    "policy": {"steps": steps}})
    probe = dataclasses.replace(probe, pipeline=small)
    with tempfile.TemporaryDirectory(prefix="scoredec-probe-") as tmp:
        cell = Cell("omsd", preset.grid_tasks()[0], preset.qualities[0], 0)
        record = run_cell(cell, probe, Path(tmp))
        rate = late_rates(Path(tmp) / "runs" / cell.key)
    per_stage = {name: preset.pipeline.get(name, {}).get("steps", 0) / r
                 for name, r in rate.items() if r}
    evaluation = record["seconds"]["evaluate"]
    report = record["seconds"]["behaviour_report"]
    per_method = {}
    for method in sorted({c.method for c in cells}):
        if method in family():
            needed = ("policy",) if variant(method).score_mode is None else tuple(per_stage)
            per_method[method] = (sum(per_stage.get(s, 0.0) for s in needed) + evaluation
                                  + (report if has_behaviour_model(method) else 0.0))
        else:
            b = preset.baseline_steps or 0
            per_method[method] = b * (1 / rate.get("critic", 1e9) + 1 / rate.get("policy", 1e9)) + evaluation
    total = sum(per_method[c.method] for c in cells)
    return {"per_stage_seconds": per_stage, "steps_per_s": rate, "evaluate_seconds": evaluation,
            "behaviour_report_seconds": report,
            "per_method_cell_seconds": per_method, "cells": len(cells), "total_seconds": total,
            "probe_steps": steps}
