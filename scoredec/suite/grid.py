"""The grid: cells method x task x quality x seed, their keys, shards and done-ness.

A cell's task is a label: the task, or the task and an agent count other than its default
(``spread-n4``: spread with 4 agents; ``task_label`` / ``split_task``), so that cells, runs and
datasets of another count sit beside the default ones and have their own table rows.

The cell order is fixed (task, quality, seed, then method) so that every shard sees the same
list and all methods of one dataset finish close together; shard I of N takes the cells whose
index i in that list has i % N == I, so shards never overlap and together cover the grid.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cell", "make_cells", "parse_shard", "shard", "cell_path", "is_done", "pending",
           "task_label", "split_task"]

_AGENTS_SUFFIX = re.compile(r"(?P<task>.+)-n(?P<n>\d+)")


def task_label(task: str, n_agents: int | None = None) -> str:
    """'spread', 4 -> 'spread-n4'; the bare task at its default count or None."""
    from scoredec.envs.scenario import default_agents

    if n_agents is None or n_agents == default_agents(task):
        return task
    return f"{task}-n{n_agents}"


def split_task(label: str) -> tuple[str, int | None]:
    """'spread-n4' -> ('spread', 4); 'spread' -> ('spread', None) (the task's default)."""
    m = _AGENTS_SUFFIX.fullmatch(label)
    return (m.group("task"), int(m.group("n"))) if m else (label, None)



@dataclass(frozen=True, order=True)
class Cell:
    """One training run and its evaluation."""

    method: str
    task: str
    quality: str
    seed: int

    @property
    def key(self) -> str:
        """<method>__<task>__<quality>__s<seed>: the cell's file and run directory name."""
        return f"{self.method}__{self.task}__{self.quality}__s{self.seed}"

    @classmethod
    def from_key(cls, key: str) -> "Cell":
        parts = key.split("__")
        if len(parts) != 4 or not parts[3].startswith("s") or not parts[3][1:].isdigit():
            raise ValueError(f"{key!r} is not a cell key <method>__<task>__<quality>__s<seed>")
        return cls(parts[0], parts[1], parts[2], int(parts[3][1:]))


def make_cells(methods, tasks, qualities, seeds) -> list[Cell]:
    """All cells, ordered task, quality, seed, method (the order shards index into)."""
    return [Cell(m, t, q, int(s)) for t, q, s, m in itertools.product(tasks, qualities, seeds, methods)]


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return index, count


def shard(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard index/count: cell i belongs to shard i % count."""
    return [c for i, c in enumerate(cells) if i % count == index]


def cell_path(root: Path, cell: Cell) -> Path:
    return Path(root) / "cells" / f"{cell.key}.json"


def is_done(root: Path, cell: Cell) -> bool:
    """A cell is done when its JSON exists (it is written atomically, last)."""
    return cell_path(root, cell).is_file()


def pending(root: Path, cells: list[Cell]) -> list[Cell]:
    return [c for c in cells if not is_done(root, c)]
