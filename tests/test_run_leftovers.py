"""What a killed writer leaves in a run is cleared when the run is opened again: temporary files
of atomic writes, incomplete checkpoints, and metrics lines past the checkpoint it resumes from
(so metrics.jsonl never repeats a step)."""

from __future__ import annotations

import json
import shutil

import pytest

from scoredec.behavior import BehaviorConfig
from scoredec.critic import CriticConfig
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit
from scoredec.pipeline import TrainConfig, train
from scoredec.policy import PolicyConfig
from scoredec.runs import read_metrics

CFG = TrainConfig(
    seed=1, device="cpu", log_every=1, checkpoint_every=2,
    behavior=BehaviorConfig(arch="compact", hidden=8, batch_size=8, steps=6),
    critic=CriticConfig(hidden=8, layers=1, batch_size=8, steps=6),
    policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=6))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """(data file, an uninterrupted run of CFG on it)."""
    root = tmp_path_factory.mktemp("straight")
    write_dataset(root / "d.h5", bandit.make_dataset(200, seed=0))
    return root / "d.h5", train(root / "d.h5", CFG, root / "run", progress=False)


def records(run):
    """metrics.jsonl without the wall-clock times, in order."""
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run)]


def append_lines(run, lines):
    with open(run / "metrics.jsonl", "a") as f:
        f.write(lines)


def test_resume_clears_temporaries_and_incomplete_checkpoints(straight, tmp_path):
    data, _ = straight
    run = train(data, CFG, tmp_path / "run", budget=3, progress=False)   # stops in behaviour
    ckpts = run / "checkpoints"
    stray = [run / ".behavior.safetensors.k2j3h4.tmp", run / ".metrics.jsonl.abc.tmp",
             run / ".config.yaml.x1.tmp", run / ".run.json.q.tmp", run / ".actors.json.zz.tmp",
             ckpts / ".behavior-000000004.safetensors.r9.tmp",
             ckpts / "behavior-000000005.safetensors",    # tensors whose JSON never came
             ckpts / "critic-000000002.json"]             # a JSON without its tensors
    for p in stray:
        p.write_bytes(b"partial")
    foreign = run / ".evaluation.json.e1.tmp"              # an `evaluate` writing right now
    foreign.write_bytes(b"{")
    train(data, CFG, run, budget=1, resume=True, progress=False)
    assert [p for p in stray if p.exists()] == []
    assert foreign.exists()
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "behavior-000000003.json", "behavior-000000003.safetensors",
        "behavior-000000004.json", "behavior-000000004.safetensors", "latest.json"]


def test_metrics_after_the_resumed_checkpoint_are_cut(straight, tmp_path):
    data, done = straight
    run = train(data, CFG, tmp_path / "run", budget=3, progress=False)   # checkpoint at step 3
    # A killed process had logged steps 4 and 5 (other values) and torn the next line.
    append_lines(run, '{"step": 4, "stage": "behavior", "time": 1.0, "loss": 999.0}\n'
                      '{"step": 5, "stage": "behavior", "time": 1.0, "loss": 999.0}\n'
                      '{"step": 6, "stage": "beh')
    train(data, CFG, run, resume=True, progress=False)
    assert records(run) == records(done)    # each step once, with the resumed run's values


def test_metrics_of_a_stage_killed_before_its_first_checkpoint_are_cut(straight, tmp_path):
    data, done = straight
    run = train(data, CFG, tmp_path / "run", budget=6, progress=False)   # behaviour finished
    assert (run / "behavior.json").exists()
    # The critic ran 3 steps, logged them, and was killed before its first checkpoint.
    append_lines(run, "".join(json.dumps({"step": s, "stage": "critic", "time": 1.0,
                                          "loss": 999.0}) + "\n" for s in (1, 2, 3)))
    train(data, CFG, run, resume=True, progress=False)
    assert records(run) == records(done)


def test_a_finished_run_keeps_its_metrics(straight, tmp_path):
    data, done = straight
    run = tmp_path / "run"
    shutil.copytree(done, run)
    before = (run / "metrics.jsonl").read_bytes()
    train(data, CFG, run, resume=True, progress=False)   # every stage skipped
    assert (run / "metrics.jsonl").read_bytes() == before
