"""Evaluation during training: the score curve is recorded and no trained number changes."""

import pytest
import torch
from safetensors.torch import load_file

from scoredec.datagen.factory import make_dataset_file
from scoredec.methods import get_method
from scoredec.periodic_eval import PeriodicEval
from scoredec.runs import read_metrics
from scoredec.suite.summary import run_summary

SMALL = {"device": "cpu", "log_every": 5, "checkpoint_every": 1000,
         "behavior": {"arch": "compact", "hidden": 16, "compact_layers": 2, "batch_size": 16,
                      "steps": 10},
         "critic": {"hidden": 8, "batch_size": 16, "steps": 10},
         "policy": {"hidden": 8, "batch_size": 16, "steps": 12}}
OMAR = {"device": "cpu", "log_every": 5, "checkpoint_every": 1000, "steps": 12, "batch_size": 16,
        "critic_hidden": 8, "actor_hidden": 8, "actor_input_norm": True}


@pytest.fixture(scope="module")
def spread_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "spread.h5"
    make_dataset_file("spread", "medium", path, episodes=8, seed=1, progress=False)
    return path


def _actors(run):
    return load_file(str(run / "actors.safetensors"))


# omar: its actors have BatchNorm inputs, which evaluation must not update
@pytest.mark.parametrize("method,overrides", [("omsd", SMALL), ("omar", OMAR)])
def test_evaluating_every_k_steps_changes_no_trained_number(method, overrides, spread_file,
                                                            tmp_path):
    train = get_method(method).train
    train(spread_file, tmp_path / "plain", seed=3, overrides=overrides, progress=False)
    train(spread_file, tmp_path / "watched", seed=3, overrides=overrides, progress=False,
          evaluation=PeriodicEval(every=5, episodes=3, envs=3))
    a, b = _actors(tmp_path / "plain"), _actors(tmp_path / "watched")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    evals = read_metrics(tmp_path / "watched", "eval")
    assert [r["step"] for r in evals] == [5, 10, 12]       # every 5 and at the last step
    assert all(isinstance(r["normalized"], float) and isinstance(r["return"], float) for r in evals)
    assert not read_metrics(tmp_path / "plain", "eval")
    curve = run_summary(tmp_path / "watched")["eval_curve"]
    assert curve == {"metric": "normalized", "step": [5, 10, 12],
                     "value": [r["normalized"] for r in evals]}
    assert run_summary(tmp_path / "plain")["eval_curve"] is None


def test_an_evaluation_leaves_the_global_rng_and_the_actors_state_as_they_were():
    from scoredec.actors import Actors
    from scoredec.envs import make_env
    from scoredec.layout import AgentSpec

    env = make_env("spread", 1)
    spec = AgentSpec(tuple(env.obs_dims), tuple(env.act_dims))
    actors = Actors(spec, "decentralized", 8, 1, input_norm=True).train()
    buffers = {k: v.clone() for k, v in actors.state_dict().items()}
    torch.manual_seed(11)
    rng = torch.get_rng_state()
    scores = PeriodicEval(every=1, episodes=2, envs=2).evaluator(actors, "spread",
                                                                  torch.device("cpu"))(1)
    assert set(scores) == {"return", "normalized"}
    assert torch.equal(torch.get_rng_state(), rng)
    assert actors.training
    assert all(torch.equal(v, buffers[k]) for k, v in actors.state_dict().items())


def test_a_resumed_run_logs_each_evaluation_once(spread_file, tmp_path):
    train = get_method("bc").train
    watch = PeriodicEval(every=4, episodes=2, envs=2)
    train(spread_file, tmp_path / "run", seed=0, overrides=SMALL, progress=False, budget=6,
          evaluation=watch)
    train(spread_file, tmp_path / "run", seed=0, overrides=SMALL, progress=False, resume=True,
          evaluation=watch)
    assert [r["step"] for r in read_metrics(tmp_path / "run", "eval")] == [4, 8, 12]


def test_evaluation_of_an_environment_that_does_not_exist_fails_before_training(tmp_path):
    from scoredec.data.hdf5 import write_dataset
    from scoredec.envs import bandit

    ds = bandit.make_dataset(50, seed=0)
    ds.env_id = "my-robots"
    write_dataset(tmp_path / "mine.h5", ds)
    with pytest.raises(ValueError, match="unknown environment 'my-robots'"):
        get_method("bc").train(tmp_path / "mine.h5", tmp_path / "run", seed=0, overrides=SMALL,
                               progress=False, evaluation=PeriodicEval(every=4))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
