"""How long is long enough? One OMSD cell's behaviour model trained in one long run, judged every
`every` steps: the model itself as a (centralized) policy, and actors distilled from it.

    python -m scoredec.experiments.learning_curve --data D.h5 --config C.yaml --run R \\
        --steps 100000 --every 10000 --out results/curves/NAME.jsonl [--budget-minutes 20]

The behaviour stage trains once with --behavior.steps = steps (one schedule over the whole run)
through pipeline.train's budget, stopping at each multiple of `every`. At each stop the
checkpoint's weight average becomes a snapshot model in R/curve/step-NNNNNNNNN/, next to a copy
of the run's critic (trained once, as the config says); stage 2 trains in its subfolder --tag
with the config's policy settings, and one JSON line per point goes to --out (appended, one whole
line per point: a point already in the file is skipped, so a stopped sitting continues where it
stopped). The long run itself ignores the config's policy section, so a second --config that
differs only there (and a new --tag and --out) reuses its snapshots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path

import torch

from scoredec.behavior import BehaviorStage
from scoredec.checkpoint import checkpoint_paths, is_complete, load_checkpoint
from scoredec.config import load_config
from scoredec.io import atomic_write_json
from scoredec.pipeline import (TrainConfig, build_behavior, load_actors, product_stem, save_product,
                               spec_from_meta, train)
from scoredec.policy import PolicyConfig
from scoredec.rollout import evaluate
from scoredec.suite.run_cell import cell_behaviour_report
from scoredec.training import checkpoint_tag

log = logging.getLogger(__name__)

EVAL_SEED = 1000
"""Seed of the evaluation episodes and of the behaviour report (never a training seed)."""


def done_points(out: Path) -> set[int]:
    if not out.is_file():
        return set()
    return {json.loads(line)["step"] for line in out.read_text().splitlines() if line.strip()}


def snapshot(run: Path, cfg: TrainConfig, step: int, origin: dict, spec, tag: str) -> Path:
    """R/curve/step-N/TAG with the behaviour model of checkpoint `step` (its weight average when
    the config keeps one) and the run's critic, as finished products (kept once in step-N)."""
    base = run / "curve" / f"step-{step:09d}"
    base.mkdir(parents=True, exist_ok=True)
    if not is_complete(product_stem(base, "behavior")):
        model = build_behavior(spec, cfg)
        stage = BehaviorStage(model, cfg.behavior)   # its modules are what the checkpoint holds
        load_checkpoint(run / "checkpoints" / checkpoint_tag("behavior", step),
                        modules=stage.modules, global_rng=False)
        stage.finish()                               # the weight average becomes the model
        save_product(base, "behavior", model, spec, cfg, origin)
    point = base / tag
    point.mkdir(exist_ok=True)
    for stage in ("behavior", "critic"):
        source = base if stage == "behavior" else run
        for src, dst in zip(checkpoint_paths(product_stem(source, stage)),
                            checkpoint_paths(product_stem(point, stage))):
            if not dst.is_file():
                shutil.copyfile(src, dst)
    return point


def snapshot_report(base: Path, data: Path, env_id: str, episodes: int) -> dict:
    """The stage-1 report of snapshot `base`, computed once and kept in base/ (it does not depend
    on the stage-2 settings that share the snapshot)."""
    path = base / f"behaviour_report-{episodes}ep.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    report = cell_behaviour_report(base, data, env_id, episodes, min(episodes, 100), EVAL_SEED,
                                   "cpu")
    atomic_write_json(path, report)
    return report


def run_curve(data: Path, cfg: TrainConfig, run: Path, steps: int, every: int, out: Path,
              budget_seconds: float | None = None, episodes: int = 100,
              tag: str = "actors") -> list[dict]:
    """Train and judge until `steps` or the time budget; returns the points written now."""
    if steps % every:
        raise ValueError(f"--steps {steps} must be a multiple of --every {every}")
    cfg = dataclasses.replace(cfg, behavior=dataclasses.replace(cfg.behavior, steps=steps),
                              checkpoint_every=every)
    long_run = dataclasses.replace(cfg, policy=PolicyConfig())   # stage 1 only: policy unused
    start = time.monotonic()
    train(data, long_run, run, stages=("critic",), resume=True, progress=False)
    written = []
    for step in range(every, steps + 1, every):
        if step in done_points(out):
            continue
        if budget_seconds is not None and time.monotonic() - start > budget_seconds:
            log.info("time budget spent before step %d; run again to continue", step)
            break
        t0 = time.monotonic()
        have = max((int(p.stem.split("-")[-1]) for p in (run / "checkpoints").glob("behavior-*.json")),
                   default=0)
        if have < step and not is_complete(product_stem(run, "behavior")):
            train(data, long_run, run, stages=("behavior",), resume=True, progress=False,
                  budget=step - have)
        meta = json.loads(Path(f"{product_stem(run, 'critic')}.json").read_text())["meta"]
        origin = {k: meta[k] for k in ("data", "env_id", "scenario", "reference_returns")
                  if k in meta}
        spec = spec_from_meta(meta["spec"])
        point = snapshot(run, long_run, step, origin, spec, tag)
        train(data, cfg, point, stages=("policy",), resume=True, progress=False)
        actors, _ = load_actors(point)
        result = evaluate(actors, origin["env_id"], episodes, min(episodes, 100), EVAL_SEED)
        report = snapshot_report(point.parent, data, origin["env_id"], episodes)
        row = {"step": step, "actors_normalized": [result.get("normalized_mean"),
                                                   result.get("normalized_std")],
               "behaviour_normalized": [report["closed_loop"].get("normalized_mean"),
                                        report["closed_loop"].get("normalized_std")],
               "behaviour": report, "seconds": round(time.monotonic() - t0, 1)}
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a", encoding="utf-8") as f:   # one whole line per point
            f.write(json.dumps(row) + "\n")
        log.info("step %d: behaviour %.1f, actors %.1f", step, row["behaviour_normalized"][0],
                 row["actors_normalized"][0])
        written.append(row)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", required=True, help="dataset file (HDF5)")
    p.add_argument("--config", required=True, help="TrainConfig YAML (method, seed, stage sizes)")
    p.add_argument("--run", required=True, help="run directory of the long behaviour run")
    p.add_argument("--steps", type=int, default=100_000, help="behaviour steps of the whole run")
    p.add_argument("--every", type=int, default=10_000, help="steps between judged points")
    p.add_argument("--out", required=True, help="JSON lines file of the points (appended)")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes per point")
    p.add_argument("--tag", default="actors", help="subfolder of each snapshot for its actors")
    p.add_argument("--budget-minutes", type=float, default=None,
                   help="stop starting new points after this long (resume by running again)")
    args = p.parse_args(argv)
    for flag in ("steps", "every", "episodes"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    if args.budget_minutes is not None and not args.budget_minutes >= 0:
        p.error(f"--budget-minutes must be >= 0, got {args.budget_minutes}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = load_config(TrainConfig, args.config)
    run_curve(Path(args.data), cfg, Path(args.run), args.steps, args.every, Path(args.out),
              None if args.budget_minutes is None else 60 * args.budget_minutes, args.episodes,
              args.tag)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
