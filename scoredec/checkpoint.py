"""Checkpoints as safetensors + JSON: no pickle, atomic, and exact enough to resume bitwise.

A checkpoint ``<stem>`` is two files:

- ``<stem>.safetensors``: every tensor — module state_dicts (parameters and buffers),
  optimizer state tensors, ``torch.Generator`` states and the global torch CPU/CUDA RNG states.
- ``<stem>.json``: everything else — user meta, optimizer param_groups and non-tensor state,
  scheduler state_dicts, Python ``random`` and numpy global RNG states, the format version,
  the index of tensors and the SHA-256 of the tensor file.

The JSON is written last and is the commit marker: a stem without its JSON (a crash between
the two writes) is incomplete and :func:`load_checkpoint` refuses it. The hash ties the pair
together, so a JSON from one save next to tensors from another is refused too.

Non-tensor values are stored in JSON with small tags where JSON alone would lose information:
``{"__tensor__": name}`` (a tensor in the safetensors file), ``{"__tuple__": [...]}``,
``{"__float__": "inf"}`` (non-finite floats, e.g. ReduceLROnPlateau's ``best``) and
``{"__items__": [[key, value], ...]}`` (dicts with non-string keys, e.g. optimizer state
indexed by parameter number).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from scoredec.io import atomic_write_bytes, atomic_write_json, to_jsonable

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "checkpoint_paths", "is_complete"]

log = logging.getLogger(__name__)

FORMAT = "scoredec-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, corrupt, or does not match what it is loaded into."""


def checkpoint_paths(stem: str | os.PathLike) -> tuple[Path, Path]:
    """``(<stem>.safetensors, <stem>.json)``."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def is_complete(stem: str | os.PathLike) -> bool:
    """True if both files exist (the JSON is written last, so its presence marks a commit)."""
    st_path, json_path = checkpoint_paths(stem)
    return json_path.is_file() and st_path.is_file()


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    """Splits a nested state into JSON (with tags) and a flat dict of named tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}

    def add_tensor(self, name: str, t: torch.Tensor) -> dict:
        if name in self.tensors:
            raise CheckpointError(f"two tensors map to the same checkpoint entry {name!r}")
        # safetensors refuses non-contiguous and memory-sharing tensors (tied weights, views);
        # a private contiguous CPU copy satisfies both.
        self.tensors[name] = t.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": name}

    def encode(self, obj: Any, name: str) -> Any:
        if isinstance(obj, torch.Tensor):
            return self.add_tensor(name, obj)
        if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"__float__": repr(obj)}
        if isinstance(obj, np.generic):
            return self.encode(obj.item(), name)
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self.add_tensor(name, torch.from_numpy(obj.copy()))["__tensor__"]}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{name}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{name}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in obj):
                return {k: self.encode(v, f"{name}/{k}") for k, v in obj.items()}
            return {
                "__items__": [
                    [self.encode(k, f"{name}/key{i}"), self.encode(v, f"{name}/{k}")]
                    for i, (k, v) in enumerate(obj.items())
                ]
            }
        raise CheckpointError(
            f"cannot store {type(obj).__name__} at {name!r} without pickle; "
            "keep optimizer/scheduler state to tensors, numbers, strings and containers"
        )


def _decode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, where) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return _get_tensor(tensors, obj["__tensor__"], where)
    if "__ndarray__" in obj:
        return _get_tensor(tensors, obj["__ndarray__"], where).numpy()
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors, where) for v in obj["__tuple__"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__items__" in obj:
        return {_decode(k, tensors, where): _decode(v, tensors, where) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors, where) for k, v in obj.items()}


def _get_tensor(tensors: dict[str, torch.Tensor], name: str, where: str) -> torch.Tensor:
    try:
        return tensors[name]
    except KeyError:
        raise CheckpointError(
            f"{where}: tensor {name!r} is listed in the JSON but not in the tensor file"
        ) from None


# ----------------------------------------------------------------------------- RNG states


def _global_rng_state(enc: _Encoder) -> dict:
    np_state = np.random.get_state(legacy=False)
    state = {
        "torch_cpu": enc.add_tensor("rng/torch_cpu", torch.get_rng_state()),
        "cuda": [],
        # random.getstate() is (version, tuple of 625 ints, gauss_next): plain JSON with tags.
        "python": enc.encode(random.getstate(), "rng/python"),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": [int(x) for x in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = [
            enc.add_tensor(f"rng/cuda/{i}", s) for i, s in enumerate(torch.cuda.get_rng_state_all())
        ]
    return state


