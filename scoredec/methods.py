"""Every method the suite can run, in one registry (scoredec.registry), filled here.

A method trains from a dataset file into a run directory and leaves its final actors there as
<run>/actors.safetensors + .json (pipeline.save_actors), so evaluation is the same for all:
pipeline.load_actors(run) -> decentralized actors. The OMSD family (omsd, brpo-*, bc) is
registered here with its `Variant` and runs through pipeline.train; the baselines register
themselves when scoredec.baselines is imported (below).
"""

from __future__ import annotations

import scoredec.baselines  # noqa: F401  (registers the baselines)
from scoredec.pipeline import TrainConfig, train as train_pipeline
from scoredec.registry import (FAMILY, MethodEntry, TrainFn, Variant, REGISTRY, config_with, family,
                               merge, register_method, variant)

__all__ = ["MethodEntry", "TrainFn", "Variant", "config_with", "family", "get_method", "merge",
           "method_names", "register_method", "variant"]


def method_names() -> tuple[str, ...]:
    """The OMSD family in its own order, then the baselines alphabetically (whatever the
    import order was)."""
    return family() + tuple(sorted(n for n in REGISTRY if n not in FAMILY))


def get_method(name: str) -> MethodEntry:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(method_names())}")
    return REGISTRY[name]


def _pipeline_trainer(method: str) -> TrainFn:
    def train(data_path, run_dir, *, seed, overrides, progress=True, budget=None, resume=False,
              evaluation=None, allow_data_change=False):
        cfg = config_with(TrainConfig, overrides, method=method, seed=seed)
        return train_pipeline(data_path, cfg, run_dir, resume=resume, progress=progress,
                              budget=budget, evaluation=evaluation,
                              allow_data_change=allow_data_change)
    return train


for _name, (_variant, _description, _centralized) in FAMILY.items():
    register_method(MethodEntry(_name, _pipeline_trainer(_name), _centralized, _description, _variant,
                                TrainConfig))
