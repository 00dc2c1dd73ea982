"""How long training will take on this machine, measured before it starts.

A probe trains the same method with the same networks, batch sizes and device for a few steps
per stage in a temporary directory, and times each stage over the second half of its metric
records (the first steps pay one-off costs: allocator, backend dispatch checks). The suite's
estimate (suite/run_cell.estimate_seconds) and `scoredec train`'s both use it.
"""

from __future__ import annotations

import logging
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PROBE_STEPS", "late_rates", "shrink_steps", "probe_rates", "stage_steps",
           "remaining_steps", "worth_probing", "estimate_run"]

PROBE_STEPS = 50
"""Steps per stage of `scoredec train`'s probe (the paper config's behaviour step takes about
0.5 s on a CPU, so the probe stays under a minute or so there)."""

PROBE_SHARE = 20
"""No probe for a run shorter than this many probes: timing it would cost a good part of it."""


def late_rates(run: Path) -> dict[str, float]:
    """Steps/s of each stage of a run over the second half of its metric records."""
    from scoredec.runs import read_metrics

    rates = {}
    for name in dict.fromkeys(r["stage"] for r in read_metrics(run)):
        recs = read_metrics(run, name)
        late = recs[len(recs) // 2:]
        if len(late) >= 2 and late[-1]["time"] > late[0]["time"]:
            rates[name] = (late[-1]["step"] - late[0]["step"]) / (late[-1]["time"] - late[0]["time"])
    return rates


def shrink_steps(config: dict, steps: int) -> dict:
    """A config dict with every `steps` field (at any depth) set to `steps`, metrics every
    tenth of it and no checkpoint before the end: the probe's config."""
    def walk(d: dict) -> dict:
        return {k: steps if k == "steps" else walk(v) if isinstance(v, dict) else v
                for k, v in d.items()}
    return {**walk(config), "log_every": max(steps // 10, 1), "checkpoint_every": 10 ** 9}


def stage_steps(method: str, config: dict, stages: tuple[str, ...] | None = None) -> dict[str, int]:
    """Steps of each stage a run of `method` trains, by stage name (the metrics' stage):
    the OMSD family's behavior/critic/policy sections, a baseline's one stage (its name)."""
    from scoredec.methods import family
    from scoredec.pipeline import stages_for

    if method in family():
        return {s: int(config[s]["steps"]) for s in (stages or stages_for(method))}
    return {method: int(config["steps"])}


_TAG = re.compile(r"^(.+)-(\d+)\.json$")


def remaining_steps(run: Path, steps: dict[str, int]) -> dict[str, int]:
    """Steps each stage still has to run in run directory `run`: none for a finished product,
    the rest after its latest checkpoint for a stopped one, all of them otherwise."""
    from scoredec.checkpoint import is_complete
    from scoredec.pipeline import product_stem

    out = {}
    for stage, total in steps.items():
        product = stage if stage in ("behavior", "critic") else "policy"
        if is_complete(product_stem(run, product)):
            out[stage] = 0
            continue
        done = [int(m.group(2)) for p in (Path(run) / "checkpoints").glob(f"{stage}-*.json")
                if (m := _TAG.match(p.name)) and m.group(1) == stage
                and is_complete(p.with_suffix(""))]
        out[stage] = total - max(done, default=0)
    return out


@contextmanager
def _quiet_package_logs():
    """The probe is not the user's run: its runs/pipeline info lines would read as if it were."""
    logger = logging.getLogger("scoredec")
    level = logger.level
    logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def probe_rates(method: str, data: Path, config: dict, steps: int = PROBE_STEPS) -> dict[str, float]:
    """Steps/s of each stage of `method` with `config` (a nested dict of its config fields) on
    `data`, from a run of `steps` steps per stage in a temporary directory."""
    from scoredec.methods import get_method

    with tempfile.TemporaryDirectory(prefix="scoredec-probe-") as tmp, _quiet_package_logs():
        run = Path(tmp) / "probe"
        get_method(method).train(data, run, seed=int(config.get("seed", 0)),
                                 overrides=shrink_steps(config, steps), progress=False)
        return late_rates(run)


def worth_probing(remaining: dict[str, int], steps: int = PROBE_STEPS) -> bool:
    """Whether the stages' remaining steps are many more than a probe of them would take."""
    todo = [n for n in remaining.values() if n > 0]
    return sum(todo) > PROBE_SHARE * steps * len(todo)


def estimate_run(method: str, data: Path, config: dict, remaining: dict[str, int],
                 steps: int = PROBE_STEPS) -> dict | None:
    """Seconds each stage's remaining steps will take here, or None when the run is too short
    to be worth a probe. {"seconds": {stage: s}, "steps_per_s": {stage: rate}, "total": s}."""
    if not worth_probing(remaining, steps):
        return None
    todo = {s: n for s, n in remaining.items() if n > 0}
    rates = probe_rates(method, data, config, steps)
    seconds = {s: n / rates[s] for s, n in todo.items() if rates.get(s)}
    return {"seconds": seconds, "steps_per_s": {s: rates[s] for s in seconds},
            "total": sum(seconds.values())}
