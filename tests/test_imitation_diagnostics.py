"""The imitation diagnostic: its error tables on known inputs, and end to end on a tiny run."""

import json

import pytest
import torch

from scoredec.behavior import BehaviorConfig
from scoredec.critic import CriticConfig
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit
from scoredec.experiments.imitation_diagnostics import error_by_magnitude, main
from scoredec.pipeline import TrainConfig, train
from scoredec.policy import PolicyConfig


def test_error_by_magnitude_bins_every_row_once():
    g = torch.Generator().manual_seed(5)
    data = torch.rand(37, 3, 2, generator=g) * 1.4 - 0.7
    pred = data + 0.1 * torch.randn(37, 3, 2, generator=g)
    rows = error_by_magnitude(pred, data)
    assert rows[0]["bin"] == "all" and rows[0]["count"] == 37 * 3
    assert sum(r["count"] for r in rows[1:]) == 37 * 3
    err = (pred - data).norm(dim=-1)
    assert rows[0]["error_mean"] == pytest.approx(float(err.mean()), rel=1e-6)
    assert error_by_magnitude(data, data)[0]["error_mean"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        error_by_magnitude(pred[:, :2], data)


def test_diagnostic_runs_on_a_finished_run(tmp_path, capsys):
    data = tmp_path / "bandit.h5"
    write_dataset(data, bandit.make_dataset(128, seed=0))
    cfg = TrainConfig(method="omsd", seed=1, device="cpu", log_every=5, checkpoint_every=10,
                      behavior=BehaviorConfig(arch="compact", hidden=16, compact_layers=2,
                                              batch_size=8, steps=10),
                      critic=CriticConfig(hidden=8, layers=1, batch_size=8, steps=10),
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=8, steps=10))
    run = tmp_path / "run"
    train(data, cfg, run, progress=False)
    out = tmp_path / "diag.json"
    assert main([str(run), "--data", str(data), "--rows", "50", "--samples", "2",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    entry = result["runs"][str(run)]
    assert entry["actors"][0]["count"] == 50 * 2                  # rows x agents
    assert len(entry["denoising"]) == 6
    assert all(r["eps_mse"] >= 0 for r in entry["denoising"])
    assert "| all | 100 |" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="no finished"):
        main([str(tmp_path), "--data", str(data)])
