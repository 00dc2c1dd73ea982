"""Markdown tables (and a plot) from the JSON lines that scripts/ablate.sh and the learning-curve
driver append, so that results/README.md quotes generated numbers, never typed ones.

    python -m scoredec.experiments.ablation_table results/ablation/X.jsonl [...]
    python -m scoredec.experiments.ablation_table --curve results/curves/X.jsonl --plot X.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _score(pair) -> str:
    if not pair or pair[0] is None:
        return "—"
    return f"{pair[0]:.1f} ± {pair[1]:.1f}"


def ablation_markdown(rows: list[dict]) -> str:
    """One row per ablation line: name, changed flags, behaviour policy, actors, seconds."""
    out = ["| row | flags (changed from the config) | behaviour model as a policy | actors | s |",
           "|---|---|---|---|---|"]
    for r in rows:
        flags = f"`{r['flags']}`" if r.get("flags") else "(the config)"
        out.append(f"| {r['name']} | {flags} | {_score(r.get('behaviour_normalized'))} | "
                   f"{_score(r.get('actors_normalized'))} | {r.get('seconds', '')} |")
    return "\n".join(out)


def curve_markdown(rows: list[dict]) -> str:
    out = ["| behaviour steps | behaviour model as a policy | OMSD actors (stage 2 from that snapshot) |",
           "|---|---|---|"]
    for r in sorted(rows, key=lambda r: r["step"]):
        out.append(f"| {r['step']:,} | {_score(r['behaviour_normalized'])} | "
                   f"{_score(r['actors_normalized'])} |")
    return "\n".join(out)


def curve_plot(curves: dict[str, list[dict]], path: Path, title: str) -> None:
    """curves: label -> rows of one curve file. The behaviour model's line comes from the first
    (the files share one long run); each file adds its actors' line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, (name, rows) in enumerate(curves.items()):
        rows = sorted(rows, key=lambda r: r["step"])
        steps = [r["step"] for r in rows]
        if i == 0:
            ax.plot(steps, [r["behaviour_normalized"][0] for r in rows], marker="o", color="k",
                    label="behaviour model (centralized sampler)")
        ax.plot(steps, [r["actors_normalized"][0] for r in rows], marker="s",
                label=f"OMSD actors, {name}")
    ax.set_xlabel("behaviour optimizer steps")
    ax.set_ylabel("normalized score (100 episodes)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = Path(path).with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="*", help="ablation JSON lines files")
    p.add_argument("--curve", action="append", default=[],
                   help="a learning-curve JSON lines file (repeat for several stage-2 settings of "
                        "one long run)")
    p.add_argument("--plot", help="with --curve: write the curves' plot here (PNG)")
    args = p.parse_args(argv)
    for f in args.files:
        print(f"{f}:\n\n{ablation_markdown(read_rows(Path(f)))}\n")
    curves = {Path(c).stem: read_rows(Path(c)) for c in args.curve}
    for name, rows in curves.items():
        print(f"{name}:\n\n{curve_markdown(rows)}\n")
    if curves and args.plot:
        curve_plot(curves, Path(args.plot), "spread expert, seed 0: behaviour steps vs score")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
