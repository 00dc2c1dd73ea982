"""What the command prints: global flags anywhere, a closed pipe, rounded numbers, the bandit
study's real defaults in its help, and train's time estimate."""

import logging
import re
import subprocess
import sys

import pytest

from scoredec import cli
from scoredec.cli import build_parser, main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit


@pytest.mark.parametrize("argv", [
    ["-q", "--traceback", "--progress-every", "5", "info"],
    ["info", "-q", "--traceback", "--progress-every", "5"],
    ["data", "-q", "info", "F", "--traceback", "--progress-every", "5"],
])
def test_global_flags_are_accepted_before_and_after_the_subcommand(argv):
    args = build_parser(argv).parse_args(argv)
    assert args.quiet and args.traceback and args.progress_every == 5 and not args.verbose


def test_global_flags_keep_their_defaults_when_not_given():
    args = build_parser().parse_args(["info"])
    assert (args.quiet, args.verbose, args.traceback, args.progress_every) == (False, False, False, 30)


def test_traceback_after_the_subcommand_shows_the_traceback(tmp_path):
    from scoredec.data.schema import DatasetError

    with pytest.raises(DatasetError, match="no such file"):
        main(["data", "info", str(tmp_path / "missing.h5"), "--traceback"])


def test_a_closed_pipe_ends_quietly():
    """`scoredec info | head -0`: the reader is gone before we write."""
    proc = subprocess.Popen([sys.executable, "-m", "scoredec.cli", "info"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.EXIT_BROKEN_PIPE
    assert err == ""


def test_sample_prints_rounded_numbers(tmp_path, capsys):
    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(200, seed=1))
    run = tmp_path / "run"
    assert main(["-q", "train", "stage1", "--data", str(data), "--run", str(run), "--device",
                 "cpu", "--behavior.arch", "compact", "--behavior.hidden", "8",
                 "--behavior.steps", "5", "--behavior.batch_size", "8", "--no-estimate"]) == 0
    capsys.readouterr()
    assert main(["-q", "sample", str(run), "--count", "20", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    agent_lines = [ln for ln in out.splitlines() if ln.strip().startswith("agent ")]
    assert len(agent_lines) == 2
    for number in re.findall(r"-?\d+\.\d+", " ".join(agent_lines)):
        assert len(number.split(".")[1]) == 3, out


def test_bandit_help_shows_the_defaults_the_study_uses(capsys):
    from scoredec.experiments.bandit import BanditConfig

    with pytest.raises(SystemExit):
        main(["bandit", "--help"])
    options = {" ".join(o.split()).split(" ", 1)[0]: " ".join(o.split())
               for o in capsys.readouterr().out.split("\n  -")[1:]}
    study = BanditConfig()
    for flag, value in (("--behavior.hidden", study.behavior.hidden),
                        ("--behavior.lr", study.behavior.lr),
                        ("--behavior.steps", study.behavior.steps),
                        ("--critic.steps", study.critic.steps),
                        ("--policy.beta", study.policy.beta),
                        ("--policy.hidden", study.policy.hidden)):
        option = options[flag[1:]]
        assert f" (default: {value!r})" in option, (flag, option)


def test_train_estimates_its_time_first_and_warns_over_an_hour(tmp_path, monkeypatch, caplog):
    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(100, seed=1))
    seen = {}

    def fake_estimate(method, data_path, config, remaining, steps=50):
        seen.update(method=method, remaining=remaining)
        return {"seconds": {"policy": 7200.0}, "steps_per_s": {"policy": 0.5}, "total": 7200.0}

    from scoredec import timing

    monkeypatch.setattr(timing, "estimate_run", fake_estimate)
    monkeypatch.setattr(timing, "PROBE_SHARE", 0)      # a probe even for this short sitting
    with caplog.at_level(logging.INFO, logger="scoredec"):
        assert main(["train", "all", "--method", "bc", "--data", str(data), "--run",
                     str(tmp_path / "r"), "--device", "cpu", "--policy.hidden", "8",
                     "--policy.steps", "3600", "--policy.batch_size", "8", "--budget", "4"]) == 0
    assert seen == {"method": "bc", "remaining": {"policy": 4}}     # this sitting: --budget
    warning = [r for r in caplog.records if r.levelno == logging.WARNING and "estimated" in r.getMessage()]
    assert len(warning) == 1 and "estimated 2h00m" in warning[0].getMessage()
    assert "over an hour" in warning[0].getMessage()


def test_the_estimate_probes_a_long_run_and_skips_a_short_one(tmp_path):
    from scoredec.config import config_to_dict
    from scoredec.pipeline import TrainConfig
    from scoredec.timing import estimate_run, remaining_steps, stage_steps

    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(100, seed=1))
    cfg = config_to_dict(TrainConfig(method="bc", device="cpu"))
    cfg["policy"].update(hidden=8, batch_size=8, steps=2000)
    steps = stage_steps("bc", cfg)
    assert steps == {"policy": 2000}
    assert remaining_steps(tmp_path / "no-run-yet", steps) == {"policy": 2000}
    est = estimate_run("bc", data, cfg, steps, steps=20)
    assert set(est["seconds"]) == {"policy"} and est["steps_per_s"]["policy"] > 0
    assert est["total"] == pytest.approx(2000 / est["steps_per_s"]["policy"])
    assert estimate_run("bc", data, cfg, {"policy": 100}, steps=20) is None   # under 20 probes
