"""The training loop shared by every stage: batches, progress, metrics, checkpoints, resume.

A Stage owns its modules, optimizers and schedulers and does one optimizer step per batch.
`run_stage` drives it from a step counter, logs every `log_every` steps (only then are metrics
copied to the host), checkpoints every `checkpoint_every` steps into a RunDir, and on resume
restores the latest complete checkpoint (weights, optimizer, scheduler, batch generator and
global RNG) so that a stopped and resumed run ends with exactly the weights of an unbroken one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from scoredec import distributed
from scoredec.checkpoint import load_checkpoint, save_checkpoint
from scoredec.data.tensors import Batch, OfflineData
from scoredec.interrupt import TrainingInterrupted, deferred_stop
from scoredec.progress import StageProgress

log = logging.getLogger(__name__)


@dataclass
class StageResult:
    metrics: dict[str, float]   # the last logged metrics
    step: int                   # the step reached
    steps_run: int              # steps taken in this call
    finished: bool              # step == stage.steps


class Stage:
    """One training stage. Subclasses set name, modules, optimizers, schedulers and step()."""

    name: str = "stage"
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler]
    batch_size: int
    steps: int

    def step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called by run_stage after every step (eager or captured): e.g. a weight average."""

    def finish(self) -> None:
        """Called by run_stage when the stage reaches its last step, after the last checkpoint:
        e.g. copy a weight average into the trained module. Must be idempotent."""

    # Capture protocol (scoredec/captured.py). A stage whose step() is exactly
    #   loss, metrics = self.loss(batch, self.draw_noise(batch, generator))
    #   optimizer_step(<its one optimizer>, loss, <its scheduler>)
    # implements both; CapturedStep then compiles or graph-captures loss + backward + update
    # while drawing the same noise from the same generator outside the captured region.
    def draw_noise(self, batch: Batch, generator: torch.Generator) -> tuple[Tensor, ...]:
        """The step's random inputs, drawn from generator exactly as step() draws them."""
        raise NotImplementedError(f"stage {self.name!r} does not support capture")

    def loss(self, batch: Batch, noise: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        """The step's loss and detached metrics, given its random inputs; no side effects."""
        raise NotImplementedError(f"stage {self.name!r} does not support capture")


class EMA(nn.Module):
    """Exponential moving average of a module's parameters (its buffers are copied as they are).

    decay_t = min(decay, (1 + t) / (10 + t)) after t updates, the usual warm-up, so a short run
    is not an average dominated by the initialization. A module, so checkpoints carry it."""

    def __init__(self, module: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = nn.ParameterList(nn.Parameter(p.detach().clone(), requires_grad=False)
                                       for p in module.parameters())
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self._host_updates: int | None = None   # mirror of `updates`: no device sync per step

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._host_updates = None

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        if self._host_updates is None:
            self._host_updates = int(self.updates)
        n = self._host_updates
        decay = min(self.decay, (1.0 + n) / (10.0 + n))
        torch._foreach_lerp_(list(self.shadow), [p.detach() for p in module.parameters()], 1.0 - decay)
        self.updates += 1
        self._host_updates = n + 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        for avg, p in zip(self.shadow, module.parameters()):
            p.copy_(avg)


def cosine_schedule(optimizer: torch.optim.Optimizer, steps: int, lr_end: float):
    """Cosine decay from the optimizer's lr to lr_end over `steps` optimizer steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1),
                                                      eta_min=lr_end)


def optimizer_step(optimizer: torch.optim.Optimizer, loss: Tensor,
                   scheduler: torch.optim.lr_scheduler.LRScheduler | None = None) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(optimizer)   # several processes: the whole batch's gradient
    optimizer.step()
    if scheduler is not None:
        scheduler.step()


def checkpoint_tag(stage: str, step: int) -> str:
    return f"{stage}-{step:09d}"


EVAL_STAGE = "eval"
"""metrics.jsonl's stage name of the evaluations during training (`evaluate` of run_stage)."""


def run_stage(stage: Stage, data: OfflineData, generator: torch.Generator, *, run=None,
              logger=None, log_every: int = 1000, checkpoint_every: int = 10_000,
              budget: int | None = None, progress: bool = True,
              desc: str | None = None, evaluate: Callable[[int], dict[str, float]] | None = None,
              eval_every: int = 0) -> StageResult:
    """Train `stage` up to stage.steps steps, at most `budget` of them in this call (a
    time-limited sitting checkpoints where it stops and resumes later).

    run: a scoredec.runs.RunDir for checkpoints and resume (None: in memory only);
    logger: a scoredec.runs.MetricsLogger (None: no metrics files);
    evaluate(step) -> scalars, every `eval_every` steps and at the last one, logged as stage
    EVAL_STAGE (it must draw from no generator of the training: scoredec.periodic_eval).

    With a run directory, SIGINT/SIGTERM stop the loop after the current step with a
    checkpoint there and raise scoredec.interrupt.TrainingInterrupted (resume continues it
    exactly, as after a budget).

    Under torchrun (scoredec.distributed) every process runs this loop in step: each computes
    its share of every batch, rank 0 alone writes checkpoints (the others wait for it) and
    metrics, which are averages over the processes; a signal to any process stops all of them
    after the same step."""
    if evaluate is not None and eval_every < 1:
        raise ValueError(f"eval_every must be >= 1 with an evaluate function, got {eval_every}")
    start = 0
    if run is not None:
        stem = run.latest(f"{stage.name}-")
        if stem is not None:
            meta = load_checkpoint(stem, modules=stage.modules, optimizers=stage.optimizers,
                                   schedulers=stage.schedulers, generators={"batches": generator})
            start = int(meta["step"])
            log.info("%s: resumed from %s at step %d", stage.name, stem, start)
            if logger is not None:
                logger.truncate_after(stage.name, start)
                if evaluate is not None:
                    logger.truncate_after(EVAL_STAGE, start)
    distributed.check_stage(stage.name, stage.batch_size, start, stage.modules,
                            {"batches": generator})
    end = stage.steps if budget is None else min(start + budget, stage.steps)
    last: dict[str, float] = {}

    def checkpoint(step: int) -> None:
        if distributed.is_writer():
            tag = checkpoint_tag(stage.name, step)
            save_checkpoint(run.checkpoint_stem(tag), modules=stage.modules,
                            optimizers=stage.optimizers, schedulers=stage.schedulers,
                            generators={"batches": generator},
                            meta={"step": step, "stage": stage.name})
            run.record_latest(tag)
            run.prune(f"{stage.name}-", keep=2)
        distributed.barrier()   # the others go on once the checkpoint is complete

    bar = StageProgress(desc or stage.name, stage.steps, start, enabled=progress)
    for module in stage.modules.values():
        module.train()
    try:
        with deferred_stop(enabled=run is not None) as stop:
            for step in range(start + 1, end + 1):
                metrics = distributed.run_step(stage.step, data.sample(stage.batch_size, generator),
                                               generator)
                stage.after_step()
                if step % log_every == 0 or step == end:
                    last = {k: float(v) for k, v in distributed.mean_metrics(metrics).items()}
                    bad = [k for k, v in last.items() if not math.isfinite(v)]
                    if bad:
                        raise FloatingPointError(f"{stage.name}: non-finite {bad} at step {step}")
                    if logger is not None:
                        logger.log(step, stage.name, **last)
                    bar.set_metrics(last)
                if evaluate is not None and (step % eval_every == 0 or step == stage.steps):
                    scores = evaluate(step)
                    if logger is not None:
                        logger.log(step, EVAL_STAGE, **scores)
                    bar.set_metrics({**last, **scores})
                saved = run is not None and (step % checkpoint_every == 0 or step == end)
                if saved:
                    checkpoint(step)
                bar.update(step)
                # At the last step too: resume then only finishes the stage. Several processes
                # stop after the same step, whichever got the signal.
                if distributed.any_rank(stop.requested):
                    if not saved:
                        checkpoint(step)
                    raise TrainingInterrupted(stage.name, step,
                                              stop.signal_name or "another process's signal")
    finally:
        bar.close()
    if end == stage.steps:
        stage.finish()
    return StageResult(last, end, end - start, end == stage.steps)
