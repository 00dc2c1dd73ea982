"""Online TD3 for the MaMuJoCo behaviour policies (scoredec.datagen.td3): exact resume, snapshots,
and the factory levels that replay them. Skipped without the optional 'mujoco' extra."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from scoredec.checkpoint import CheckpointError
from scoredec.datagen.td3 import TD3Config, behaviour_policies, cache_dir, train_behaviour_policy

HAVE_MUJOCO = all(importlib.util.find_spec(m) is not None for m in ("mujoco", "gymnasium_robotics"))
needs_mujoco = pytest.mark.skipif(not HAVE_MUJOCO, reason="needs the 'mujoco' extra")

TASK = "halfcheetah-2x3"
# Small and short so that a few hundred steps run in seconds; the updates start at step 100.
TINY = TD3Config(hidden=32, batch_size=32, start_steps=100, eval_every=100, eval_episodes=2,
                 checkpoint_every=1000, episode_length=70)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MUJOCO_LOG.TXT
    monkeypatch.setenv("SCOREDEC_CACHE", str(tmp_path / "cache"))


def _weights(actor) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in actor.state_dict().items()}


def test_config_rejects_bad_values_by_name():
    with pytest.raises(ValueError, match="TD3Config.batch_size"):
        TD3Config(batch_size=0)
    with pytest.raises(ValueError, match="TD3Config.tau"):
        TD3Config(tau=float("nan"))


def test_cache_dir_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREDEC_CACHE", str(tmp_path / "elsewhere"))
    assert cache_dir(TASK) == tmp_path / "elsewhere" / "behaviour" / TASK
    monkeypatch.delenv("SCOREDEC_CACHE")
    assert ".cache/scoredec/behaviour" in cache_dir(TASK).as_posix()


@needs_mujoco
def test_stop_and_resume_is_bitwise_identical(tmp_path):
    whole = train_behaviour_policy(TASK, tmp_path / "whole", 300, seed=3, config=TINY,
                                   cache=tmp_path / "c1")
    part = train_behaviour_policy(TASK, tmp_path / "split", 300, seed=3, config=TINY,
                                  cache=tmp_path / "c2", budget_steps=137)  # stops mid-episode
    assert part["step"] == 137 and not part["finished"]
    rest = train_behaviour_policy(TASK, tmp_path / "split", 300, seed=3, config=TINY,
                                  cache=tmp_path / "c2")
    assert whole["finished"] and rest["finished"] and rest["step"] == 300
    a, b = _weights(whole["actor"]), _weights(rest["actor"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    strip = [{k: e[k] for k in ("step", "return_mean", "return_std")} for e in whole["evaluations"]]
    assert strip == [{k: e[k] for k in ("step", "return_mean", "return_std")} for e in rest["evaluations"]]
    assert [e["step"] for e in strip] == [100, 200, 300]
    # one checkpoint kept; a finished run resumes to a no-op
    assert len(list((tmp_path / "split").glob("td3-*.json"))) == 1
    again = train_behaviour_policy(TASK, tmp_path / "split", 300, seed=3, config=TINY,
                                   cache=tmp_path / "c2")
    assert again["step"] == 300 and again["steps_per_second"] == 0.0
    with pytest.raises(CheckpointError, match="seed"):
        train_behaviour_policy(TASK, tmp_path / "split", 400, seed=4, config=TINY, cache=tmp_path / "c3")


@needs_mujoco
def test_snapshots_feed_the_factory_levels(tmp_path):
    from scoredec.datagen.factory import make_dataset

    train_behaviour_policy(TASK, tmp_path / "run", 300, seed=0, config=TINY)  # default cache
    pol = behaviour_policies(TASK)
    index = json.loads((cache_dir(TASK) / "index.json").read_text())
    assert [s["step"] for s in index["snapshots"]] == [100, 200, 300]
    assert pol.expert["return_mean"] == max(s["return_mean"] for s in pol.snapshots)
    assert pol.medium["step"] <= pol.expert["step"]

    expert = make_dataset(TASK, "expert", episodes=1, seed=0, progress=False)
    assert expert.n_transitions == 1000 and expert.attrs["behaviour_snapshots"][0]["step"] == pol.expert["step"]
    assert "below the target" in expert.attrs["notes"]  # 300 steps do not make an expert
    replay = make_dataset(TASK, "medium-replay", episodes=2, seed=0, progress=False)
    policies = replay.attrs["episode_policies"]
    assert policies[0] == "uniform" and len(policies) == 2
    again = make_dataset(TASK, "medium-replay", episodes=2, seed=0, progress=False)
    assert replay.equals(again)
