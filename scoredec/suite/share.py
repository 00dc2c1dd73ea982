"""Stage-1 products shared across the OMSD family within one suite root.

brpo-ind and brpo-ctde train the same marginal behaviour model; omsd, brpo-ctde and brpo-jal
the same joint critic. pipeline.train seeds every stage from (seed, stage) alone, so a finished
product of another cell with the same dataset, seed, stage kind and stage config is the product
this cell would train (bit for bit on the same machine and thread count). The suite copies it,
with that stage's metric records, instead of training it again, and the cell JSON says so:
``shared_stages[stage] = {"from": donor key, "seconds": the donor's measured stage seconds}``,
so that a method's stand-alone wall-clock can still be reported.

Only finished products are shared (a stage with checkpoints of its own is resumed instead), and
only between run directories of the same suite root, task, quality and seed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from scoredec.checkpoint import checkpoint_paths, is_complete
from scoredec.config import config_from_dict, config_to_dict
from scoredec.data.fingerprint import file_sha256

__all__ = ["SHAREABLE", "stage_signature", "adopt_shared_stages"]

log = logging.getLogger(__name__)

SHAREABLE = ("behavior", "critic")
"""Stages whose product does not depend on the stage-2 method."""


def stage_signature(cfg, stage: str, data: str | os.PathLike) -> dict | None:
    """Everything the stage's product depends on; None when the method has no such stage."""
    from scoredec.methods import variant

    method = variant(cfg.method)
    kind = method.score_mode if stage == "behavior" else method.critic_scope
    if kind is None:
        return None
    d = config_to_dict(cfg)
    order = d.get("order") if stage == "behavior" and kind == "sequential" else None
    if stage == "behavior" and kind != "sequential":
        d[stage].pop("cond_noise", None)   # only the sequential models condition on actions
    return {"stage": stage, "kind": kind, "config": d[stage], "order": order, "seed": cfg.seed,
            "device": d.get("device"), "data": str(Path(data).resolve())}


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _copy_metrics(donor: Path, run: Path, stage: str) -> None:
    src = donor / "metrics.jsonl"
    if not src.is_file():
        return
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines()
             if ln.strip() and json.loads(ln).get("stage") == stage]
    with open(run / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write("".join(ln + "\n" for ln in lines))


def adopt_shared_stages(root: Path, cell, overrides: dict, data: Path,
                        donor_roots: tuple[Path, ...] = ()) -> dict[str, dict]:
    """Copy into the cell's run directory every shareable stage that another finished cell of
    the OMSD family already trained identically; returns {stage: {"from", "seconds"}}.
    donor_roots: other suite roots to look in too (the tuning search's sibling values)."""
    from scoredec.methods import config_with, family
    from scoredec.pipeline import TrainConfig, product_stem, saved_train_config
    from scoredec.suite.grid import Cell
    from scoredec.suite.summary import run_summary

    if cell.method not in family():
        return {}
    cfg = config_with(TrainConfig, overrides, method=cell.method, seed=cell.seed)
    run = Path(root) / "runs" / cell.key
    shared: dict[str, dict] = {}
    for stage in SHAREABLE:
        mine = stage_signature(cfg, stage, data)
        if mine is None or is_complete(product_stem(run, stage)):
            continue
        ckpts = run / "checkpoints"
        if ckpts.is_dir() and any(p.name.startswith(f"{stage}-") for p in ckpts.iterdir()):
            continue   # this cell started the stage itself: resume continues it
        donors = [Path(r) / "runs" / Cell(m, cell.task, cell.quality, cell.seed).key
                  for r in (root, *donor_roots) for m in family()]
        for donor in donors:
            stem = product_stem(donor, stage)
            if donor.resolve() == run.resolve() or not is_complete(stem):
                continue
            meta = json.loads(checkpoint_paths(stem)[1].read_text(encoding="utf-8"))["meta"]
            donor_cfg = config_from_dict(TrainConfig, saved_train_config(meta["config"]),
                                         where=f"{stem}.json")
            if stage_signature(donor_cfg, stage, meta["data"]) != mine:
                continue
            if meta.get("data_sha256") not in (None, file_sha256(data)):
                continue   # trained on what the file held before it was made again
            run.mkdir(parents=True, exist_ok=True)
            target = product_stem(run, stage)
            for src, dst in zip(checkpoint_paths(stem), checkpoint_paths(target)):
                _copy_atomic(src, dst)   # the JSON last: it marks the product complete
            _copy_metrics(donor, run, stage)
            seconds = run_summary(donor)["stages"].get(stage, {}).get("seconds")
            shared[stage] = {"from": donor.name if donor.parent.parent == Path(root) else str(donor),
                             "seconds": seconds}
            log.info("%s: stage %s taken from %s (same dataset, seed and config)", cell.key,
                     stage, donor.name)
            break
    return shared
