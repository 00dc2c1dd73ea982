"""The scoredec command: help everywhere, the subcommands end to end on tiny inputs, clean errors."""

import json

import numpy as np
import pytest

from scoredec.cli import build_parser, main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

SUBCOMMANDS = ["bandit", "train", "evaluate", "sample", "data", "info"]
TINY = ["--behavior.arch", "compact", "--behavior.hidden", "16", "--behavior.steps", "20",
        "--behavior.batch_size", "16", "--critic.hidden", "8", "--critic.steps", "20",
        "--critic.batch_size", "16", "--policy.hidden", "8", "--policy.steps", "20",
        "--policy.batch_size", "16"]


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_help_explains_every_option(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    for action in sub._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"{command} {action.option_strings} has no help text"
    if command == "train":
        assert "--policy.beta" in text and "--behavior.arch" in text


def _all_parsers(parser, name="scoredec"):
    yield name, parser
    for group in parser._subparsers._group_actions if parser._subparsers else ():
        for sub_name, sub in group.choices.items():
            yield from _all_parsers(sub, f"{name} {sub_name}")


def test_help_names_each_default_once_and_never_none():
    for name, parser in _all_parsers(build_parser()):
        text = parser.format_help()
        for option in text.split("\n  -")[1:]:
            flat = " ".join(option.split())
            assert "(default: None)" not in flat, f"{name}: {flat}"
            assert flat.count("(default") <= 1, f"{name}: {flat}"


def test_info_runs(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "noise_embed" in out


def test_bandit_command_writes_table_and_picture(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["-q", "bandit", "--out", str(out), "--seeds", "1", "--workers", "1",
                 "--samples", "500", "--sampler_samples", "200", *TINY]) == 0
    text = capsys.readouterr().out
    assert "omsd" in text and "brpo-ind" in text
    assert (out / "bandit.png").stat().st_size > 10_000
    result = json.loads((out / "bandit.json").read_text())
    assert set(result["summary"]["methods"]) == {"omsd", "brpo-ind", "brpo-ctde"}


def test_train_evaluate_sample(tmp_path, capsys):
    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(300, seed=1))
    run = tmp_path / "run"
    assert main(["-q", "train", "all", "--data", str(data), "--run", str(run), *TINY]) == 0
    assert main(["-q", "evaluate", str(run), "--episodes", "3", "--envs", "2"]) == 0
    result = json.loads((run / "evaluation.json").read_text())
    assert result["episodes"] == 3 and "normalized_mean" in result
    assert main(["-q", "evaluate", str(run)]) == 0              # the defaults: 10 episodes
    assert json.loads((run / "evaluation.json").read_text())["episodes"] == 10
    assert main(["-q", "evaluate", str(run), "--behaviour", "--episodes", "3", "--rows", "50"]) == 0
    report = json.loads((run / "behaviour_report.json").read_text())
    assert report["closed_loop"]["episodes"] == 3 and len(report["spread"]["data_std"]) == 2
    assert main(["-q", "sample", str(run), "--count", "50", "--out", str(tmp_path / "s.npy")]) == 0
    samples = np.load(tmp_path / "s.npy", allow_pickle=False)
    assert samples.shape == (50, 2, 1) and np.abs(samples).max() <= 1
    assert "share a sign" in capsys.readouterr().out


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["train", "all", "--data", str(tmp_path / "missing.h5"), "--run",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "missing.h5" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists(), "a failed start must not leave a run directory"
    assert main(["evaluate", str(tmp_path / "nothing")]) == 2
    assert "no finished actors" in capsys.readouterr().err


def test_bad_flag_values_are_refused(capsys):
    with pytest.raises(SystemExit):
        main(["train", "all", "--data", "x", "--run", "y", "--method", "maddpg"])
    assert "maddpg" in capsys.readouterr().err


def test_data_info_prints_the_card(tmp_path, capsys):
    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(200, seed=2))
    assert main(["data", "info", str(data)]) == 0
    assert "Multimodality" in capsys.readouterr().out
    (tmp_path / "broken.h5").write_bytes(b"not hdf5")
    assert main(["data", "info", str(tmp_path / "broken.h5")]) == 2
    assert "broken.h5" in capsys.readouterr().err
