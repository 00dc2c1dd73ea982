"""The behaviour model as a policy two ways: one sample per step, and the mean of K samples.

Where the agents' observations leave the data's actions broad (HalfCheetah-2x3: the data's
policy acts on the global state, each agent sees its own joints), a sample of the conditional is
a poor action and its mean a far better one; stage 2's deterministic actors follow the mean. This
tells which of the two a run's behaviour model is good at (results/README.md, "Which stage caps
OMSD").

    python -m scoredec.experiments.behaviour_mean RUN [--samples 8] [--episodes 10] [--seed 1000]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def mean_policy(behavior, samples: int, generator: torch.Generator):
    """obs [B, n, obs_max] -> the mean of `samples` joint samples of the model, [B, n, act_max]
    (sequential models sample the whole chain each time, so agent k's mean is over the earlier
    agents' samples too)."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")

    @torch.no_grad()
    def act(obs):
        return torch.stack([behavior.sample(obs, generator=generator) for _ in range(samples)]).mean(0)
    return act


def judge(run: Path, samples: int, episodes: int, seed: int, device: str = "cpu") -> dict:
    """Closed-loop normalized score of one sample per step and of the mean of `samples`, in the
    environment the run was trained on, on the same episodes."""
    from scoredec.pipeline import load_product
    from scoredec.rollout import evaluate, trained_env

    product = load_product(run, "behavior", device)
    behavior, env = product.module.eval(), trained_env(product.meta)
    out = {"run": str(run), "episodes": episodes, "seed": seed}
    for name, k in (("one_sample", 1), (f"mean_of_{samples}", samples)):
        gen = torch.Generator(device).manual_seed(seed)
        r = evaluate(mean_policy(behavior, k, gen), env.env_id, episodes=episodes,
                     num_envs=min(episodes, 100), seed=seed, device=device,
                     env_kwargs=env.env_kwargs, reference_returns=env.reference_returns,
                     spec=behavior.spec)
        out[name] = {key: r.get(key) for key in ("normalized_mean", "normalized_std",
                                                  "return_mean", "return_std")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", type=Path, help="run directory with behavior.safetensors")
    p.add_argument("--samples", type=int, default=8, help="samples averaged per observation")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes")
    p.add_argument("--seed", type=int, default=1000, help="seed of the episodes and the samples")
    p.add_argument("--device", default="cpu", help="torch device")
    args = p.parse_args(argv)
    for flag in ("samples", "episodes"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be >= 1, got {getattr(args, flag)}")
    print(json.dumps(judge(args.run, args.samples, args.episodes, args.seed, args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
