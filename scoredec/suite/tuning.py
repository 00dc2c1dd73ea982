"""Fair tuning before the table: every method gets the same small search per quality.

One hyperparameter per method, three candidate values around the published one, on one task
(spread) and one seed (TUNE_SEED, never a reported seed), trained exactly like a cpu-preset
cell. OMSD's beta is searched with each of its score weightings (WEIGHTINGS_SEARCHED: which
weighting suits a data quality is measured, DESIGN.md 1.5), the same beta values for each.
The best value per method and quality (highest final normalized score; no best-checkpoint, no
evaluation seed) goes to configs/tuned/cpu.yaml, which the cpu preset reads. The BRPO ablations take OMSD's beta: they are OMSD with one part changed, so the same
beta isolates that part. BC has nothing to tune.

Cells live under <root>/tuning/<method>/<param>=<value>/cells/ (a normal suite root each:
resumable, skipped when done), datasets under <root>/tuning/data/; OMSD's behaviour model and
critic do not depend on beta, so the values after the first take them from a finished sibling
(suite/share.py). `scoredec suite tune --shard I/N` splits the jobs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import yaml

from scoredec.io import atomic_write_text
from scoredec.suite.grid import Cell, is_done, parse_shard
from scoredec.methods import merge
from scoredec.suite.presets import OMSD_FAMILY, TUNED_CONFIG, Preset, get_preset

__all__ = ["SEARCH", "TUNE_TASK", "TUNE_SEED", "jobs", "job_preset", "run_tuning", "choose"]

log = logging.getLogger(__name__)

TUNE_TASK = "spread"
TUNE_SEED = 100

SEARCH: dict[str, tuple[str, dict[str, tuple[float, ...]]]] = {
    # OMSD's beta (DESIGN.md 1.5: expert ~0.001-0.005, random ~0.3-0.5)
    "omsd": ("policy.beta", {"random": (0.1, 0.3, 1.0), "medium-replay": (0.03, 0.1, 0.3),
                             "medium": (0.01, 0.05, 0.2), "expert": (0.001, 0.005, 0.02)}),
    # TD3+BC's alpha (Fujimoto & Gu: 2.5)
    "matd3bc": ("alpha", {q: (1.0, 2.5, 10.0) for q in ("random", "medium-replay", "medium", "expert")}),
    # CQL's alpha (OMAR's MPE settings: 0.5-5.0 by dataset)
    "macql": ("cql_alpha", {q: (0.5, 1.0, 5.0) for q in ("random", "medium-replay", "medium", "expert")}),
    "omar": ("cql_alpha", {q: (0.5, 1.0, 5.0) for q in ("random", "medium-replay", "medium", "expert")}),
    # IQL's inverse temperature (Kostrikov et al.: 3.0 on locomotion, 10.0 on antmaze)
    "iql": ("inverse_temperature", {q: (1.0, 3.0, 10.0) for q in ("random", "medium-replay", "medium", "expert")}),
}
"""method -> (dotted config field, quality -> candidate values)."""

WEIGHTING_FIELD = "policy.weighting"
WEIGHTINGS_SEARCHED = {"omsd": ("score", "vds")}
"""method -> score weightings each of its values is tried with (DESIGN.md 1.5)."""

SHARES_BETA = tuple(m for m in OMSD_FAMILY if m != "omsd")
"""Methods that take OMSD's chosen beta (and weighting)."""


@dataclasses.dataclass(frozen=True)
class Job:
    method: str
    quality: str
    value: float
    weighting: str | None = None   # OMSD's score weighting of this job

    @property
    def field(self) -> str:
        return SEARCH[self.method][0]

    @property
    def fields(self) -> dict:
        """The dotted fields this job sets."""
        out = {} if self.weighting is None else {WEIGHTING_FIELD: self.weighting}
        return {**out, self.field: self.value}

    @property
    def label(self) -> str:
        return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in self.fields.items())

    def root(self, root: Path) -> Path:
        return Path(root) / "tuning" / self.method / self.label

    @property
    def cell(self) -> Cell:
        return Cell(self.method, TUNE_TASK, self.quality, TUNE_SEED)


def jobs(methods=None, qualities=None) -> list[Job]:
    """Every (method, quality, value) of the search, in a fixed order."""
    out = []
    for method, (_, grid) in SEARCH.items():
        if methods and method not in methods:
            continue
        for quality, values in grid.items():
            if qualities and quality not in qualities:
                continue
            for weighting in WEIGHTINGS_SEARCHED.get(method, (None,)):
                out += [Job(method, quality, float(v), weighting) for v in values]
    return out


