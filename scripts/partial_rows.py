#!/usr/bin/env python3
"""Rows of the cpu grid that every method has finished (all seeds), with each method's mean
normalized score per row and over those rows, as a Markdown table. While the grid is incomplete
TABLE.md's averages cover different rows per method; this compares like with like.

    python3 scripts/partial_rows.py [ROOT]        # ROOT: the suite root (default: results)
"""
import collections
import json
import statistics
import sys
from pathlib import Path

METHODS = ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal", "bc", "matd3bc", "macql", "omar", "iql")
TASKS = ("spread", "tag", "world", "halfcheetah-2x3")
QUALITIES = ("random", "medium-replay", "medium", "expert")
SEEDS = 3


def main(root: Path) -> None:
    scores = collections.defaultdict(list)
    for path in (root / "cells").glob("*.json"):
        method, task, quality, _seed = path.stem.split("__")
        scores[(method, task, quality)].append(json.loads(path.read_text())["normalized_mean"])
    rows = [(t, q) for t in TASKS for q in QUALITIES
            if all(len(scores[(m, t, q)]) == SEEDS for m in METHODS)]
    mean = {(m, *r): statistics.mean(scores[(m, *r)]) for m in METHODS for r in rows}
    print("| task | quality | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))
    for r in rows:
        best = max(mean[(m, *r)] for m in METHODS)
        print(f"| {r[0]} | {r[1]} | " + " | ".join(
            f"**{mean[(m, *r)]:.1f}**" if mean[(m, *r)] == best else f"{mean[(m, *r)]:.1f}"
            for m in METHODS) + " |")
    print(f"| **mean over these {len(rows)} rows** | | " + " | ".join(
        f"**{statistics.mean(mean[(m, *r)] for r in rows):.1f}**" for m in METHODS) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
