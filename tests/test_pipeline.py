"""`scoredec train` end to end on a tiny bandit dataset: products, skipping, exact resume."""

import dataclasses
import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from scoredec.behavior import BehaviorConfig
from scoredec.critic import CriticConfig
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit
from scoredec.pipeline import TrainConfig, load_product, train
from scoredec.policy import PolicyConfig
from scoredec.runs import RunError, read_metrics

STEPS = 12


def tiny_config(method="omsd", **kw) -> TrainConfig:
    return TrainConfig(
        method=method, seed=3, device="cpu", log_every=3, checkpoint_every=5,
        behavior=BehaviorConfig(arch="resnet", hidden=16, blocks=1, dropout=0.1, batch_size=8,
                                steps=STEPS),
        critic=CriticConfig(hidden=8, layers=1, batch_size=8, steps=STEPS),
        policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=STEPS, beta=0.5), **kw)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bandit.h5"
    write_dataset(path, bandit.make_dataset(256, seed=0))
    return path


def weights(run, name):
    return load_file(str(run / f"{name}.safetensors"))


def test_stopped_and_resumed_run_ends_with_identical_weights(data_file, tmp_path):
    cfg = tiny_config()
    straight = train(data_file, cfg, tmp_path / "straight", progress=False)
    broken = tmp_path / "broken"
    train(data_file, cfg, broken, budget=7, progress=False)         # stops inside behaviour
    assert not (broken / "behavior.json").exists()
    with pytest.raises(RuntimeError, match="--resume"):
        train(data_file, cfg, broken, progress=False)
    train(data_file, cfg, broken, budget=10, resume=True, progress=False)  # into the critic
    assert (broken / "behavior.json").exists() and not (broken / "critic.json").exists()
    train(data_file, cfg, broken, budget=STEPS + 4, resume=True, progress=False)  # into policy
    train(data_file, cfg, broken, resume=True, progress=False)
    for name in ("behavior", "critic", "actors"):
        a, b = weights(straight, name), weights(broken, name)
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key} differs after resume"
    # The metrics log has each logged step once per stage (plus the steps where it stopped).
    steps = [(r["stage"], r["step"]) for r in read_metrics(broken)]
    assert len(steps) == len(set(steps))
    assert set(steps) >= {(r["stage"], r["step"]) for r in read_metrics(straight)}


def test_products_rebuild_and_finished_stages_are_skipped(data_file, tmp_path):
    run = train(data_file, tiny_config("brpo-ind"), tmp_path / "run", progress=False)
    product = load_product(run, "policy")
    actors, spec, cfg = product.module, product.spec, product.config
    assert cfg.method == "brpo-ind" and spec.n_agents == 2
    a = actors.act(bandit.observations(4))
    assert a.shape == (4, 2, 1) and a.abs().max() <= 1
    before = (run / "actors.json").stat().st_mtime_ns
    train(data_file, tiny_config("brpo-ind"), run, progress=False)
    assert (run / "actors.json").stat().st_mtime_ns == before
    assert json.loads((run / "actors.json").read_text())["meta"]["stage"] == "policy"


def test_changed_config_is_refused_on_the_same_run(data_file, tmp_path):
    train(data_file, tiny_config("bc"), tmp_path / "run", progress=False)
    changed = tiny_config("bc")
    changed.policy.beta = 0.9
    with pytest.raises(Exception, match="policy.beta"):
        train(data_file, changed, tmp_path / "run", progress=False)


def test_bc_needs_only_the_policy_stage(data_file, tmp_path):
    run = train(data_file, tiny_config("bc"), tmp_path / "bc", progress=False)
    assert (run / "actors.json").exists() and not (run / "behavior.json").exists()
    with pytest.raises(ValueError, match="no stage"):
        train(data_file, tiny_config("bc"), tmp_path / "bc2", stages=("critic",), progress=False)


def test_a_run_stored_before_newer_fields_resumes(data_file, tmp_path):
    # config.yaml written before behavior.obs_norm and policy.input_norm existed: resuming with
    # both at the value runs had then continues (pipeline.saved_train_config); turning one on is refused.
    cfg = tiny_config()
    run = tmp_path / "old"
    train(data_file, cfg, run, budget=7, progress=False)
    stored = yaml.safe_load((run / "config.yaml").read_text())
    del stored["train"]["behavior"]["obs_norm"], stored["train"]["policy"]["input_norm"]
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(RunError, match=r"train\.policy\.input_norm"):
        train(data_file, dataclasses.replace(cfg, policy=dataclasses.replace(cfg.policy, input_norm=True)),
              run, resume=True, progress=False)
    train(data_file, cfg, run, resume=True, progress=False)
    straight = train(data_file, cfg, tmp_path / "straight", progress=False)
    for name in ("behavior", "critic", "actors"):
        a, b = weights(run, name), weights(straight, name)
        assert all(torch.equal(a[k], b[k]) for k in a)
