"""Backend registry for the fused ops: each op registers its torch reference (the
specification, always available) and optional triton and cuda implementations.

Choice of backend for one call (DESIGN.md 2, "Backends"):
1. the explicit ``backend=`` argument, else
2. the environment variable SCOREDEC_BACKEND (``auto`` or empty means automatic), else
3. automatic: cuda > triton > torch for CUDA tensors; torch for CPU tensors.

A backend named by 1 or 2 that cannot run raises BackendUnavailableError with the reason (or
the TypeError/ValueError of an input it does not accept). Automatic choice falls back and logs
the backend it took, once per (op, backend), on the logger "scoredec.ops". Triton runs on CPU
tensors only under TRITON_INTERPRET=1 and only when requested explicitly.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

logger = logging.getLogger("scoredec.ops")

BACKENDS = ("torch", "triton", "cuda")
# Preference for CUDA tensors when nothing is requested.
AUTO_ORDER_CUDA = ("cuda", "triton", "torch")
ENV_BACKEND = "SCOREDEC_BACKEND"

Availability = tuple[bool, str]
# Availability of a backend for tensors on `device` (None: in general, for listings).
AvailabilityCheck = Callable[[torch.device | None], Availability]
# Input check on the op's key (its input dtypes): None if accepted, else the exception to raise.
InputCheck = Callable[..., Exception | None]


class BackendUnavailableError(RuntimeError):
    """An explicitly requested backend cannot run here; the message says why."""


@dataclass
class Backend:
    name: str
    fn: Callable[..., Any]
    available: AvailabilityCheck
    accepts: InputCheck | None = None


@dataclass
class Op:
    name: str
    backends: dict[str, Backend] = field(default_factory=dict)


_OPS: dict[str, Op] = {}
_LOGGED: set[tuple[str, str]] = set()


def _always(device: torch.device | None) -> Availability:
    return True, "ok"


def register_op(name: str, torch_impl: Callable[..., Any], accepts: InputCheck | None = None) -> Op:
    """Register an op with its torch reference implementation."""
    if name in _OPS:
        raise ValueError(f"op {name!r} is already registered")
    op = Op(name)
    op.backends["torch"] = Backend("torch", torch_impl, _always, accepts)
    _OPS[name] = op
    return op


def register_backend(op_name: str, backend: str, fn: Callable[..., Any], available: AvailabilityCheck,
                     accepts: InputCheck | None = None) -> None:
    """Register a triton or cuda implementation of `op_name` with its availability check."""
    if backend not in ("triton", "cuda"):
        raise ValueError(f"backend must be 'triton' or 'cuda', got {backend!r}")
    get_op(op_name).backends[backend] = Backend(backend, fn, available, accepts)


def get_op(name: str) -> Op:
    try:
        return _OPS[name]
    except KeyError:
        raise KeyError(f"unknown op {name!r}; registered: {sorted(_OPS)}") from None


def list_ops() -> list[str]:
    return sorted(_OPS)


def available_backends() -> dict[str, dict[str, Availability]]:
    """{op: {backend: (ok, reason)}} for this process (used by `scoredec info`)."""
    out: dict[str, dict[str, Availability]] = {}
    for name in list_ops():
        op = _OPS[name]
        out[name] = {}
        for b in BACKENDS:
            out[name][b] = op.backends[b].available(None) if b in op.backends else (False, "not implemented")
    return out


def requested_backend(backend: str | None) -> tuple[str | None, str]:
    """The backend named by the argument or SCOREDEC_BACKEND (None: automatic) and its source."""
    if backend is not None:
        source = "backend="
    else:
        backend = os.environ.get(ENV_BACKEND, "").strip() or None
        source = f"{ENV_BACKEND}"
    if backend is None or backend == "auto":
        return None, "auto"
    if backend not in BACKENDS:
        raise ValueError(f"{source} must be one of {BACKENDS} or 'auto', got {backend!r}")
    return backend, source


# Evaluated once at trace time under torch.compile (it reads the environment and calls into
# _C, which dynamo cannot trace); a compiled graph keeps the backend chosen when it was traced.
@torch.compiler.assume_constant_result
def select_name(op_name: str, device: torch.device, key: tuple = (), backend: str | None = None) -> str:
    """Name of the backend that runs a call on `device` whose inputs are described by `key`
    (the op's dtypes: what its backends' `accepts` checks read). See the module docstring."""
    op = get_op(op_name)
    name, source = requested_backend(backend)
    if name is not None:
        if name not in op.backends:
            raise BackendUnavailableError(f"{op_name}: backend {name!r} ({source}) is not implemented for this op")
        b = op.backends[name]
        ok, reason = b.available(device)
        if not ok:
            raise BackendUnavailableError(f"{op_name}: backend {name!r} ({source}) is unavailable: {reason}")
        if b.accepts is not None and (err := b.accepts(*key)) is not None:
            raise err
        return name

    if device.type != "cuda":
        return "torch"
    skipped = []
    for cand in AUTO_ORDER_CUDA:
        b = op.backends.get(cand)
        if b is None:
            skipped.append(f"{cand}: not implemented")
            continue
        ok, reason = b.available(device)
        if ok and b.accepts is not None and (err := b.accepts(*key)) is not None:
            ok, reason = False, str(err)
        if ok:
            if skipped and (op_name, cand) not in _LOGGED:
                _LOGGED.add((op_name, cand))
                logger.warning("%s: using backend %r (%s)", op_name, cand, "; ".join(skipped))
            return cand
        skipped.append(f"{cand}: {reason}")
    raise AssertionError("the torch backend always accepts validated inputs")


def select(op_name: str, device: torch.device, key: tuple = (), backend: str | None = None) -> Backend:
    """The backend that runs this call (see select_name)."""
    return get_op(op_name).backends[select_name(op_name, device, tuple(key), backend)]


def dispatch(op_name: str, device: torch.device, *args, backend: str | None = None, key: tuple = (), **kwargs):
    """Run `op_name` on the selected backend. key: the dtypes its backends' accepts() read."""
    return select(op_name, device, key, backend).fn(*args, **kwargs)