def _set_global_rng_state(state: dict, tensors: dict[str, torch.Tensor], where: str) -> None:
    torch.set_rng_state(_decode(state["torch_cpu"], tensors, where))
    cuda_states = [_decode(s, tensors, where) for s in state["cuda"]]
    if torch.cuda.is_available() and cuda_states:
        if len(cuda_states) != torch.cuda.device_count():
            log.warning(
                "%s: saved %d CUDA RNG states but %d devices are visible; restoring the first %d",
                where,
                len(cuda_states),
                torch.cuda.device_count(),
                min(len(cuda_states), torch.cuda.device_count()),
            )
        for i, s in enumerate(cuda_states[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, device=i)
    elif cuda_states or torch.cuda.is_available():
        log.warning(
            "%s: CUDA RNG state not restored (saved on %d CUDA devices, %d visible now)",
            where,
            len(cuda_states),
            torch.cuda.device_count() if torch.cuda.is_available() else 0,
        )
    random.setstate(_decode(state["python"], tensors, where))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": n["bit_generator"],
            "state": {"key": np.asarray(n["key"], dtype=np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )


# ----------------------------------------------------------------------------- save


def save_checkpoint(
    stem: str | os.PathLike,
    *,
    modules: dict[str, nn.Module] | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    global_rng: bool = True,
    meta: dict | None = None,
) -> None:
    """Write ``<stem>.safetensors`` then ``<stem>.json``, each atomically.

    ``meta`` must be JSON-able (numpy scalars are converted; NaN raises ValueError). Names
    are the keys the same objects must be passed under to :func:`load_checkpoint`.
    """
    st_path, json_path = checkpoint_paths(stem)
    enc = _Encoder()
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "torch_version": torch.__version__,
        "meta": to_jsonable(meta or {}, where="meta"),
        "modules": {},
        "optimizers": {},
        "schedulers": {},
        "generators": {},
        "rng": None,
    }
    for name, module in (modules or {}).items():
        sd = module.state_dict()
        entries = {}
        for key, value in sd.items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"module {name!r}: state entry {key!r} is not a tensor")
            entries[key] = enc.add_tensor(f"module/{name}/{key}", value)
        # _metadata carries per-submodule versions that _load_from_state_dict may consult.
        version_info = {k: dict(v) for k, v in getattr(sd, "_metadata", {}).items()}
        doc["modules"][name] = {
            "state": entries,
            "versions": enc.encode(version_info, f"module/{name}/_metadata"),
        }
    for name, opt in (optimizers or {}).items():
        doc["optimizers"][name] = enc.encode(opt.state_dict(), f"optim/{name}")
    for name, sched in (schedulers or {}).items():
        doc["schedulers"][name] = enc.encode(sched.state_dict(), f"sched/{name}")
    for name, gen in (generators or {}).items():
        doc["generators"][name] = {
            "device": str(gen.device),
            "state": enc.add_tensor(f"generator/{name}", gen.get_state()),
        }
    if global_rng:
        doc["rng"] = _global_rng_state(enc)

    # One metadata entry: safetensors keeps metadata in a Rust HashMap whose iteration order
    # changes from process to process, so two entries would make identical checkpoints differ
    # in bytes (and in the sha256 below). The JSON holds the format and version for reading.
    data = safetensors.torch.save(enc.tensors, metadata={"format": f"{FORMAT}/{VERSION}"})
    doc["sha256"] = hashlib.sha256(data).hexdigest()
    doc["tensors"] = {
        k: {"dtype": str(t.dtype).removeprefix("torch."), "shape": list(t.shape)}
        for k, t in enc.tensors.items()
    }
    # Remove an older commit marker first: if we crash after the new tensors land, the stem
    # must read as incomplete rather than as the old JSON paired with new tensors.
    json_path.unlink(missing_ok=True)
    atomic_write_bytes(st_path, data)
    atomic_write_json(json_path, doc)


# ----------------------------------------------------------------------------- load


def _read(stem: Path) -> tuple[dict, dict[str, torch.Tensor], str]:
    st_path, json_path = checkpoint_paths(stem)
    if not json_path.is_file():
        if st_path.is_file():
            raise CheckpointError(
                f"{json_path}: missing; the checkpoint {stem} is incomplete (interrupted save)"
            )
        raise CheckpointError(f"{json_path}: no checkpoint at {stem}")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{json_path}: unreadable checkpoint index: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{json_path}: not a scoredec checkpoint")
    if doc.get("version") != VERSION:
        raise CheckpointError(
            f"{json_path}: checkpoint format version {doc.get('version')!r}, "
            f"this scoredec reads {VERSION}"
        )
    try:
        data = st_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{st_path}: cannot read tensor file: {e.strerror or e}") from e
    if hashlib.sha256(data).hexdigest() != doc.get("sha256"):
        raise CheckpointError(
            f"{st_path}: contents do not match {json_path.name} "
            "(corrupt, truncated or from another save)"
        )
    try:
        tensors = safetensors.torch.load(data)
    except safetensors.SafetensorError as e:
        raise CheckpointError(f"{st_path}: corrupt tensor file: {e}") from e
    index = doc.get("tensors", {})
    if set(index) != set(tensors):
        raise CheckpointError(f"{st_path}: tensor names do not match the index in {json_path.name}")
    return doc, tensors, str(stem)


