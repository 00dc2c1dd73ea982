#!/usr/bin/env python3
"""Issue 14's three goals, judged on the finished cpu grid (results/cells) as Markdown.

1. OMSD's average over the 16 rows against the best decentralized baseline's (BC, MA-TD3+BC,
   MA-CQL, OMAR, IQL; BRPO-JAL is a centralized oracle and the BRPO rows are ablations).
2. OMSD against BRPO-IND on the multimodal rows: those whose dataset card measures a local
   mutual information of at least MI_BITS between the agents' action signs, and spread expert,
   whose expert draws its landmark plan among the near-optimal ones by construction.
3. OMSD against BC on the expert rows.
Differences carry the standard error of the difference of two 3-seed means.

    python3 scripts/goals.py [ROOT]        # ROOT: the suite root (default: results)
"""
import collections
import json
import math
import statistics
import sys
from pathlib import Path

DECENTRALIZED = ("bc", "matd3bc", "macql", "omar", "iql")
TASKS = ("spread", "tag", "world", "halfcheetah-2x3")
QUALITIES = ("random", "medium-replay", "medium", "expert")
MI_BITS = 0.01
MULTIMODAL_BY_CONSTRUCTION = {("spread", "expert")}


def local_mi(root: Path, cell: dict) -> float | None:
    card = root / "data" / cell["dataset"]["file"].replace(".h5", ".card.json")
    if not card.is_file():
        return None
    pairs = json.loads(card.read_text())["multimodality"]["pairs"]
    return max(p["local_mutual_information_bits"] for p in pairs)


def main(root: Path) -> None:
    scores, cells = collections.defaultdict(list), {}
    for path in sorted((root / "cells").glob("*.json")):
        method, task, quality, _seed = path.stem.split("__")
        cell = json.loads(path.read_text())
        scores[(method, task, quality)].append(cell["normalized_mean"])
        cells[(task, quality)] = cell
    rows = [(t, q) for t in TASKS for q in QUALITIES]
    missing = [f"{m} {t} {q}" for m in ("omsd", "brpo-ind", *DECENTRALIZED) for t, q in rows
               if len(scores[(m, t, q)]) < 3]
    if missing:
        sys.exit(f"the grid is not finished: {len(missing)} method rows lack seeds, e.g. {missing[0]}")

    def mean(m, r):
        return statistics.mean(scores[(m, *r)])

    def diff(a, b, r):
        d = mean(a, r) - mean(b, r)
        se = math.sqrt(sum(statistics.variance(scores[(m, *r)]) / len(scores[(m, *r)]) for m in (a, b)))
        return d, se

    avg = {m: statistics.mean(mean(m, r) for r in rows) for m in ("omsd", "brpo-ind", *DECENTRALIZED)}
    best = max(DECENTRALIZED, key=avg.get)
    print("## 1. Average over the 16 rows\n")
    print(f"OMSD {avg['omsd']:.1f}; best decentralized baseline {best} {avg[best]:.1f} "
          f"(OMSD / it = {avg['omsd'] / avg[best]:.3f}; the paper's margin is 1.26); "
          + ", ".join(f"{m} {avg[m]:.1f}" for m in DECENTRALIZED if m != best) + "\n")

    print(f"## 2. OMSD against BRPO-IND on the multimodal rows (local MI >= {MI_BITS} bits, "
          "or multimodal by construction)\n")
    print("| task | quality | local MI (bits) | OMSD | BRPO-IND | OMSD - BRPO-IND ± se |")
    print("|---|---|---|---|---|---|")
    wins = total = 0
    for r in rows:
        mi = local_mi(root, cells[r])
        if r not in MULTIMODAL_BY_CONSTRUCTION and (mi is None or mi < MI_BITS):
            continue
        d, se = diff("omsd", "brpo-ind", r)
        wins, total = wins + (d > 0), total + 1
        print(f"| {r[0]} | {r[1]} | {'n/a' if mi is None else f'{mi:.3f}'} | {mean('omsd', r):.1f} | "
              f"{mean('brpo-ind', r):.1f} | {d:+.1f} ± {se:.1f} |")
    print(f"\nOMSD ahead on {wins} of {total}.\n")

    print("## 3. OMSD against BC on the expert rows\n")
    print("| task | OMSD | BC | OMSD - BC ± se |")
    print("|---|---|---|---|")
    for t in TASKS:
        d, se = diff("omsd", "bc", (t, "expert"))
        print(f"| {t} | {mean('omsd', (t, 'expert')):.1f} | {mean('bc', (t, 'expert')):.1f} | {d:+.1f} ± {se:.1f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
