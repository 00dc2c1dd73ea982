"""Evaluation during training: the actors' return and normalized score every K steps.

This is the return-vs-steps curve (TensorBoard `eval/normalized`, metrics.jsonl stage "eval",
the suite's cell JSON `eval_curve` and curves plot). It must not change what is trained: the
environments draw from their own seeded generators, the global RNG is forked around the
rollout (a future environment that draws from it cannot shift the training's noise), and the
actors are switched to eval mode (their BatchNorm statistics are not updated) and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

__all__ = ["PeriodicEval", "EVAL_SEED"]

EVAL_SEED = 2_000_000
"""Seed of the first round of episodes evaluated during training: never a training seed, and
not the suite's final-evaluation seeds (1_000_000 + 1000 * seed)."""


@dataclass(frozen=True)
class PeriodicEval:
    """every: actor steps between evaluations (0: none); episodes and envs of each one; the
    same episodes (seed) at every evaluation, so the curve moves only with the actors."""

    every: int = 0
    episodes: int = 10
    envs: int = 10
    seed: int = EVAL_SEED

    def __post_init__(self):
        if self.every < 0 or self.episodes < 1 or self.envs < 1:
            raise ValueError(f"evaluation during training needs every >= 0, episodes >= 1 and "
                             f"envs >= 1, got {self.every}, {self.episodes}, {self.envs}")

    def check(self, env_id: str) -> None:
        """Raise now, not after hours of training, if env_id is not an environment that
        evaluation can build."""
        from scoredec.envs import make_env

        if self.every:
            make_env(env_id, 1)

    def evaluator(self, actors: nn.Module, env_id: str,
                  device: torch.device) -> Callable[[int], dict[str, float]]:
        """evaluate(step) -> {"return", "normalized" (where the task has references)}."""
        from scoredec.rollout import evaluate

        devices = ([device.index if device.index is not None else torch.cuda.current_device()]
                   if device.type == "cuda" else [])

        def run(step: int) -> dict[str, float]:
            was_training = actors.training
            actors.eval()
            try:
                with torch.random.fork_rng(devices=devices):
                    result = evaluate(actors, env_id, self.episodes, min(self.envs, self.episodes),
                                      self.seed, device)
            finally:
                actors.train(was_training)
            out = {"return": result["return_mean"]}
            if "normalized_mean" in result:
                out["normalized"] = result["normalized_mean"]
            return out

        return run
