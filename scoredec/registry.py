"""The method registry and the OMSD family's variants: a leaf module (it imports only the
config helpers), so that the trainers (pipeline, baselines) can register and look up methods
without an import cycle. scoredec.methods fills the registry (the family's trainers, the
baselines) and is where callers look methods up.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scoredec.config import config_from_dict, config_to_dict


class TrainFn(Protocol):
    def __call__(self, data_path: Path, run_dir: Path, *, seed: int, overrides: dict,
                 progress: bool = True, budget: int | None = None, resume: bool = False,
                 evaluation=None, allow_data_change: bool = False) -> Path:
        """Train on data_path into run_dir; overrides: a nested dict of config fields;
        evaluation: a scoredec.periodic_eval.PeriodicEval (the score during training) or None;
        allow_data_change: reopen a run whose dataset's content changed."""


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
    config: type | None = None       # the config dataclass its overrides fill (train --method)


REGISTRY: dict[str, MethodEntry] = {}


def register_method(entry: MethodEntry) -> MethodEntry:
    if entry.name in REGISTRY:
        raise ValueError(f"method {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


FAMILY: dict[str, tuple[Variant, str, bool]] = {
    "omsd": (Variant("sequential", "joint", "decentralized"),
             "sequential score decomposition (the paper's method)", False),
    "brpo-ind": (Variant("marginal", "local", "decentralized"), "marginal score + local critics", False),
    "brpo-ctde": (Variant("marginal", "joint", "decentralized"), "marginal score + joint critic", False),
    "brpo-jal": (Variant("joint", "joint", "joint"),
                 "joint score + joint actor (centralized oracle)", True),
    "bc": (Variant(None, None, "decentralized"), "behaviour cloning", False),
}
"""The OMSD family (trained by pipeline.train in stages): variant, description, centralized."""


def family() -> tuple[str, ...]:
    """The OMSD family, in its own order."""
    return tuple(FAMILY)


def variant(name: str) -> Variant:
    """The stage-2 variant of an OMSD-family method."""
    if name not in FAMILY:
        raise ValueError(f"method must be one of {family()}, got {name!r}")
    return FAMILY[name][0]


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