def _nested(dotted: str, value) -> dict:
    out: dict = value
    for part in reversed(dotted.split(".")):
        out = {part: out}
    return out


def job_preset(job: Job, base: Preset | None = None) -> Preset:
    """The cpu preset (untuned) with this job's value set for its quality."""
    base = base or get_preset("cpu", tuned=False)
    base = dataclasses.replace(base, tasks=(TUNE_TASK,), seeds=(TUNE_SEED,),
                               qualities=(job.quality,))
    overrides: dict = {}
    for field, value in job.fields.items():
        if field == "policy.beta":   # the preset's per-quality beta of the OMSD family
            base = dataclasses.replace(base, beta={**base.beta, job.quality: value})
        else:
            overrides = merge(overrides, _nested(field, value))
    if not overrides:
        return base
    quality_overrides = {m: dict(v) for m, v in base.quality_overrides.items()}
    quality_overrides.setdefault(job.method, {})[job.quality] = overrides
    return dataclasses.replace(base, quality_overrides=quality_overrides)


def run_tuning(root: Path, *, methods=None, qualities=None, shard: str | None = None,
               resume: bool = False, progress: bool = False) -> list[str]:
    """Run the pending jobs (of this shard); returns the keys of failed jobs."""
    from scoredec.suite.run_cell import run_cell

    todo = jobs(methods, qualities)
    if shard:
        # whole (method, quality) groups per shard: a group's later values reuse its first
        # value's behaviour model and critic
        index, count = parse_shard(shard)
        groups = list(dict.fromkeys((j.method, j.quality) for j in todo))
        todo = [j for j in todo if groups.index((j.method, j.quality)) % count == index]
    failures = []
    for i, job in enumerate(todo, 1):
        jroot = job.root(root)
        if is_done(jroot, job.cell):
            continue
        try:
            # every job of the group trains the same behaviour model and critic
            siblings = tuple(j.root(root) for j in jobs((job.method,), (job.quality,)) if j != job)
            rec = run_cell(job.cell, job_preset(job), jroot, resume=resume, progress=progress,
                           data_root=Path(root) / "tuning", donor_roots=siblings)
        except Exception as err:  # one bad job must not stop the search
            log.error("[%d/%d] tune %s %s FAILED: %s: %s", i, len(todo), job.cell.key,
                      job.label, type(err).__name__, err)
            failures.append(f"{job.cell.key} {job.label}")
            continue
        log.info("[%d/%d] tune %s %s: normalized %.1f", i, len(todo), job.cell.key, job.label,
                 rec["normalized_mean"])
    return failures


def choose(root: Path, out: Path = TUNED_CONFIG) -> dict:
    """Pick the best value per method and quality from the finished jobs and write `out`
    (YAML: method -> quality -> {field: value}, plus the scores behind each choice). A
    (method, quality) with unfinished jobs is left out, so the preset keeps its default."""
    chosen: dict[str, dict[str, dict]] = {}
    evidence: dict[str, dict[str, dict[str, float]]] = {}
    for method, (_, grid) in SEARCH.items():
        for quality in grid:
            group = jobs((method,), (quality,))
            scores = {}
            for job in group:
                path = job.root(root) / "cells" / f"{job.cell.key}.json"
                if path.is_file():
                    scores[job] = json.loads(path.read_text())["normalized_mean"]
            if len(scores) < len(group):
                continue
            best = max(scores, key=lambda j: scores[j])   # the first of equals, in search order
            chosen.setdefault(method, {})[quality] = best.fields
            evidence.setdefault(method, {})[quality] = {
                (f"{j.weighting},{j.value:g}" if j.weighting else f"{j.value:g}"): round(s, 2)
                for j, s in scores.items()}
    for method in SHARES_BETA:
        if "omsd" in chosen:
            chosen[method] = {q: dict(v) for q, v in chosen["omsd"].items()}
    doc = {"task": TUNE_TASK, "seed": TUNE_SEED, "chosen": chosen, "scores": evidence}
    header = ("# Written by `scoredec suite tune` (scoredec/suite/tuning.py): the best value per method\n"
              "# and quality on the tuning task and seed; read by the cpu preset. Do not edit.\n")
    atomic_write_text(Path(out), header + yaml.safe_dump(doc, sort_keys=False))
    return doc
