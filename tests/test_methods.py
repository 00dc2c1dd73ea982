"""The method registry: every method trains through one interface and leaves loadable actors."""

import pytest

from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit
from scoredec.methods import get_method, merge, method_names
from scoredec.pipeline import load_actors

TINY = {"behavior": {"arch": "compact", "hidden": 16, "steps": 10, "batch_size": 8},
        "critic": {"hidden": 8, "steps": 10, "batch_size": 8},
        "policy": {"hidden": 8, "steps": 10, "batch_size": 8}, "log_every": 5}


def test_pipeline_methods_are_registered():
    names = method_names()
    for name in ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal", "bc"):
        assert name in names
    assert get_method("brpo-jal").centralized and not get_method("omsd").centralized
    with pytest.raises(ValueError, match="unknown method"):
        get_method("qmix")


def test_merge_is_nested():
    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}


def test_a_method_trains_and_its_actors_load(tmp_path):
    data = tmp_path / "b.h5"
    write_dataset(data, bandit.make_dataset(200, seed=0))
    run = get_method("omsd").train(data, tmp_path / "run", seed=1, overrides=TINY, progress=False)
    actors, meta = load_actors(run)
    assert meta["env_id"] == "bandit" and meta["config"]["seed"] == 1
    assert actors(bandit.observations(3)).shape == (3, 2, 1)
    with pytest.raises(Exception, match="betta"):
        get_method("omsd").train(data, tmp_path / "r2", seed=1, overrides={"policy": {"betta": 1}})
