"""Every method the suite can run, behind one interface.

A method trains from a dataset file into a run directory and leaves its final actors there as
<run>/actors.safetensors + .json (pipeline.save_actors), so evaluation is the same for all:
pipeline.load_actors(run) -> decentralized actors. The OMSD family (omsd, brpo-*, bc) runs
through pipeline.train; baselines register themselves from scoredec.baselines.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scoredec.config import config_from_dict, config_to_dict


class TrainFn(Protocol):
    def __call__(self, data_path: Path, run_dir: Path, *, seed: int, overrides: dict,
                 progress: bool = True, budget: int | None = None, resume: bool = False) -> Path:
        """Train on data_path into run_dir; overrides: a nested dict of config fields."""


@dataclass(frozen=True)
class MethodEntry:
    name: str
    train: TrainFn
    centralized: bool = False   # True: not decentralized at execution (an oracle; marked in tables)
    description: str = ""


_REGISTRY: dict[str, MethodEntry] = {}


def register_method(entry: MethodEntry) -> MethodEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"method {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


_LOADED = False


def _load_all() -> None:
    """Register the pipeline methods, then import the baselines (they register on import)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    _register_pipeline_methods()
    import scoredec.baselines  # noqa: F401


def method_names() -> tuple[str, ...]:
    """The OMSD family in its own order, then the baselines alphabetically (whatever the
    import order was)."""
    from scoredec.policy import METHODS

    _load_all()
    family = [n for n in METHODS if n in _REGISTRY]
    return tuple(family + sorted(n for n in _REGISTRY if n not in METHODS))


def get_method(name: str) -> MethodEntry:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def merge(base: dict, overrides: dict) -> dict:
    """Nested dict update: overrides win, sub-dicts merge."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_with(cls, overrides: dict, **fields):
    """An instance of config dataclass cls: defaults, then fields, then overrides (validated)."""
    return config_from_dict(cls, merge(config_to_dict(cls(**fields)), overrides),
                            where="method overrides")


def _pipeline_trainer(method: str) -> TrainFn:
    def train(data_path, run_dir, *, seed, overrides, progress=True, budget=None, resume=False):
        from scoredec.pipeline import TrainConfig, train as train_pipeline

        cfg = config_with(TrainConfig, overrides, method=method, seed=seed)
        return train_pipeline(data_path, cfg, run_dir, resume=resume, progress=progress,
                              budget=budget)
    return train


def _register_pipeline_methods() -> None:
    from scoredec.policy import METHODS

    text = {"omsd": "sequential score decomposition (the paper's method)",
            "brpo-ind": "marginal score + local critics", "brpo-ctde": "marginal score + joint critic",
            "brpo-jal": "joint score + joint actor (centralized oracle)", "bc": "behaviour cloning"}
    for name, m in METHODS.items():
        register_method(MethodEntry(name, _pipeline_trainer(name), m.centralized, text.get(name, "")))


