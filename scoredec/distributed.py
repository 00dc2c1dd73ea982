"""Training on several processes (`torchrun`): data parallel, equal to one process at the same batch.

Launched by torchrun (or `python -m torch.distributed.run`), every process ("rank") runs the
whole `scoredec train`. `launch` starts the process group (gloo on the CPU, nccl on GPUs, one
GPU per process: cuda:LOCAL_RANK) when torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) is
there; without it nothing here does anything and training runs the one-process code unchanged.

How a step is split (`run_step`): every rank draws the same global batch of B rows from the
same-seeded generator, and every random draw of the step (the noise of the losses, dropout
masks) for all B rows, so each generator, and the global RNG, moves exactly as in one process.
Rank r keeps rows [r B/N, (r + 1) B/N) of the batch and of every draw, computes the loss on
them, and before each optimizer step the gradients are averaged over the ranks
(`average_gradients`: one all-reduce of the flattened gradients, sum / N). Every loss here is a
mean over rows (sums over agents and heads of such means), so the average of N equal slices'
gradients is the gradient of the whole batch: the update is one process's at the same B, up to
floating-point rounding, and every rank applies the same bits. B % N == 0 is required.

This is DistributedDataParallel's algorithm (gradient averaging, identical replicas) without
its module wrapper: a step here calls its modules' own methods (losses, q_values, epsilon) with
several optimizers and backward passes per step (a critic's and then the actors', gradients
through frozen networks), which DDP's forward-hook bookkeeping does not fit; and one bucket per
optimizer step is enough for these network sizes.

Terms that are not per-row means are made exact across the ranks: batch statistics (the
baselines' StackedBatchNorm: `batch_moments`, an all-reduce that autograd differentiates
through) and batch means used as constants (MA-TD3+BC's 1 / mean |Q|: `rows_mean`). Only rank 0
writes (run directory, lock, checkpoints, metrics, products); the others read the checkpoints
and products it wrote, so the run directory must be on a filesystem every node sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
"""torchrun's environment of each process it starts."""
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}
TIMEOUT = datetime.timedelta(minutes=30)
"""How long a rank waits in a collective for the others (rank 0 writing a large checkpoint)."""


class PeerError(RuntimeError):
    """Another process of the training failed; this one stops with its message."""


@dataclass(frozen=True)
class Group:
    """This process's place in the training: rank of world, on device (cpu, or cuda:local_rank)."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def backend(self) -> str:
        return BACKENDS[self.device.type]

    def rows(self, batch: int) -> slice:
        """This rank's rows of a global batch of `batch` rows."""
        share = batch // self.world
        return slice(self.rank * share, (self.rank + 1) * share)


_GROUP: Group | None = None
"""The process group `launch` started (None: one process)."""
_STEP: Group | None = None
"""Set while run_step runs a stage's step: draws, batch statistics and gradients span the ranks
(a plain global, not a ContextVar: torch.compile traces a read of it, see scoredec.captured)."""


def launched() -> bool:
    """Whether this process was started by torchrun (its environment is set)."""
    return all(name in os.environ for name in LAUNCH_ENV)


def current() -> Group | None:
    return _GROUP


def is_writer() -> bool:
    """Whether this process writes the run's files: the only one, or rank 0."""
    return _GROUP is None or _GROUP.rank == 0


def world() -> int:
    return 1 if _GROUP is None else _GROUP.world


@contextlib.contextmanager
def launch(device: torch.device) -> Iterator[Group | None]:
    """Under torchrun: start the process group for training on `device` (cpu -> gloo; cuda ->
    nccl on cuda:LOCAL_RANK), yield this process's Group, and end the group on exit. Without
    torchrun's environment: yield None (one process; nothing changes)."""
    global _GROUP
    if not launched():
        yield None
        return
    import torch.distributed as dist

    if _GROUP is not None or dist.is_initialized():
        raise RuntimeError("a torch.distributed process group is already running in this process")
    if device.type not in BACKENDS:
        raise ValueError(f"training on several processes supports cpu and cuda, not {device}")
    rank, size, local = (int(os.environ[name]) for name in LAUNCH_ENV)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"process {rank} has LOCAL_RANK {local} but torch sees "
                               f"{torch.cuda.device_count()} GPU(s): start at most that many "
                               "processes per node (--nproc_per_node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    dist.init_process_group(BACKENDS[device.type], rank=rank, world_size=size, timeout=TIMEOUT)
    _GROUP = Group(rank, size, local, device)
    if rank != 0:   # one voice: the other ranks log warnings and errors only
        logging.getLogger("scoredec").setLevel(logging.WARNING)
    log.info("training on %d processes (%s), this is rank %d on %s", size, BACKENDS[device.type],
             rank, device)
    try:
        yield _GROUP
    finally:
        _GROUP = None
        dist.destroy_process_group()


