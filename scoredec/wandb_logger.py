"""Optional Weights & Biases logging of a training run (`scoredec train --wandb`).

Every scalar the run's MetricsLogger writes (metrics.jsonl, TensorBoard) also goes to a W&B run
(runs.metrics_sink), each stage on its own step axis (`<stage>/step`), so the training code does
not know W&B exists and nothing changes when it is off. Offline mode writes the W&B run under
<run>/wandb/ without any network (upload later with `wandb sync`). wandb is an optional extra
(`pip install 'scoredec[wandb]'`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from scoredec.runs import metrics_sink

__all__ = ["WANDB_MODES", "wandb_run"]

WANDB_MODES = ("auto", "online", "offline")
"""auto: W&B's own choice (WANDB_MODE, else online)."""

INSTALL_HINT = "pip install 'scoredec[wandb]' (or pip install wandb)"


@contextmanager
def wandb_run(run_dir: str | Path, config: dict, mode: str = "auto",
              project: str = "scoredec") -> Iterator[object]:
    """A W&B run named after run_dir, its files under <run_dir>/wandb/, receiving the run's
    metrics while inside.

    Raises RuntimeError (one line: how to install it) when wandb is not installed."""
    if mode not in WANDB_MODES:
        raise ValueError(f"--wandb must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
    try:
        import wandb
    except ImportError:
        raise RuntimeError(f"--wandb needs the wandb package, an optional extra: {INSTALL_HINT}") from None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, name=run_dir.name, dir=str(run_dir), config=config,
                     mode=None if mode == "auto" else mode)
    axes: set[str] = set()

    def sink(stage: str, step: int, scalars: dict[str, float]) -> None:
        # Each stage counts its own steps from 1; W&B's own step must only grow.
        if stage not in axes:
            run.define_metric(f"{stage}/step")
            run.define_metric(f"{stage}/*", step_metric=f"{stage}/step")
            axes.add(stage)
        run.log({f"{stage}/step": step, **{f"{stage}/{k}": v for k, v in scalars.items()}})

    failed = True
    try:
        with metrics_sink(sink):
            yield run
        failed = False
    finally:
        run.finish(exit_code=1 if failed else 0)
