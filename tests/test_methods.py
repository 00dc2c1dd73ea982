"""The method registry: every method trains through one interface and leaves loadable actors."""

import dataclasses

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


def test_one_registry_holds_the_family_and_the_baselines():
    import scoredec.policy
    from scoredec.methods import Variant, family, variant
    from scoredec.pipeline import TrainConfig

    assert not hasattr(scoredec.policy, "METHODS")   # no second table of methods
    assert family() == ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal", "bc")
    assert method_names()[:len(family())] == family()
    assert variant("omsd") == Variant("sequential", "joint", "decentralized")
    assert get_method("omsd").variant is variant("omsd")
    assert all(get_method(name).variant is None for name in method_names()[len(family()):])
    with pytest.raises(ValueError, match="method must be one of"):
        variant("matd3bc")   # a baseline has no stage-2 variant
    method_field = {f.name: f for f in dataclasses.fields(TrainConfig)}["method"]
    assert method_field.metadata["choices"] == family()


def test_every_config_declares_the_shared_fields_once():
    """The run fields come from RunConfig and the baselines' from BaselineConfig: the same
    name and help everywhere, only the defaults a method publishes differ."""
    from scoredec.baselines.common import BaselineConfig
    from scoredec.pipeline import RunConfig, TrainConfig

    get_method("iql")   # imports the baselines
    configs = list(_subclasses(BaselineConfig))
    assert {c.__name__ for c in configs} >= {"IQLConfig", "TD3BCConfig", "CQLConfig", "OMARConfig"}
    for base, classes in ((RunConfig, [TrainConfig, BaselineConfig, *configs]),
                          (BaselineConfig, configs)):
        help_of = {f.name: f.metadata["help"] for f in dataclasses.fields(base)}
        for cls in classes:
            fields = {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}
            assert {k: fields[k] for k in help_of} == help_of, cls.__name__
    cql = _subclasses_by_name(BaselineConfig)["CQLConfig"]()
    assert (cql.gamma, cql.polyak, cql.critic_hidden, cql.batch_size, cql.critic_lr) == (
        0.95, 0.01, 64, 1024, 0.01)   # OMAR main.py's particle-task values
    td3 = _subclasses_by_name(BaselineConfig)["TD3BCConfig"]()
    assert (td3.gamma, td3.polyak, td3.critic_hidden, td3.batch_size, td3.critic_lr) == (
        0.99, 0.005, 256, 256, 3e-4)  # CORL td3_bc.py


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _subclasses_by_name(cls):
    return {c.__name__: c for c in _subclasses(cls)}


@pytest.mark.parametrize("method", ["bc", "matd3bc"])
def test_a_finished_run_is_skipped_and_left_as_it_is(method, tmp_path):
    """Both kinds of method run through one driver (pipeline.drive): training a finished run
    again changes no file in it (no new metrics, no new TensorBoard events)."""
    data = tmp_path / "b.h5"
    write_dataset(data, bandit.make_dataset(200, seed=0))
    over = TINY if method == "bc" else {"device": "cpu", "steps": 6, "batch_size": 8,
                                        "critic_hidden": 8, "actor_hidden": 8, "log_every": 3}
    run = get_method(method).train(data, tmp_path / "run", seed=1, overrides=over, progress=False)

    def files():
        return {p: p.stat().st_mtime_ns for p in sorted(run.rglob("*")) if p.is_file()
                and p.name != "config.yaml"}   # the run dir rewrites its resolved config

    before = files()
    assert get_method(method).train(data, run, seed=1, overrides=over, progress=False) == run
    assert files() == before