def place(device: torch.device) -> torch.device:
    """The device this process trains on: `device`, or under torchrun its launch device (the
    config must ask for the kind the group was started for)."""
    if _GROUP is None:
        return device
    if device.type != _GROUP.device.type:
        raise ValueError(f"device {device.type}: the process group was started for "
                         f"{_GROUP.device.type} ({_GROUP.backend})")
    return _GROUP.device


def describe() -> dict | None:
    """What run.json records of the processes that train (None: one process)."""
    if _GROUP is None:
        return None
    return {"world_size": _GROUP.world, "backend": _GROUP.backend}


def check_divisible(batch_sizes: dict[str, int], processes: int) -> None:
    """Each rank takes an equal share of every batch: refuse a batch size that the process
    count does not divide (ValueError naming the config key)."""
    for key, size in batch_sizes.items():
        if size % processes:
            raise ValueError(f"{key} = {size} is not divisible by the {processes} training "
                             f"processes (each computes an equal share of a batch): choose a "
                             f"multiple of {processes}")


# --------------------------------------------------------------------------- collectives

def barrier() -> None:
    """Wait until every rank is here (no-op in one process)."""
    if _GROUP is not None:
        import torch.distributed as dist
        dist.barrier()


def _gather(value) -> list:
    import torch.distributed as dist
    out = [None] * _GROUP.world
    dist.all_gather_object(out, value)
    return out


@contextlib.contextmanager
def together(what: str) -> Iterator[None]:
    """Run a block on every rank and fail on every rank if it failed on one: a rank whose block
    raised re-raises its error, the others raise PeerError with the failing rank's message (so
    no rank waits forever in a later collective). No-op in one process."""
    if _GROUP is None:
        yield
        return
    error: BaseException | None = None
    try:
        yield
    except Exception as err:   # re-raised below, after every rank has heard of it
        error = err
    reports = _gather(None if error is None else f"{type(error).__name__}: {error}")
    if error is not None:
        raise error
    failed = [(rank, text) for rank, text in enumerate(reports) if text is not None]
    if failed:
        rank, text = failed[0]
        raise PeerError(f"process {rank} failed {what}: {text}")


def same_everywhere(value, what: str) -> None:
    """Refuse to go on when `value` differs between ranks (RuntimeError on every rank)."""
    if _GROUP is None:
        return
    values = _gather(value)
    differ = [rank for rank, v in enumerate(values) if v != values[0]]
    if differ:
        raise RuntimeError(f"{what} differs between the training processes: rank(s) "
                           f"{differ} have {values[differ[0]]!r}, rank 0 has {values[0]!r}")


def state_digest(modules: dict[str, nn.Module], generators: dict[str, torch.Generator]) -> str:
    """sha256 of the modules' state (parameters and buffers) and the generators' states."""
    h = hashlib.sha256()
    for name in sorted(modules):
        for key, tensor in sorted(modules[name].state_dict().items()):
            h.update(f"{name}.{key}".encode())
            h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    for name in sorted(generators):
        h.update(name.encode())
        h.update(generators[name].get_state().numpy().tobytes())
    h.update(torch.get_rng_state().numpy().tobytes())
    return h.hexdigest()


def check_stage(name: str, batch_size: int, start: int, modules: dict[str, nn.Module],
                generators: dict[str, torch.Generator]) -> None:
    """At the start (or resume) of a stage: every rank must be at the same step of the same
    stage with bit-identical weights and generators, and the batch must split evenly. The
    global CUDA RNG state (dropout) is made rank 0's: a checkpoint stores rank 0's GPU, which
    is another device than a resumed rank's. No-op in one process."""
    if _GROUP is None:
        return
    check_divisible({f"stage {name}'s batch size": batch_size}, _GROUP.world)
    same_everywhere((name, start), "the stage and step to start from (every process must see "
                                   "the run directory: a filesystem all nodes share)")
    if _GROUP.device.type == "cuda":
        import torch.distributed as dist
        state = torch.cuda.get_rng_state(_GROUP.device).to(_GROUP.device)
        dist.broadcast(state, src=0)
        torch.cuda.set_rng_state(state.cpu(), _GROUP.device)
    same_everywhere(state_digest(modules, generators), f"the state of stage {name} at step {start}")


