"""The bandit picture: data, behaviour samples, and where each method's actors ended."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scoredec.envs import bandit
from scoredec.io import atomic_output

MARKERS = {"omsd": ("o", "tab:green"), "brpo-ind": ("s", "tab:red"),
           "brpo-ctde": ("^", "tab:orange"), "brpo-jal": ("D", "tab:purple"), "bc": ("x", "tab:gray")}


def plot_bandit(results: list[dict], path: str | Path, samples: int = 2000) -> Path:
    """Three panels on the (a1, a2) square; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = results[0]
    data = bandit.sample_joint_actions(samples, np.random.default_rng(first["seed"]))[:, :, 0]
    grid = np.linspace(-1, 1, 101)
    reward = grid[None, :] * grid[:, None]
    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    panels = [("dataset joint actions", {"data": data})]
    seq, marg = first["samples"].get("sequential"), first["samples"].get("marginal")
    panels.append(("behaviour samples (seed %d)" % first["seed"],
                   {k: np.array(v) for k, v in (("sequential sampler", seq),
                                                ("marginals, independent", marg)) if v is not None}))
    for ax, (title, sets) in zip(axes[:2], panels):
        ax.contourf(grid, grid, reward, levels=20, cmap="RdBu", alpha=0.25)
        for (label, pts), color in zip(sets.items(), ("tab:blue", "tab:green", "tab:red")):
            ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.4, label=label, color=color)
        ax.set_title(title)
    ax = axes[2]
    ax.contourf(grid, grid, reward, levels=20, cmap="RdBu", alpha=0.25)
    for method in first["methods"]:
        pts = np.array([r["methods"][method]["actions"] for r in results])
        marker, color = MARKERS.get(method, ("*", "black"))
        ax.scatter(pts[:, 0], pts[:, 1], marker=marker, color=color, s=60, alpha=0.8,
                   label=f"{method} actors ({len(pts)} seeds)")
    ax.set_title("final actors (reward a1 a2 shaded)")
    for ax in axes:
        ax.set_xlim(-1.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("a1")
        ax.set_ylabel("a2")
        ax.set_aspect("equal")
        ax.legend(loc="lower right", fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path
