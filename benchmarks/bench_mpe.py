"""Batched MPE throughput: env steps per second (one env step = one world advanced once).

    pytest benchmarks/bench_mpe.py --benchmark-only

Each round steps every environment once with fixed uniform actions, resetting every 25 steps
like a rollout would. ``extra_info["env_steps_per_s"]`` = num_envs / median round time.
Goal (issue): >= 400k env steps/s with 1000 spread environments on 2 CPU cores.
The step is ~30 small tensor ops, so on a shared machine OMP_NUM_THREADS=1 is steadier: a
second intra-op thread that competes with other processes can cost 10x.
"""

from __future__ import annotations

import pytest
import torch

from scoredec.envs.mpe import EPISODE_LENGTH, make_mpe

SIZES = [1, 100, 1000, 10000]


def _stepper(name, num_envs, device="cpu"):
    env = make_mpe(name, num_envs, device=device, seed=0)
    env.reset()
    act = env.sample_random_actions()

    def one_step():
        if env.t >= EPISODE_LENGTH:
            env.reset()
        env.step(act)

    return one_step


@pytest.mark.parametrize("num_envs", SIZES)
@pytest.mark.parametrize("name", ["spread", "tag", "world"])
def test_mpe_step_throughput(benchmark, name, num_envs):
    step = _stepper(name, num_envs)
    for _ in range(5):  # warm-up
        step()
    benchmark.pedantic(step, rounds=max(20, 20000 // num_envs), iterations=1, warmup_rounds=2)
    benchmark.extra_info.update({
        "task": name, "num_envs": num_envs, "device": "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    })
    if benchmark.stats is not None:  # None under --benchmark-disable (smoke runs)
        benchmark.extra_info["env_steps_per_s"] = num_envs / benchmark.stats.stats.median
