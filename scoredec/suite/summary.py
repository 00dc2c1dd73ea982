"""Per-stage wall-clock and steps/s of a run directory, from its metrics.jsonl (used by the
cell JSON and by stage sharing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoredec.runs import read_metrics
from scoredec.training import EVAL_STAGE

__all__ = ["CURVE_POINTS", "run_summary"]

CURVE_POINTS = 100
"""At most this many points of a learning curve go into a cell JSON (evenly thinned)."""


def _thin(points: list, limit: int = CURVE_POINTS) -> list:
    if len(points) <= limit:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return [points[i] for i in idx]


def run_summary(run: Path) -> dict:
    """Per-stage wall-clock and steps/s, the last stage's loss curve and, where the run was
    evaluated during training (scoredec.periodic_eval), its score curve, from metrics.jsonl.

    A stage's seconds are the sum of the gaps between its consecutive records (the first
    ``log_every`` steps are extrapolated at the stage's rate); a resumed run's downtime is
    not counted when the gap spans a restart (a step that went backwards or a gap over ten
    times the median)."""
    records = read_metrics(run)
    stages: dict[str, list[dict]] = {}
    for rec in records:
        stages.setdefault(rec["stage"], []).append(rec)
    evaluations = stages.pop(EVAL_STAGE, [])
    summary = {}
    for name, recs in stages.items():
        steps = np.array([r["step"] for r in recs], dtype=np.float64)
        times = np.array([r["time"] for r in recs], dtype=np.float64)
        dstep, dt = np.diff(steps), np.diff(times)
        ok = (dstep > 0) & (dt >= 0)
        if ok.any():
            med = np.median(dt[ok])
            ok &= dt <= 10 * med + 1e-9
        rate = float(dstep[ok].sum() / dt[ok].sum()) if ok.any() and dt[ok].sum() > 0 else None
        last = int(steps[-1])
        seconds = last / rate if rate else None
        summary[name] = {"steps": last, "steps_per_s": rate, "seconds": seconds}
    curve = None
    if stages:
        name = "policy" if "policy" in stages else list(stages)[-1]
        points = [(r["step"], r.get("loss")) for r in stages[name]]
        points = _thin(points)
        curve = {"stage": name, "metric": "loss", "step": [p[0] for p in points],
                 "value": [p[1] for p in points]}
    return {"stages": summary, "curve": curve, "eval_curve": _eval_curve(evaluations)}


def _eval_curve(records: list[dict]) -> dict | None:
    """The normalized score (the return where the task has no reference) over actor steps."""
    if not records:
        return None
    metric = "normalized" if all(r.get("normalized") is not None for r in records) else "return"
    points = _thin([(r["step"], r.get(metric)) for r in records])
    return {"metric": metric, "step": [p[0] for p in points], "value": [p[1] for p in points]}
