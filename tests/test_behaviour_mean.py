"""scoredec.experiments.behaviour_mean: the behaviour model's mean of K samples as a policy."""

import math

import pytest
import torch

from scoredec.behavior import BehaviorConfig, BehaviorModel
from scoredec.critic import CriticConfig
from scoredec.data.hdf5 import write_dataset
from scoredec.datagen.factory import make_dataset
from scoredec.experiments.behaviour_mean import judge, main, mean_policy
from scoredec.layout import AgentSpec
from scoredec.pipeline import TrainConfig, train
from scoredec.policy import PolicyConfig

from test_nets import random_batch, small_cfg


def test_mean_policy_is_the_average_of_that_many_samples():
    spec = AgentSpec((4, 2), (2, 3))
    model = BehaviorModel(spec, "sequential", small_cfg("compact")).double().eval()
    obs, _ = random_batch(spec, 5, torch.Generator().manual_seed(0))
    got = mean_policy(model, 3, torch.Generator().manual_seed(7))(obs)
    gen = torch.Generator().manual_seed(7)
    want = torch.stack([model.sample(obs, generator=gen) for _ in range(3)]).mean(0)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    single = mean_policy(model, 1, torch.Generator().manual_seed(7))(obs)
    assert not torch.equal(single, got)          # the mean is not one of the samples
    with pytest.raises(ValueError, match="samples must be >= 1"):
        mean_policy(model, 0, torch.Generator())


def test_judge_scores_both_policies_on_a_trained_run(tmp_path, capsys):
    data = tmp_path / "spread.h5"
    write_dataset(data, make_dataset("spread", "medium", episodes=3, seed=3, progress=False))
    cfg = TrainConfig(method="omsd", seed=3, device="cpu", log_every=3, checkpoint_every=5,
                      behavior=BehaviorConfig(arch="compact", hidden=16, compact_layers=1,
                                              batch_size=8, steps=6),
                      critic=CriticConfig(hidden=8, layers=1, batch_size=8, steps=6),
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=6, beta=0.5))
    run = train(data, cfg, tmp_path / "run", progress=False, stages=("behavior",))
    out = judge(run, samples=2, episodes=2, seed=0)
    assert set(out) >= {"one_sample", "mean_of_2"}
    assert all(math.isfinite(out[k]["normalized_mean"]) for k in ("one_sample", "mean_of_2"))
    assert main([str(run), "--samples", "2", "--episodes", "1"]) == 0
    assert '"mean_of_2"' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([str(run), "--samples", "0"])