def any_rank(flag: bool) -> bool:
    """Whether `flag` is set on any rank (a stop signal that reached some processes first), so
    that all stop after the same step. One process: flag."""
    if _GROUP is None:
        return flag
    import torch.distributed as dist
    value = torch.tensor([int(flag)], device=_GROUP.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_metrics(metrics: dict[str, Tensor | float]) -> dict[str, Tensor | float]:
    """Each metric averaged over the ranks (every metric is a mean over rows, or a sum of such
    means: the average of equal slices' values is the whole batch's). One process: as given."""
    if _GROUP is None or not metrics:
        return metrics
    import torch.distributed as dist
    values = torch.stack([torch.as_tensor(v).detach().to(_GROUP.device, torch.float64).reshape(())
                          for v in metrics.values()])
    dist.all_reduce(values)
    values /= _GROUP.world
    return dict(zip(metrics, values.cpu().unbind()))


# --------------------------------------------------------------------------- inside a step

def run_step(step: Callable, batch, generator: torch.Generator) -> dict:
    """step(batch, generator) (a Stage's step) on this rank's rows of the global `batch` (a
    dataclass of tensors with rows first), with the draws, batch statistics and gradients of
    the step spanning the ranks. One process: step(batch, generator), nothing else."""
    if _GROUP is None:
        return step(batch, generator)
    rows = _GROUP.rows(batch.obs.shape[0])
    mine = dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[rows]
                                         for f in dataclasses.fields(batch)})
    global _STEP
    _STEP = _GROUP
    try:
        return step(mine, generator)
    finally:
        _STEP = None


def draw_rows(draw: Callable[..., Tensor], shape: tuple[int, ...], row_dim: int, **opts) -> Tensor:
    """draw(shape, **opts) (torch.rand, torch.randn) of a step's rows. Inside a step on several
    ranks, shape[row_dim] is this rank's share: the whole batch's draw is made (the generator
    moves as in one process) and this rank's rows of it are returned, so a row gets the same
    noise whichever rank computes it."""
    group = _STEP
    if group is None:
        return draw(shape, **opts)
    share = shape[row_dim]
    full = list(shape)
    full[row_dim] = share * group.world
    return draw(full, **opts).narrow(row_dim, group.rank * share, share).contiguous()


def dropout_rows(dropout: nn.Dropout, x: Tensor, row_dim: int = 1) -> Tensor:
    """dropout(x) with x's rows along row_dim. Inside a step on several ranks the mask of the
    whole batch is drawn from the global RNG (as one process's dropout draws it: every rank's
    RNG moves the same) and this rank's rows of it applied; on the CPU the numbers are exactly
    one process's (torch's dropout is x * (mask * 1 / (1 - p)) with mask ~ Bernoulli(1 - p)
    drawn over x's shape); on CUDA the mask comes from another kernel than the fused dropout's:
    the same distribution, other draws."""
    group = _STEP
    if group is None or not dropout.training or dropout.p == 0:
        return dropout(x)
    full = list(x.shape)
    full[row_dim] *= group.world
    share = x.shape[row_dim]
    keep = x.new_empty(full).bernoulli_(1.0 - dropout.p).narrow(row_dim, group.rank * share, share)
    return x * (keep * (1.0 / (1.0 - dropout.p)))


def batch_moments(x: Tensor, dim: int = 1) -> tuple[Tensor, Tensor, int]:
    """(mean, biased variance, rows) of x over dim (keepdim): a batch norm's statistics. Inside
    a step on several ranks they are the whole batch's, through all-reduces that autograd
    differentiates (the gradient of every rank's loss reaches every rank's rows, as the one
    process's gradient reaches every row)."""
    group = _STEP
    if group is None:
        return x.mean(dim=dim, keepdim=True), x.var(dim=dim, unbiased=False, keepdim=True), x.shape[dim]
    rows = x.shape[dim] * group.world
    mean = _SumOverRanks.apply(x.sum(dim=dim, keepdim=True)) / rows
    var = _SumOverRanks.apply(((x - mean) ** 2).sum(dim=dim, keepdim=True)) / rows
    return mean, var, rows


class _SumOverRanks(torch.autograd.Function):
    """S = sum over ranks of x_r, differentiable. Each rank's loss L_r depends on S, so the
    gradient of the total sum_r L_r reaching x_r is dS/dx_r = 1 times sum_r dL_r/dS: backward
    sums the incoming gradients over the ranks too."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        import torch.distributed as dist
        total = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        import torch.distributed as dist
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


def rows_mean(x: Tensor, dim: int) -> Tensor:
    """x.mean(dim) over a step's rows, without gradient; inside a step on several ranks the
    whole batch's mean (a batch statistic used as a constant, e.g. TD3+BC's 1 / mean |Q|)."""
    group = _STEP
    x = x.detach()
    if group is None:
        return x.mean(dim=dim)
    import torch.distributed as dist

    total = x.sum(dim=dim)
    dist.all_reduce(total)
    return total / (x.shape[dim] * group.world)


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """Inside a step on several ranks: replace the gradients of the optimizer's parameters by
    their average over the ranks (one all-reduce of them flattened, sum / N), as
    DistributedDataParallel does; then every rank takes the same optimizer step. Otherwise
    nothing. Call between backward() and any clipping or optimizer.step()."""
    group = _STEP
    if group is None:
        return
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= group.world
    for grad, mean in zip(grads, _unflatten_dense_tensors(flat, grads)):
        grad.copy_(mean)
