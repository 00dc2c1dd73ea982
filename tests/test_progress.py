"""Training progress: log lines off a terminal, bars that stay on one, nothing with -q."""

import logging
import re

import pytest

from scoredec import progress
from scoredec.cli import main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit
from scoredec.progress import StageProgress, format_duration

TINY = ["--device", "cpu", "--log_every", "5", "--no-estimate", "--behavior.arch", "compact",
        "--behavior.hidden", "8", "--behavior.compact_layers", "1", "--behavior.batch_size", "8",
        "--behavior.steps", "30", "--critic.hidden", "8", "--critic.steps", "10",
        "--critic.batch_size", "8", "--policy.hidden", "8", "--policy.steps", "10",
        "--policy.batch_size", "8"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bandit.h5"
    write_dataset(path, bandit.make_dataset(100, seed=0))
    return path


def test_durations_read_like_an_eta():
    assert [format_duration(s) for s in (4.2, 455, 7500, 650_000)] == [
        "4s", "7m35s", "2h05m", "7.5 days"]


def test_off_a_terminal_a_line_every_n_seconds_with_step_rate_eta_and_loss(data_file, tmp_path,
                                                                           caplog):
    # under pytest stderr is not a terminal; --progress-every as small as it goes: every step
    with caplog.at_level(logging.INFO, logger="scoredec.progress"):
        assert main(["train", "all", "--data", str(data_file), "--run", str(tmp_path / "r"),
                     *TINY, "--progress-every", "1e-9"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "scoredec.progress"]
    step = re.compile(r"^behavior: step (\d+)/30 \(\d+%\), [\d.]+ steps/s, ETA \S+(; loss \S+)?$")
    steps = [int(m.group(1)) for ln in lines if (m := step.match(ln))]
    assert steps == list(range(1, 31))
    assert any(step.match(ln) and "; loss " in ln for ln in lines)   # after the first record
    assert lines[0] == "behavior: 30 steps"
    assert re.match(r"^behavior: done, 30 steps in \S+ \([\d.]+ steps/s\); loss ", lines[31])
    assert any(ln.startswith("policy: done, 10 steps") for ln in lines)


def test_quiet_prints_no_progress(data_file, tmp_path, caplog, capsys):
    with caplog.at_level(logging.INFO, logger="scoredec.progress"):
        assert main(["-q", "train", "all", "--data", str(data_file), "--run",
                     str(tmp_path / "r"), *TINY, "--progress-every", "1e-9"]) == 0
    assert not [r for r in caplog.records if r.name == "scoredec.progress"]
    assert capsys.readouterr().err == ""


def test_on_a_terminal_the_bar_stays_as_the_stages_summary(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_on_terminal", lambda: True)
    bar = StageProgress("behavior", 4, 0)
    for step in range(1, 5):
        bar.update(step)
    bar.set_metrics({"loss": 0.123456})
    bar.close()
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").rstrip("\n").split("\n")[-1]
    assert err.endswith("\n") and last.startswith("behavior: 100%") and "4/4" in last
    assert "loss=0.1235" in last


def test_progress_every_must_be_positive(capsys):
    assert main(["--progress-every", "0", "info"]) == 2
    assert "--progress-every must be > 0" in capsys.readouterr().err
