"""Every method the suite can run, in one registry.

A method trains from a dataset file into a run directory and leaves its final actors there as
<run>/actors.safetensors + .json (pipeline.save_actors), so evaluation is the same for all:
pipeline.load_actors(run) -> decentralized actors. The OMSD family (omsd, brpo-*, bc) is
registered here with its `Variant` and runs through pipeline.train; the baselines register
themselves when scoredec.baselines is imported (done on the first lookup that needs them).
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
class Variant:
    """Which behaviour decomposition, critic and actor layout an OMSD-family method uses."""

    score_mode: str | None      # ScoreLayout mode of the regularizer; None for BC
    critic_scope: str | None    # IQLCritic scope; None for BC
    actor_mode: str             # ActorLayout mode


@dataclass(frozen=True)
class MethodEntry:
    name: str
    train: TrainFn
    centralized: bool = False   # True: not decentralized at execution (an oracle; marked in tables)
    description: str = ""
    variant: Variant | None = None   # the OMSD family's stage-2 variant; None for a baseline


_REGISTRY: dict[str, MethodEntry] = {}


def register_method(entry: MethodEntry) -> MethodEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"method {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


_LOADED = False


def _load_all() -> None:
    """Import the baselines (they register on import)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import scoredec.baselines  # noqa: F401


def family() -> tuple[str, ...]:
    """The OMSD family (trained by pipeline.train in stages), in its own order."""
    return tuple(name for name, entry in _REGISTRY.items() if entry.variant is not None)


def variant(name: str) -> Variant:
    """The stage-2 variant of an OMSD-family method."""
    entry = _REGISTRY.get(name)
    if entry is None or entry.variant is None:
        raise ValueError(f"method must be one of {family()}, got {name!r}")
    return entry.variant


def method_names() -> tuple[str, ...]:
    """The OMSD family in its own order, then the baselines alphabetically (whatever the
    import order was)."""
    _load_all()
    return family() + tuple(sorted(n for n in _REGISTRY if n not in family()))


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


def _register_family(name: str, variant: Variant, description: str,
                     centralized: bool = False) -> None:
    register_method(MethodEntry(name, _pipeline_trainer(name), centralized, description, variant))


_register_family("omsd", Variant("sequential", "joint", "decentralized"),
                 "sequential score decomposition (the paper's method)")
_register_family("brpo-ind", Variant("marginal", "local", "decentralized"),
                 "marginal score + local critics")
_register_family("brpo-ctde", Variant("marginal", "joint", "decentralized"),
                 "marginal score + joint critic")
_register_family("brpo-jal", Variant("joint", "joint", "joint"),
                 "joint score + joint actor (centralized oracle)", centralized=True)
_register_family("bc", Variant(None, None, "decentralized"), "behaviour cloning")
