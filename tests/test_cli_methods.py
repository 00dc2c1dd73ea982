"""Every method from `scoredec train --method`, and `scoredec suite --data FILE` on a user's
dataset, tiny, end to end through the command line."""

import json

import pytest
import torch
from safetensors.torch import load_file

from scoredec.cli import main
from scoredec.datagen.factory import make_dataset_file
from scoredec.methods import get_method

BASELINE_FLAGS = ["--device", "cpu", "--seed", "1", "--steps", "12", "--batch_size", "16",
                  "--critic_hidden", "8", "--actor_hidden", "8", "--log_every", "4",
                  "--checkpoint_every", "1000"]


@pytest.fixture(scope="module")
def spread_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "my-spread.h5"
    make_dataset_file("spread", "medium", path, episodes=8, seed=0, progress=False)
    return path


@pytest.mark.parametrize("method", ["iql", "matd3bc", "macql", "omar"])
def test_train_method_baseline_trains_and_evaluates(method, spread_file, tmp_path):
    run = tmp_path / method
    assert main(["-q", "train", "all", "--method", method, "--data", str(spread_file),
                 "--run", str(run), *BASELINE_FLAGS]) == 0
    meta = json.loads((run / "actors.json").read_text())["meta"]
    assert meta["method"] == method and meta["config"]["steps"] == 12
    assert main(["-q", "evaluate", str(run), "--episodes", "2", "--envs", "2"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["method"] == method


def test_train_method_iql_is_the_registrys_training(spread_file, tmp_path):
    """The command line and the suite's entry (the registry) train the same actors."""
    assert main(["-q", "train", "all", "--method", "iql", "--data", str(spread_file),
                 "--run", str(tmp_path / "cli"), *BASELINE_FLAGS]) == 0
    get_method("iql").train(spread_file, tmp_path / "registry", seed=1, progress=False,
                            overrides={"device": "cpu", "steps": 12, "batch_size": 16,
                                       "critic_hidden": 8, "actor_hidden": 8, "log_every": 4,
                                       "checkpoint_every": 1000})
    a = load_file(str(tmp_path / "cli" / "actors.safetensors"))
    b = load_file(str(tmp_path / "registry" / "actors.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_train_method_baseline_flags_and_stages_are_checked(spread_file, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:          # a TrainConfig flag is not IQL's
        main(["train", "all", "--method", "iql", "--data", str(spread_file), "--run",
              str(tmp_path / "r"), "--policy.beta", "0.1"])
    assert exit_.value.code == 2 and "--policy.beta" in capsys.readouterr().err
    assert main(["train", "stage1", "--method", "iql", "--data", str(spread_file), "--run",
                 str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--method iql trains one stage" in err and "train all" in err
    with pytest.raises(SystemExit):
        main(["train", "all", "--method", "nope", "--data", str(spread_file), "--run",
              str(tmp_path / "r")])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_train_help_lists_every_method_and_a_baselines_own_flags(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for method in ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal", "bc", "iql", "matd3bc", "macql",
                   "omar"):
        assert method in text
    with pytest.raises(SystemExit):
        main(["train", "all", "--method", "omar", "--help"])
    text = capsys.readouterr().out
    assert "--cql_alpha" in text and "--behavior.arch" not in text


def test_suite_data_runs_a_grid_on_the_users_file(spread_file, tmp_path):
    root = tmp_path / "suite"
    assert main(["-q", "suite", "--preset", "smoke", "--data", str(spread_file), "--methods",
                 "bc", "iql", "--seeds", "0", "1", "--root", str(root), "--no-estimate",
                 "--eval-every", "10"]) == 0
    cells = sorted(p.name for p in (root / "cells").glob("*.json"))
    assert cells == ["bc__spread__my-spread__s0.json", "bc__spread__my-spread__s1.json",
                     "iql__spread__my-spread__s0.json", "iql__spread__my-spread__s1.json"]
    assert not (root / "data").exists()            # the user's file, not a generated one
    rec = json.loads((root / "cells" / cells[0]).read_text())
    assert rec["dataset"] == {"file": str(spread_file.resolve()), "episodes": None, "seed": None}
    assert rec["eval_curve"]["metric"] == "normalized" and rec["eval_curve"]["step"] == [10, 20, 30]
    assert "my-spread" in (root / "TABLE.md").read_text()
    assert (root / "plots" / "curves_spread.png").is_file()


def test_suite_data_refuses_tasks_and_a_missing_file(spread_file, tmp_path, capsys):
    assert main(["suite", "--data", str(spread_file), "--tasks", "tag", "--root",
                 str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["suite", "--data", str(tmp_path / "none.h5"), "--root", str(tmp_path)]) == 2
    assert "none.h5" in capsys.readouterr().err
