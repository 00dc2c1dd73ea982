"""results/TABLE.md from the cell JSONs: rows task x quality, columns methods, mean +- std of
the final normalized score over seeds (never the best checkpoint), an average row, wall-clock
per method, centralized methods marked with a dagger; and, where cells record the stage-1 report
(scoredec/behaviour_report.py), the behaviour models' own score as centralized policies.

The std is over seeds (population std, ddof = 0) of each seed's mean over its evaluation
episodes. A cell block with fewer seeds than the most complete block says how many it has.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scoredec.io import atomic_write_text
from scoredec.suite.published import PUBLISHED, PUBLISHED_NAMES, PUBLISHED_SOURCE

__all__ = ["load_cells", "Summary", "summarize", "render_table", "render_behaviour", "write_table"]

log = logging.getLogger(__name__)

DAGGER = "\u2020"


def load_cells(root: Path) -> list[dict]:
    """Every <root>/cells/*.json, sorted by key."""
    cells = []
    for path in sorted((Path(root) / "cells").glob("*.json")):
        cells.append(json.loads(path.read_text(encoding="utf-8")))
    return cells


@dataclass
class Summary:
    methods: list[str]                                    # column order
    rows: list[tuple[str, str]]                           # (task, quality)
    scores: dict[tuple[str, str, str], list[float]]       # (task, quality, method) -> per-seed
    centralized: set[str]
    seconds: dict[str, list[float]]                       # method -> per-cell stand-alone seconds
    run_seconds: float = 0.0                              # what the grid actually spent
    cpu_seconds: dict[str, list[float]] = field(default_factory=dict)  # method -> per-cell CPU s
    # (task, quality, method) -> per-seed normalized score of the method's behaviour model
    # sampled as a centralized policy; cells written before the report have none
    behaviour: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    behaviour_modes: dict[str, str] = field(default_factory=dict)    # method -> score mode


def _order(values, preferred) -> list:
    pref = [v for v in preferred if v in values]
    return pref + sorted(v for v in values if v not in pref)


def summarize(cells: list[dict]) -> Summary:
    from scoredec.datagen.factory import QUALITIES, TASKS

    scores: dict[tuple[str, str, str], list[float]] = {}
    seconds: dict[str, list[float]] = {}
    run_seconds = 0.0
    cpu_seconds: dict[str, list[float]] = {}
    centralized = set()
    behaviour: dict[tuple[str, str, str], list[float]] = {}
    behaviour_modes: dict[str, str] = {}
    for c in cells:
        cell = c["cell"]
        if c.get("normalized_mean") is None:
            log.warning("%s: no normalized score (no reference returns); left out", c["key"])
            continue
        scores.setdefault((cell["task"], cell["quality"], cell["method"]), []).append(
            float(c["normalized_mean"]))
        # stand-alone: a stage copied from another cell (suite/share.py) counts for both
        secs = c["seconds"]
        seconds.setdefault(cell["method"], []).append(float(secs.get("standalone", secs["total"])))
        run_seconds += float(secs["total"])
        if "cpu" in secs:
            cpu_seconds.setdefault(cell["method"], []).append(float(secs["cpu"]))
        if c.get("centralized"):
            centralized.add(cell["method"])
        report = c.get("behaviour")
        if report and report.get("normalized_mean") is not None:
            behaviour.setdefault((cell["task"], cell["quality"], cell["method"]), []).append(
                float(report["normalized_mean"]))
            behaviour_modes[cell["method"]] = report.get("mode", "?")
    from scoredec.methods import family

    methods = _order({m for _, _, m in scores}, (*family(), "matd3bc", "macql", "omar", "iql"))
    tasks = _order({t for t, _, _ in scores}, TASKS)
    rows = [(t, q) for t in tasks for q in _order({q for tt, q, _ in scores if tt == t}, QUALITIES)]
    return Summary(methods, rows, scores, centralized, seconds, run_seconds, cpu_seconds,
                   behaviour, behaviour_modes)


def _fmt(values: list[float] | None, full: int) -> str:
    if not values:
        return "–"
    text = f"{np.mean(values):.1f} ± {np.std(values):.1f}"
    return text if len(values) >= full else f"{text} (n={len(values)})"


def _fmt_seconds(s: float) -> str:
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def render_table(summary: Summary, title: str = "Normalized score") -> str:
    s = summary
    full = max((len(v) for v in s.scores.values()), default=0)
    names = [m + (DAGGER if m in s.centralized else "") for m in s.methods]
    header = ["task", "quality", *names]
    lines = [f"# {title}", "",
             "Final normalized score (100 = expert, 0 = random; DESIGN.md 1.7), mean ± std over "
             f"seeds of each seed's mean over its evaluation episodes; seeds per cell: {full} "
             "(n=k where fewer). Generated by `scoredec suite table` from results/cells/*.json; "
             "do not edit.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, quality in s.rows:
        row = [task, quality] + [_fmt(s.scores.get((task, quality, m)), full) for m in s.methods]
        lines.append("| " + " | ".join(row) + " |")
    lines.append(_average_row(s.scores, s.methods, s.rows))
    lines += render_behaviour(s, full)
    lines += render_published(s, full)
    lines += ["", "## Wall-clock per method", "",
              "| method | cells | total | mean per cell | CPU time per cell |", "|---|---|---|---|---|"]
    for m, name in zip(s.methods, names):
        secs, cpu = s.seconds.get(m, []), s.cpu_seconds.get(m, [])
        lines.append(f"| {name} | {len(secs)} | {_fmt_seconds(sum(secs))} | "
                     f"{_fmt_seconds(float(np.mean(secs))) if secs else '–'} | "
                     f"{_fmt_seconds(float(np.mean(cpu))) if cpu else '–'} |")
    lines += ["", "Wall-clock grows when other jobs share the cores; CPU time (of the cell's process, "
              "without the stages it copied) does not.", "",
              "A method's time is what it costs on its own: a behaviour model or critic that "
              "another cell of the same dataset and seed trained identically, and that this cell "
              "copied (scoredec/suite/share.py), counts in both cells.", "",
              f"Whole grid: {_fmt_seconds(s.run_seconds)} of compute (dataset generation, "
              "training and evaluation, summed over cells; shared stages counted once)."]
    if s.centralized:
        lines += ["", f"{DAGGER} centralized at execution (an oracle, not a decentralized method)."]
    return "\n".join(lines) + "\n"


def _average_row(scores: dict, methods: list[str], rows: list[tuple[str, str]]) -> str:
    """Average over the rows a method has: the mean of its per-row means (std over rows is not
    a seed spread, so none is shown); incomplete methods say over how many rows."""
    avg = ["**average**", ""]
    for m in methods:
        means = [np.mean(scores[(t, q, m)]) for t, q in rows if (t, q, m) in scores]
        text = f"**{np.mean(means):.1f}**" if means else "–"
        avg.append(text if len(means) == len(rows) else f"{text} ({len(means)}/{len(rows)} rows)")
    return "| " + " | ".join(avg) + " |"


def render_behaviour(s: Summary, full: int) -> list[str]:
    """The behaviour models as centralized policies, beside BC's actors; nothing when no cell
    records the stage-1 report."""
    methods = [m for m in s.methods if any(k[2] == m for k in s.behaviour)]
    if not methods:
        return []
    header = ["task", "quality", *(f"{m} ({s.behaviour_modes[m]})" for m in methods)]
    scores = dict(s.behaviour)
    reference = "bc" in s.methods
    if reference:
        header.append("bc (actors)")
        scores.update({(t, q, "bc (actors)"): v for (t, q, m), v in s.scores.items() if m == "bc"})
    columns = methods + (["bc (actors)"] if reference else [])
    lines = ["", "## Behaviour model as a policy (centralized)", "",
             "Each method's stage-1 behaviour model sampled as a policy, agent after agent from "
             "the joint observation (centralized, DESIGN.md 1.6; scoredec/behaviour_report.py), "
             "on the same evaluation episodes as its actors: the sequential model for omsd, the "
             "marginal one for brpo-ind and brpo-ctde (one model when their configs agree), the "
             "joint one for brpo-jal. Mean ± std over seeds; BC's actors for reference.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, quality in s.rows:
        row = [task, quality] + [_fmt(scores.get((task, quality, m)), full) for m in columns]
        lines.append("| " + " | ".join(row) + " |")
    lines.append(_average_row(scores, columns, s.rows))
    return lines


def render_published(s: Summary, full: int) -> list[str]:
    """Ours beside the published numbers, for the rows and methods both have."""
    methods = [m for m in PUBLISHED_NAMES if m in s.methods]
    rows = [r for r in s.rows if r in PUBLISHED]
    if not methods or not rows:
        return []
    header = ["task", "quality"]
    for m in methods:
        header += [f"{m} (ours)", f"{PUBLISHED_NAMES[m]} (paper)"]
    lines = ["", "## Beside the published numbers", "",
             f"Published: {PUBLISHED_SOURCE}, on OMAR's datasets with the paper's training "
             "budget; ours: the cells above (scoredec/suite/published.py says why the values are "
             "not comparable one to one).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task, quality in rows:
        row = [task, quality]
        for m in methods:
            pub = PUBLISHED[(task, quality)].get(m)
            row += [_fmt(s.scores.get((task, quality, m)), full),
                    f"{pub[0]:.1f} ± {pub[1]:.1f}" if pub else "–"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def write_table(root: Path, plots: bool = True) -> dict:
    """Regenerate <root>/TABLE.md (and the plots) from <root>/cells; returns what was written."""
    root = Path(root)
    cells = load_cells(root)
    if not cells:
        raise FileNotFoundError(f"{root / 'cells'}: no cell JSONs to make a table from")
    summary = summarize(cells)
    table = render_table(summary)
    written = {"table": root / "TABLE.md", "plots": []}
    if plots:
        from scoredec.suite.plots import plot_bars, plot_curves

        written["plots"] = plot_bars(summary, root) + plot_curves(cells, root)
        if written["plots"]:
            table += "\n## Plots\n\n" + "\n".join(
                f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in written["plots"]) + "\n"
    atomic_write_text(root / "TABLE.md", table)
    return written
