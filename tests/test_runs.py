"""Run directories: no silent overwrite, resume only the same config, latest/prune, metrics log."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest
import torch
import yaml
from torch import nn

from scoredec.checkpoint import checkpoint_paths, save_checkpoint
from scoredec.config import param
from scoredec.runs import MetricsLogger, RunDir, RunError, config_diff, read_metrics

CONFIG = {"seed": 0, "stage1": {"lr": 3e-4, "hidden": (256, 256)}, "stage2": {"beta": 0.1}}


def _save(run: RunDir, tag: str) -> None:
    save_checkpoint(run.checkpoint_stem(tag), modules={"m": nn.Linear(2, 2)}, meta={"tag": tag})


def test_creates_layout_and_config(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    assert (tmp_path / "r" / "checkpoints").is_dir()
    stored = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert stored["stage1"]["hidden"] == [256, 256]
    assert run.checkpoint_stem("stage1-000400") == tmp_path / "r" / "checkpoints" / "stage1-000400"


def test_accepts_config_dataclass(tmp_path):
    @dataclass
    class C:
        seed: int = param(3, "seed")

    RunDir(tmp_path / "r", C())
    assert yaml.safe_load((tmp_path / "r" / "config.yaml").read_text()) == {"seed": 3}


def test_refuses_to_overwrite_run_with_checkpoints(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    RunDir(tmp_path / "r", CONFIG)  # no checkpoints yet: starting again is fine
    _save(run, "stage1-000001")
    with pytest.raises(RunError, match="--resume"):
        RunDir(tmp_path / "r", CONFIG)


def test_resume_same_config(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    _save(run, "stage1-000001")
    again = RunDir(tmp_path / "r", json.loads(json.dumps(CONFIG)), resume=True)  # tuples became lists
    assert again.latest("stage1") == run.checkpoint_stem("stage1-000001")


def test_resume_different_config_lists_keys(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    _save(run, "stage1-000001")
    changed = {
        "seed": 1,
        "stage1": {"lr": 3e-4, "hidden": (256, 128)},
        "stage2": {"beta": 0.1, "new": 1},
    }
    with pytest.raises(RunError, match=r"seed, stage1\.hidden, stage2\.new"):
        RunDir(tmp_path / "r", changed, resume=True)
    RunDir(tmp_path / "r", {**CONFIG, "seed": 1}, resume=True, allow_changes=("seed",))


def test_fields_added_later_read_as_their_old_value_in_a_stored_config(tmp_path):
    # A run stored before stage2.norm existed resumes while the field keeps the value runs had
    # then; another value, or a field not declared, is still a difference.
    run = RunDir(tmp_path / "r", CONFIG)
    _save(run, "stage1-000001")
    def absent(stored):                          # stage2.norm was False before it existed
        return {**stored, "stage2": {"norm": False, **stored["stage2"]}}
    newer = {**CONFIG, "stage2": {**CONFIG["stage2"], "norm": False}}
    with pytest.raises(RunError, match=r"stage2\.norm"):
        RunDir(tmp_path / "r", newer, resume=True)
    with pytest.raises(RunError, match=r"stage2\.norm"):
        RunDir(tmp_path / "r", {**CONFIG, "stage2": {**CONFIG["stage2"], "norm": True}}, resume=True,
               complete_stored=absent)
    RunDir(tmp_path / "r", newer, resume=True, complete_stored=absent)


def test_resume_without_previous_run_starts_fresh(tmp_path):
    run = RunDir(tmp_path / "new", CONFIG, resume=True)
    assert run.latest("stage1") is None


def test_config_diff():
    assert config_diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3, "d": 0}}) == ["a.c", "a.d"]
    assert config_diff({"a": 1}, {"a": 1}) == []


def test_latest_by_step_number_and_completeness(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    for tag in ("stage1-000400", "stage1-001200", "stage1-000800", "stage2-000100"):
        _save(run, tag)
    assert run.latest("stage1").name == "stage1-001200"
    assert run.latest("stage2").name == "stage2-000100"
    assert run.latest("stage3") is None
    checkpoint_paths(run.checkpoint_stem("stage1-001200"))[1].unlink()  # crashed before the JSON
    assert run.latest("stage1").name == "stage1-000800"


def test_latest_without_step_numbers_uses_record_order(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    for tag in ("best-b", "best-a"):
        _save(run, tag)
        run.record_latest(tag)
    _save(run, "best-b")
    os.utime(checkpoint_paths(run.checkpoint_stem("best-b"))[1], ns=(0, 0))  # an older mtime
    assert run.latest("best").name == "best-a"
    run.record_latest("best-b")
    assert run.latest("best").name == "best-b"
    assert json.loads((run.checkpoints / "latest.json").read_text())["latest"] == "best-b"


def test_record_latest_refuses_incomplete(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    with pytest.raises(RunError, match="incomplete"):
        run.record_latest("stage1-000001")


def test_prune_keeps_newest(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    for step in (1, 2, 3, 4):
        _save(run, f"stage1-{step:06d}")
        run.record_latest(f"stage1-{step:06d}")
    _save(run, "stage2-000001")
    orphan = run.checkpoints / "stage1-000005.safetensors"
    orphan.write_bytes(b"partial")
    (run.checkpoints / ".stage1-000006.safetensors.abc.tmp").write_bytes(b"partial")
    assert run.prune("stage1", keep=2) == ["stage1-000001", "stage1-000002"]
    names = sorted(p.name for p in run.checkpoints.iterdir())
    assert names == [
        "latest.json",
        "stage1-000003.json",
        "stage1-000003.safetensors",
        "stage1-000004.json",
        "stage1-000004.safetensors",
        "stage2-000001.json",
        "stage2-000001.safetensors",
    ]
    assert run.latest("stage1").name == "stage1-000004"


def test_invalid_tag(tmp_path):
    run = RunDir(tmp_path / "r", CONFIG)
    for tag in ("", "a/b", ".hidden", "latest"):
        with pytest.raises(ValueError):
            run.checkpoint_stem(tag)


def test_metrics_jsonl_and_tensorboard(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=True) as logger:
        logger.log(1, "stage1", loss=torch.tensor(0.5), lr=3e-4)
        logger.log(2, "stage1", loss=float("nan"))
        # flushed per line: readable while the logger is open
        assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
        with pytest.raises(ValueError, match="reserved"):
            logger.log(3, "stage1", time=1.0)
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert recs[0]["loss"] == 0.5 and recs[0]["stage"] == "stage1" and recs[1]["loss"] is None
    assert any((tmp_path / "tensorboard").iterdir())


def test_metrics_without_tensorboard(tmp_path, monkeypatch, caplog):
    import builtins

    real_import = builtins.__import__

    def no_tb(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError("no tensorboard")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tb)
    with MetricsLogger(tmp_path) as logger:
        logger.log(1, "s", x=1.0)
    assert "TensorBoard unavailable" in caplog.text
    assert not (tmp_path / "tensorboard").exists() and len(read_metrics(tmp_path)) == 1


def test_truncate_after_on_resume(tmp_path):
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        for step in (100, 200, 300):
            logger.log(step, "stage1", loss=1.0)
        for step in (100, 200):
            logger.log(step, "stage2", loss=2.0)
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 300, "stage": "stage2", "lo')  # torn by a crash
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        assert logger.truncate_after("stage2", 100) == 1  # the torn line went on open
        logger.log(200, "stage2", loss=3.0)
    assert [(r["stage"], r["step"]) for r in read_metrics(tmp_path)] == [
        ("stage1", 100),
        ("stage1", 200),
        ("stage1", 300),
        ("stage2", 100),
        ("stage2", 200),
    ]
    assert read_metrics(tmp_path, stage="stage2")[-1]["loss"] == 3.0


def test_torn_last_line_dropped_on_open(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "stage": "s"}\n{"st')
    with MetricsLogger(tmp_path, tensorboard=False) as logger:
        logger.log(2, "s", x=1.0)
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_read_metrics_torn_last_line_skipped_bad_middle_line_raises(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "stage": "s"}\n{"st')
    assert len(read_metrics(tmp_path)) == 1
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "stage": "s"}\n{"st\n{"step": 2, "stage": "s"}\n'
    )
    with pytest.raises(ValueError, match="line 2"):
        read_metrics(tmp_path)
