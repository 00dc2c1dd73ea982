"""Captured training steps: a whole stage step (loss, backward, optimizer update) compiled by
torch.compile, or recorded once as a CUDA graph and replayed (issue 5, part 3).

A stage-1 step is all n score networks' denoising loss, backward and one AdamW update; a stage-2
step is the actors, the sequential score evaluation through the fused op, the critic's action
gradient, the losses and one Adam update. Eagerly each is hundreds of small launches; captured it
is a handful of compiled kernels (compile) or one graph launch (graph).

CapturedStep wraps a Stage that implements the capture protocol of scoredec.training.Stage
(draw_noise + loss, one optimizer, at most one scheduler) and is itself a Stage with the same
modules, optimizer and scheduler objects, so run_stage, checkpoints and resume work unchanged and
checkpoints have the same format in every mode.

Numerics. The step's random inputs are drawn outside the captured region by stage.draw_noise,
from the same generator in the same order as the eager step: a captured run consumes exactly the
eager run's draws, and differs from it only by floating-point reassociation (tests/test_captured.py
compares losses and final weights). Dropout (resnet score nets) draws from the global RNG inside
the captured region: same distribution, different draws; compare with dropout = 0.

Learning rate. The scheduler keeps a float lr in the optimizer's param group (checkpoints look the
same in every mode). The captured update reads instead a 0-d tensor on the parameters' device,
filled from the param group before each step, so a compiled optimizer does not recompile when the
cosine schedule moves the lr, and a graph replay reads the current value.

Modes:
- "none": the stage's own eager step.
- "compile": torch.compile(stage.loss) with fullgraph=True (AOTAutograd compiles the backward as
  well; backward() runs it), then torch.compile(optimizer.step) with the tensor lr. `mode` is
  torch.compile's mode: "reduce-overhead" adds CUDA graphs through cudagraph trees.
- "graph" (CUDA only): static buffers for the batch and the noise; a few warm-up steps on a side
  stream, then loss, backward and optimizer.step (capturable=True) recorded in one
  torch.cuda.CUDAGraph. The weights and optimizer state the warm-up changed are put back before
  the first replay, so the first captured step is the eager run's first step. Each step copies the
  batch and the noise into the buffers, fills the lr, replays, and steps the scheduler. Capture
  forbids host synchronization and host-to-device copies inside the step (a CPU tensor or a Python
  list used as an index on CUDA data is such a copy): the loss must keep its constants on the device.
"""

from __future__ import annotations

import contextlib
import logging
import types

import torch
from torch import Tensor

from scoredec.data.tensors import Batch
from scoredec.training import Stage

log = logging.getLogger(__name__)

CAPTURE_MODES = ("none", "compile", "graph")
BATCH_FIELDS = ("obs", "actions", "rewards", "next_obs", "terminals")
# Side-stream steps before recording a graph: lazy initializations (cuBLAS handles, Triton
# autotuning and JIT, the optimizer's state) must not happen during capture.
GRAPH_WARMUP = 3