def _load_module(
    name: str, module: nn.Module, saved: dict, tensors: dict, where: str, device: Any
) -> None:
    own = module.state_dict()
    stored = saved["state"]
    missing = [k for k in own if k not in stored]
    unexpected = [k for k in stored if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{where}: module {name!r}: missing entries {missing[:5]}, "
            f"unexpected entries {unexpected[:5]}"
        )
    sd: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, ref in stored.items():
        t = _decode(ref, tensors, where)
        target = own[key]
        if t.shape != target.shape:
            raise CheckpointError(
                f"{where}: module {name!r}: entry {key!r} has shape {tuple(t.shape)} in the checkpoint, "
                f"{tuple(target.shape)} in the module"
            )
        if t.dtype != target.dtype:
            raise CheckpointError(
                f"{where}: module {name!r}: entry {key!r} is {t.dtype} in the checkpoint, "
                f"{target.dtype} in the module"
            )
        sd[key] = t.to(device)
    sd._metadata = _decode(saved.get("versions", {}), tensors, where)  # type: ignore[attr-defined]
    module.load_state_dict(sd, strict=True)


def _load_optimizer(
    name: str, opt: torch.optim.Optimizer, saved: Any, tensors: dict, where: str, device: Any
) -> None:
    state = _decode(saved, tensors, where)
    groups = state.get("param_groups", [])
    if len(groups) != len(opt.param_groups):
        raise CheckpointError(
            f"{where}: optimizer {name!r}: {len(groups)} param groups in the checkpoint, "
            f"{len(opt.param_groups)} now"
        )
    params = [p for g in opt.param_groups for p in g["params"]]
    for g_saved, g_now in zip(groups, opt.param_groups):
        if len(g_saved["params"]) != len(g_now["params"]):
            raise CheckpointError(
                f"{where}: optimizer {name!r}: param group sizes differ from the checkpoint"
            )
    ids = [i for g in groups for i in g["params"]]
    index = dict(zip(ids, params))
    for pid, pstate in state.get("state", {}).items():
        p = index.get(pid)
        if p is None:
            raise CheckpointError(f"{where}: optimizer {name!r}: state for unknown parameter {pid}")
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != p.shape:
                raise CheckpointError(
                    f"{where}: optimizer {name!r}: state {key!r} of parameter {pid} has shape "
                    f"{tuple(value.shape)}, the parameter has {tuple(p.shape)}"
                )
            if isinstance(value, torch.Tensor) and device is not None and value.dim() > 0:
                pstate[key] = value.to(device)
    try:
        opt.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{where}: optimizer {name!r}: {e}") from e


def load_checkpoint(
    stem: str | os.PathLike,
    *,
    modules: dict[str, nn.Module] | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] | None = None,
    generators: dict[str, torch.Generator] | None = None,
    global_rng: bool = True,
    map_location: str | torch.device | None = "cpu",
) -> dict:
    """Restore the given objects in place from ``<stem>``; return the saved meta dict.

    Every name passed must exist in the checkpoint with matching shapes and dtypes; entries
    the caller does not ask for are ignored (e.g. load only the actors). Module and optimizer
    tensors pass through ``map_location`` before being copied into their targets; RNG states
    always stay on the CPU, where torch expects them.
    """
    doc, tensors, where = _read(Path(stem))
    device = torch.device(map_location) if map_location is not None else None
    for kind, given in (
        ("module", modules),
        ("optimizer", optimizers),
        ("scheduler", schedulers),
        ("generator", generators),
    ):
        saved = doc.get(kind + "s", {})
        for name in given or {}:
            if name not in saved:
                raise CheckpointError(f"{where}: no {kind} named {name!r} (saved: {sorted(saved)})")
    for name, module in (modules or {}).items():
        _load_module(name, module, doc["modules"][name], tensors, where, device)
    for name, opt in (optimizers or {}).items():
        _load_optimizer(name, opt, doc["optimizers"][name], tensors, where, device)
    for name, sched in (schedulers or {}).items():
        sched.load_state_dict(_decode(doc["schedulers"][name], tensors, where))
    for name, gen in (generators or {}).items():
        state = _decode(doc["generators"][name]["state"], tensors, where)
        try:
            gen.set_state(state)
        except RuntimeError as e:
            raise CheckpointError(f"{where}: generator {name!r}: {e}") from e
    if global_rng:
        if doc.get("rng") is None:
            raise CheckpointError(f"{where}: saved without global RNG state; pass global_rng=False")
        _set_global_rng_state(doc["rng"], tensors, where)
    return doc["meta"]
