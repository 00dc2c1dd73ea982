"""Plots of the suite's results (matplotlib Agg, atomic writes): bars per task (normalized
score per quality and method, mean +- std over seeds) and learning curves (mean over seeds,
one panel per quality): the score over actor steps where the cells were evaluated during
training (`eval_curve`), else the final stage's loss over steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoredec.io import atomic_output

__all__ = ["plot_bars", "plot_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_bars(summary, root: Path) -> list[Path]:
    """<root>/plots/bars_<task>.png: one group of bars per quality, one bar per method."""
    plt = _plt()
    out = []
    tasks = list(dict.fromkeys(t for t, _ in summary.rows))
    for task in tasks:
        qualities = [q for t, q in summary.rows if t == task]
        width = 0.8 / max(len(summary.methods), 1)
        fig, ax = plt.subplots(figsize=(max(5.0, 1.6 + 1.6 * len(qualities)), 3.6))
        for j, m in enumerate(summary.methods):
            vals = [summary.scores.get((task, q, m)) for q in qualities]
            mean = [np.mean(v) if v else np.nan for v in vals]
            std = [np.std(v) if v else 0.0 for v in vals]
            x = np.arange(len(qualities)) + (j - (len(summary.methods) - 1) / 2) * width
            label = m + ("\u2020" if m in summary.centralized else "")
            ax.bar(x, mean, width, yerr=std, capsize=2, label=label)
        ax.set_xticks(np.arange(len(qualities)), qualities)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_ylabel("normalized score")
        ax.set_title(f"{task}: final normalized score, mean ± std over seeds")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the bars
        out.append(_save(fig, Path(root) / "plots" / f"bars_{task}.png"))
        plt.close(fig)
    return out


def _curve_kind(cells: list[dict], task: str) -> str:
    """eval_curve where any cell of the task has one (losses of different objectives do not
    share an axis; scores do), else curve (the loss)."""
    return ("eval_curve" if any(c.get("eval_curve") for c in cells if c["cell"]["task"] == task)
            else "curve")


def plot_curves(cells: list[dict], root: Path) -> list[Path]:
    """<root>/plots/curves_<task>.png: per quality, each method's score over actor steps (the
    cells' eval_curve, where a task's cells have them) or final-stage loss over steps (mean over
    the seeds that share the same steps)."""
    plt = _plt()
    groups: dict[str, dict[str, dict[str, list]]] = {}
    kinds = {task: _curve_kind(cells, task) for task in {c["cell"]["task"] for c in cells}}
    for c in cells:
        curve = c.get(kinds[c["cell"]["task"]])
        if not curve or not curve.get("step"):
            continue
        cell = c["cell"]
        groups.setdefault(cell["task"], {}).setdefault(cell["quality"], {}).setdefault(
            cell["method"], []).append(curve)
    out = []
    for task, by_quality in sorted(groups.items()):
        qualities = list(by_quality)
        fig, axes = plt.subplots(1, len(qualities), figsize=(4 * len(qualities), 3.2), squeeze=False)
        for ax, quality in zip(axes[0], qualities):
            for method, curves in sorted(by_quality[quality].items()):
                steps = curves[0]["step"]
                same = [cv for cv in curves if cv["step"] == steps]
                values = np.array([[np.nan if v is None else v for v in cv["value"]] for cv in same],
                                  dtype=float)
                # Mean over the seeds that logged a value at that step (NaN where none did).
                count = (~np.isnan(values)).sum(axis=0)
                mean = np.where(count > 0, np.nansum(values, axis=0) / np.maximum(count, 1), np.nan)
                ax.plot(steps, mean, label=method)
            ax.set_title(f"{task} / {quality}")
            scores = kinds[task] == "eval_curve"
            ax.set_xlabel("actor step" if scores else f"{curves[0]['stage']} step")
            metric = curves[0].get("metric", "loss")
            ax.set_ylabel({"normalized": "normalized score (during training)",
                           "return": "return (during training)"}.get(metric, metric))
        axes[0][0].legend(fontsize=7)
        out.append(_save(fig, Path(root) / "plots" / f"curves_{task}.png"))
        plt.close(fig)
    return out
