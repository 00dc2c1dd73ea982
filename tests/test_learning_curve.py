"""The learning-curve driver (scoredec/experiments/learning_curve.py) on a tiny spread run."""

import json

import pytest

from scoredec.config import save_config
from scoredec.datagen.factory import make_dataset_file
from scoredec.experiments.learning_curve import main
from scoredec.pipeline import TrainConfig, load_product
from scoredec.behavior import BehaviorConfig
from scoredec.critic import CriticConfig
from scoredec.policy import PolicyConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("curve")
    data = root / "spread.h5"
    make_dataset_file("spread", "expert", data, episodes=8, seed=0, progress=False)
    cfg = TrainConfig(seed=3, device="cpu", log_every=10,
                      behavior=BehaviorConfig(arch="compact", hidden=16, compact_layers=2,
                                              batch_size=16, sample_steps=2),
                      critic=CriticConfig(hidden=8, batch_size=16, steps=5),
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=16, steps=5))
    save_config(cfg, root / "cfg.yaml")
    return root, data


def test_points_are_written_once_and_resume(tiny):
    root, data = tiny
    args = ["--data", str(data), "--config", str(root / "cfg.yaml"), "--run", str(root / "run"),
            "--steps", "40", "--every", "20", "--episodes", "2", "--out", str(root / "c.jsonl")]
    main(args + ["--budget-minutes", "0"])   # the critic trains, no point fits in the budget
    assert not (root / "c.jsonl").exists() or (root / "c.jsonl").read_text() == ""
    main(args)
    rows = [json.loads(line) for line in (root / "c.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [20, 40]
    for r in rows:
        assert r["behaviour"]["closed_loop"]["episodes"] == 2
        assert r["actors_normalized"][0] is not None
    # the last point's snapshot is the finished model of the long run: its weight average
    last = load_product(root / "run" / "curve" / "step-000000040" / "actors", "behavior").module
    final = load_product(root / "run", "behavior").module
    for a, b in zip(last.state_dict().values(), final.state_dict().values()):
        assert (a == b).all()
    main(args)   # nothing left to do: no new line
    assert len((root / "c.jsonl").read_text().splitlines()) == 2


def test_steps_must_be_a_multiple_of_every(tiny):
    root, data = tiny
    with pytest.raises(ValueError, match="multiple"):
        main(["--data", str(data), "--config", str(root / "cfg.yaml"), "--run", str(root / "r2"),
              "--steps", "30", "--every", "20", "--out", str(root / "x.jsonl")])


def test_a_second_policy_config_reuses_the_snapshots(tiny):
    root, data = tiny
    from scoredec.config import load_config

    cfg = load_config(TrainConfig, root / "cfg.yaml")
    save_config(type(cfg)(**{**cfg.__dict__, "policy": PolicyConfig(hidden=8, layers=1,
                                                                    batch_size=16, steps=7)}),
                root / "cfg7.yaml")
    args = ["--data", str(data), "--run", str(root / "run"), "--steps", "40", "--every", "20",
            "--episodes", "2"]
    main(args + ["--config", str(root / "cfg.yaml"), "--out", str(root / "c.jsonl")])
    before = (root / "run" / "checkpoints").stat().st_mtime_ns
    main(args + ["--config", str(root / "cfg7.yaml"), "--out", str(root / "c7.jsonl"),
                 "--tag", "steps7"])
    assert len((root / "c7.jsonl").read_text().splitlines()) == 2
    assert (root / "run" / "checkpoints").stat().st_mtime_ns == before   # no behaviour retraining
    policy = load_product(root / "run" / "curve" / "step-000000020" / "steps7", "policy")
    assert policy.config.policy.steps == 7


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--every", "-1"), ("--episodes", "0"),
                                         ("--budget-minutes", "-1")])
def test_counts_below_one_are_refused_before_anything_runs(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path / "d.h5"), "--config", str(tmp_path / "c.yaml"),
              "--run", str(tmp_path / "run"), "--out", str(tmp_path / "o.jsonl"), flag, value])
    assert exit_.value.code == 2
    assert f"{flag} must be" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "o.jsonl").exists()
