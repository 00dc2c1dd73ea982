"""Learning on the two-mode bandit (DESIGN.md 1.8): the decisive behaviour test of OMSD.

At beta = 0 the actors follow only the behaviour regularizer with the mode-seeking weighting
w(t) = alpha_t / sigma_t. The sequential decomposition coordinates both agents on one data
mode on every seed; marginal regularization lets each agent pick its own mode. With beta > 0
and the learned IQL critic, OMSD moves to the best joint action. Deterministic seeds, one
thread per seed, two worker processes: about four minutes on 2 CPU cores.
"""

from dataclasses import replace

import numpy as np
import pytest

from scoredec.experiments.bandit import COORDINATED, BanditConfig, run_bandit, summarize


@pytest.fixture(scope="module")
def beta0():
    cfg = BanditConfig(seeds=10, methods=("omsd", "brpo-ind", "brpo-ctde"), workers=2)
    results = run_bandit(cfg, progress=False)
    return results, summarize(results)


def rewards(results, method):
    return np.array([r["methods"][method]["reward"] for r in results])


def test_omsd_coordinates_on_every_seed(beta0):
    results, _ = beta0
    r = rewards(results, "omsd")
    assert (r > COORDINATED).all(), f"OMSD rewards per seed: {np.round(r, 3)}"


@pytest.mark.parametrize("method", ["brpo-ind", "brpo-ctde"])
def test_marginal_regularization_miscoordinates(beta0, method):
    results, _ = beta0
    r = rewards(results, method)
    assert (r < 0).sum() >= 2, f"{method} rewards per seed: {np.round(r, 3)}"


def test_sequential_sampler_stays_in_the_data_modes(beta0):
    _, summary = beta0
    assert summary["samples"]["sequential"]["same_sign_min"] >= 0.95, summary["samples"]


def test_independent_marginal_samples_do_not(beta0):
    results, _ = beta0
    for r in results:
        samples = np.array(r["samples"]["marginal"])
        same = float((np.sign(samples).prod(axis=1) > 0).mean())
        assert same < 0.75, f"seed {r['seed']}: {same:.3f} of independent marginal samples agree"


def test_omsd_with_the_learned_critic_finds_the_best_joint_action():
    base = BanditConfig()
    cfg = replace(base, seeds=2, methods=("omsd",), workers=2,
                  policy=replace(base.policy, beta=1.0))
    r = rewards(run_bandit(cfg, progress=False), "omsd")
    assert (r >= 0.9).all(), f"OMSD rewards with beta = 1: {np.round(r, 3)}"
