"""`scoredec train --wandb`: an offline W&B run with the training's scalars, and a one-line
install hint where wandb is not installed (it is an optional extra)."""

import sys

import pytest

from scoredec.cli import main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

TINY = ["--device", "cpu", "--no-estimate", "--log_every", "5", "--policy.hidden", "8",
        "--policy.steps", "10", "--policy.batch_size", "8", "--method", "bc"]


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "bandit.h5"
    write_dataset(path, bandit.make_dataset(100, seed=0))
    return path


def test_without_wandb_installed_the_error_says_how_to_install_it(data_file, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)     # import wandb -> ImportError
    assert main(["train", "all", "--data", str(data_file), "--run", str(tmp_path / "r"), *TINY,
                 "--wandb", "offline"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'scoredec[wandb]'" in err


def test_offline_run_holds_the_training_scalars_without_network(data_file, tmp_path,
                                                               monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "r"
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(run), *TINY,
                 "--eval-every", "5", "--wandb", "offline"]) == 0
    (record,) = run.glob("wandb/offline-run-*/run-*.wandb")
    data = record.read_bytes()
    assert b"policy/bc" in data and b"eval/normalized" in data
    assert (run / "actors.safetensors").is_file()


def test_a_metrics_sink_sees_every_logged_scalar_while_inside(data_file, tmp_path):
    """What the W&B logger receives (runs.metrics_sink), checked without wandb installed."""
    from scoredec.runs import metrics_sink, read_metrics

    seen = []
    with metrics_sink(lambda stage, step, scalars: seen.append((stage, step, scalars))):
        assert main(["-q", "train", "all", "--data", str(data_file), "--run",
                     str(tmp_path / "r"), *TINY, "--eval-every", "5"]) == 0
    logged = [(r.pop("stage"), r.pop("step"), {k: v for k, v in r.items() if k != "time"})
              for r in read_metrics(tmp_path / "r")]
    assert seen == logged and {s for s, _, _ in seen} == {"policy", "eval"}
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(tmp_path / "r2"),
                 *TINY]) == 0
    assert len(seen) == len(logged)                      # nothing after the block