def _own_code(fn):
    """fn with a private copy of its code object. Dynamo caches compiled code per code object, at
    most recompile_limit (8) entries; every CapturedStep compiles for its own shapes and modules,
    so with one shared code object the ninth step object in a process (a benchmark, a sweep)
    would fail under fullgraph=True. A private copy gives each its own cache, freed with it."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__,
                              fn.__closure__)


def _implements_protocol(stage: Stage) -> bool:
    cls = type(stage)
    return cls.draw_noise is not Stage.draw_noise and cls.loss is not Stage.loss


class CapturedStep(Stage):
    """A Stage whose step() is the wrapped stage's step, compiled or graph-captured.

    stage: a Stage implementing draw_noise and loss, with one optimizer (Adam/AdamW family) and
    at most one LR scheduler. capture: "none" | "compile" | "graph". mode: torch.compile's mode
    (None = default, "reduce-overhead", "max-autotune"); compile only. fullgraph: compile the loss
    as one graph (an unsupported construct raises instead of splitting the graph)."""

    def __init__(self, stage: Stage, capture: str = "compile", *, mode: str | None = None,
                 fullgraph: bool = True, warmup: int = GRAPH_WARMUP):
        if capture not in CAPTURE_MODES:
            raise ValueError(f"capture must be one of {CAPTURE_MODES}, got {capture!r}")
        if capture != "none":
            if not _implements_protocol(stage):
                raise ValueError(f"stage {stage.name!r} ({type(stage).__name__}) does not implement "
                                 "draw_noise and loss, so it cannot be captured; use capture='none'")
            if len(stage.optimizers) != 1 or len(stage.schedulers) > 1:
                raise ValueError(f"stage {stage.name!r}: capture needs one optimizer and at most one "
                                 f"scheduler, got {len(stage.optimizers)} and {len(stage.schedulers)}")
        if mode is not None and capture != "compile":
            raise ValueError(f"mode={mode!r} is a torch.compile mode; it needs capture='compile'")
        self.stage, self.capture, self.mode, self.fullgraph, self.warmup = (
            stage, capture, mode, fullgraph, warmup)
        self.name, self.batch_size, self.steps = stage.name, stage.batch_size, stage.steps
        self.modules, self.optimizers, self.schedulers = stage.modules, stage.optimizers, stage.schedulers
        if capture == "none":
            return
        (self.optimizer,) = stage.optimizers.values()
        self.scheduler = next(iter(stage.schedulers.values()), None)
        params = self._params()
        if not params:
            raise ValueError(f"stage {stage.name!r}: the optimizer has no parameters")
        self.device = params[0].device
        if capture == "graph" and self.device.type != "cuda":
            raise RuntimeError(f"capture='graph' records a CUDA graph, but stage {stage.name!r} "
                               f"trains on {self.device}; use capture='compile' or 'none'")
        lr_dtype = torch.float32 if params[0].dtype in (torch.float16, torch.bfloat16) else params[0].dtype
        self._lrs = [torch.tensor(float(g["lr"]), dtype=lr_dtype, device=self.device)
                     for g in self.optimizer.param_groups]
        self._loss_fn = self._opt_step = None
        self._graph: torch.cuda.CUDAGraph | None = None

    # ------------------------------------------------------------------------------- common

    def _params(self) -> list[Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _steps_to_device(self) -> None:
        """A capturable update keeps the optimizer's step counters on the parameters' device."""
        for state in self.optimizer.state.values():
            if isinstance(state.get("step"), Tensor) and state["step"].device != self.device:
                state["step"] = state["step"].to(self.device)

    def _fill_lr(self) -> None:
        for lr, g in zip(self._lrs, self.optimizer.param_groups):
            lr.fill_(float(g["lr"]))

    @contextlib.contextmanager
    def _tensor_hyperparameters(self, capturable: bool):
        """The param groups read the device lr tensors (and capturable) inside the block only."""
        groups = self.optimizer.param_groups
        saved = [(g["lr"], g.get("capturable", False)) for g in groups]
        for g, lr in zip(groups, self._lrs):
            g["lr"] = lr
            if capturable:
                g["capturable"] = True
        try:
            yield
        finally:
            for g, (lr, cap) in zip(groups, saved):
                g["lr"] = lr
                if "capturable" in g:
                    g["capturable"] = cap

    def _forward(self, *tensors: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """stage.loss on flat tensors (the batch fields, then the noise): what gets compiled."""
        batch = Batch(*tensors[:len(BATCH_FIELDS)])
        return self.stage.loss(batch, tuple(tensors[len(BATCH_FIELDS):]))

    def after_step(self) -> None:
        self.stage.after_step()

    def finish(self) -> None:
        self.stage.finish()

    def step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        if self.capture == "none":
            return self.stage.step(batch, generator)
        noise = tuple(self.stage.draw_noise(batch, generator))
        inputs = tuple(getattr(batch, f) for f in BATCH_FIELDS) + noise
        if self.capture == "compile":
            return self._step_compiled(inputs)
        return self._step_graph(inputs)

    # ------------------------------------------------------------------------------- compile

    def _step_compiled(self, inputs: tuple[Tensor, ...]) -> dict[str, Tensor]:
        if self._loss_fn is None:
            forward, optimizer = self._forward, self.optimizer

            def loss_fn(*tensors):
                return forward(*tensors)

            def opt_step():
                optimizer.step()

            self._loss_fn = torch.compile(_own_code(loss_fn), fullgraph=self.fullgraph, mode=self.mode,
                                          dynamic=False)
            self._opt_step = torch.compile(_own_code(opt_step), mode=self.mode, dynamic=False)
        loss, metrics = self._loss_fn(*inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._fill_lr()
        # Foreach Adam on CUDA takes a tensor lr only on its capturable path (torch.compile picks
        # that path itself for a fresh optimizer; a resumed one needs it said).
        capturable = self.device.type == "cuda"
        if capturable:
            self._steps_to_device()
        with self._tensor_hyperparameters(capturable=capturable):
            self._opt_step()
        if self.scheduler is not None:
            self.scheduler.step()
        out = {"loss": loss.detach(), **metrics}
        if self.mode == "reduce-overhead":  # cudagraph-tree outputs are overwritten by the next step
            out = {k: v.clone() for k, v in out.items()}
        return out

    # ------------------------------------------------------------------------------- graph

    def _body(self) -> Tensor:
        """One eager step on the static buffers; returns the metrics stacked [1 + k]."""
        loss, metrics = self._forward(*self._static)
        loss.backward()
        self.optimizer.step()
        self._metric_keys = ("loss", *metrics)
        return torch.stack([loss.detach(), *metrics.values()])

    def _capture(self, inputs: tuple[Tensor, ...]) -> None:
        opt, params = self.optimizer, self._params()
        self._static = tuple(x.detach().clone() for x in inputs)
        # The warm-up steps are real updates: remember the state to put it back afterwards.
        saved_params = [p.detach().clone() for p in params]
        saved_state = {p: {k: v.detach().clone() if isinstance(v, Tensor) else v
                           for k, v in opt.state[p].items()} for p in params if p in opt.state}
        self._steps_to_device()
        self._fill_lr()
        with self._tensor_hyperparameters(capturable=True):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(self.warmup):
                    opt.zero_grad(set_to_none=True)
                    self._body()
            torch.cuda.current_stream(self.device).wait_stream(side)
            opt.zero_grad(set_to_none=True)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._static_metrics = self._body()
        with torch.no_grad():
            for p, v in zip(params, saved_params):
                p.copy_(v)
            for p in params:
                state, before = opt.state[p], saved_state.get(p)
                for k, v in state.items():
                    if not isinstance(v, Tensor):
                        continue
                    if before is None:
                        v.zero_()  # a fresh Adam state: zero moments, step 0
                    else:
                        v.copy_(before[k])
        self._graph = graph
        log.info("%s: recorded the training step as one CUDA graph", self.name)

    def _step_graph(self, inputs: tuple[Tensor, ...]) -> dict[str, Tensor]:
        if self._graph is None:
            self._capture(inputs)
        else:
            if len(inputs) != len(self._static):
                raise ValueError(f"{self.name}: {len(inputs)} step inputs, the graph has {len(self._static)}")
            for buf, x in zip(self._static, inputs):
                if buf.shape != x.shape:
                    raise ValueError(f"{self.name}: a captured step needs fixed shapes; got "
                                     f"{tuple(x.shape)}, recorded {tuple(buf.shape)}")
                buf.copy_(x)
        self._fill_lr()
        self._graph.replay()
        if self.scheduler is not None:
            self.scheduler.step()
        values = self._static_metrics.clone()
        return dict(zip(self._metric_keys, values.unbind()))