# ---------------------------------------------------------------------------------------------
# Shared availability checks for the two kernel backends.
# ---------------------------------------------------------------------------------------------

def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_available(device: torch.device | None) -> Availability:
    if importlib.util.find_spec("triton") is None:
        return False, "triton is not installed (pip install 'scoredec[triton]')"
    if device is None:
        if torch.cuda.is_available():
            return True, "ok"
        if triton_interpreting():
            return True, "ok (TRITON_INTERPRET=1: interpreter on CPU tensors, when requested explicitly)"
        return False, "no CUDA device (and TRITON_INTERPRET is not set)"
    if device.type == "cuda":
        if triton_interpreting():
            return False, "TRITON_INTERPRET=1 is set; unset it to run triton on CUDA tensors"
        return True, "ok"
    if device.type == "cpu":
        if not triton_interpreting():
            return False, ("inputs are on the CPU; triton needs CUDA tensors, or TRITON_INTERPRET=1 "
                           "in the environment before scoredec.kernels is imported")
        return True, "ok"
    return False, f"triton does not run on {device.type} tensors"


def cuda_build_info() -> dict | None:
    """scoredec._C.build_info(), or None if the extension cannot be imported."""
    try:
        from scoredec import _C
    except ImportError:
        return None
    return _C.build_info()


def triton_kernel_available(module: str, kernel: str) -> AvailabilityCheck:
    """Availability of the Triton kernel scoredec.kernels.<module>.<kernel>: triton_available,
    and on CPU tensors the kernel must have been decorated under the interpreter."""
    def check(device: torch.device | None) -> Availability:
        ok, reason = triton_available(device)
        if ok and device is not None and device.type == "cpu":
            # The interpreter is chosen when @triton.jit decorates: the kernels module must
            # have been imported with TRITON_INTERPRET=1 already set.
            from triton.runtime.interpreter import InterpretedFunction

            fn = getattr(importlib.import_module(f"scoredec.kernels.{module}"), kernel)
            if not isinstance(fn, InterpretedFunction):
                return False, ("scoredec.kernels was imported before TRITON_INTERPRET=1 was set; "
                               "set it in the environment before importing scoredec.kernels")
        return ok, reason
    return check


def cuda_available(device: torch.device | None) -> Availability:
    info = cuda_build_info()
    if info is None:
        return False, "scoredec._C is not built (pip install --no-build-isolation -e .)"
    if not info["has_cuda"]:
        return False, ("_C was built without CUDA (SCOREDEC_CUDA=OFF, or AUTO without nvcc); "
                       "rebuild with SCOREDEC_CUDA=ON")
    if not torch.cuda.is_available():
        return False, f"no CUDA device (torch {torch.__version__}: torch.cuda.is_available() is False)"
    if device is not None and device.type != "cuda":
        return False, f"inputs are on {device.type}; the cuda backend needs CUDA tensors"
    return True, f"ok (sm_{info['cuda_archs']}, CUDA {info['cuda_version']})"
