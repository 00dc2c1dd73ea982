"""The stage-1 report (scoredec/behaviour_report.py): its numbers on models whose answer is known,
its shape and reproducibility on a tiny trained model, and `scoredec evaluate RUN --behaviour`."""

import json
import math

import numpy as np
import pytest
import torch

from scoredec.behavior import BehaviorConfig
from scoredec.behaviour_report import (NOISE_LEVELS, behaviour_report, denoising_by_noise_level,
                                       render_report, sample_spread, summary_for_cell)
from scoredec.cli import main
from scoredec.datagen.factory import make_dataset_file
from scoredec.data.hdf5 import read_dataset
from scoredec.pipeline import TrainConfig, load_product, train
from scoredec.policy import PolicyConfig

ROWS = 200          # of the 20-episode dataset's 500


@pytest.fixture(scope="module")
def spread_run(tmp_path_factory):
    """A tiny spread expert dataset and a tiny sequential behaviour model trained on it."""
    root = tmp_path_factory.mktemp("report")
    data = root / "spread.h5"
    make_dataset_file("spread", "expert", data, episodes=20, seed=0, progress=False)
    cfg = TrainConfig(method="omsd", seed=0, device="cpu", log_every=10, checkpoint_every=1000,
                      behavior=BehaviorConfig(arch="compact", hidden=16, compact_layers=2,
                                              batch_size=32, steps=20, sample_steps=4))
    run = root / "run"
    train(data, cfg, run, stages=("behavior",), progress=False)
    return data, run


def _report(spread_run, seed=0, **kw):
    data, run = spread_run
    product = load_product(run, "behavior")
    opts = {"episodes": 4, "num_envs": 2, "rows": ROWS, "within_rows": 16, "samples": 3, **kw}
    return behaviour_report(product.module, data, product.meta["env_id"], seed=seed, **opts)


def _without_seconds(report):
    return json.dumps({k: v for k, v in report.items() if k != "seconds"}, sort_keys=True)


def test_report_has_every_table_per_agent_with_finite_numbers(spread_run):
    report = _report(spread_run)
    json.dumps(report)                                   # plain JSON-able numbers
    assert report["mode"] == "sequential"
    closed = report["closed_loop"]
    assert closed["episodes"] == 4 and len(closed["returns"]) == 4
    assert math.isfinite(closed["normalized_mean"]) and math.isfinite(closed["normalized_std"])
    assert [r["t"] for r in report["denoising"]] == list(NOISE_LEVELS)
    for row in report["denoising"]:
        assert row["eps_mse"] >= 0 and math.isfinite(row["clean_error"])
        for key in ("eps_mse", "clean_error"):
            assert len(row["per_agent"][key]) == 3
            assert np.mean(row["per_agent"][key]) == pytest.approx(row[key], rel=1e-5)
    spread = report["spread"]
    assert (spread["rows"], spread["within_rows"], spread["samples"]) == (ROWS, 16, 3)
    for key in ("sample_std", "data_std", "sample_size", "data_size", "sample_error",
                "within_obs_std"):
        assert len(spread[key]) == 3 and all(math.isfinite(v) and v >= 0 for v in spread[key])
    text = render_report(report)
    assert "normalized" in text and "| 0.01 |" in text and "within-obs std" in text
    cell = summary_for_cell(report)
    assert "returns" not in cell["closed_loop"]
    assert cell["normalized_mean"] == closed["normalized_mean"]


def test_same_seed_same_report_other_seed_other_draws(spread_run):
    a, b = _report(spread_run, seed=3), _report(spread_run, seed=3)
    assert _without_seconds(a) == _without_seconds(b)
    c = _report(spread_run, seed=4)
    assert c["spread"]["sample_std"] != a["spread"]["sample_std"]


def test_data_spread_is_the_data_actions_std_per_agent(spread_run):
    """Asked for more rows than the dataset has, the report takes all of them: its data columns
    are then the whole dataset's per-agent std and mean |a|. A model that always samples zero
    has no spread, and its sample error is the data actions' mean size."""
    data, run = spread_run
    behavior = load_product(run, "behavior").module
    behavior.sample = lambda obs, **kw: torch.zeros(obs.shape[0], 3, 2)
    report = behaviour_report(behavior, data, "spread", episodes=2, num_envs=2, rows=10 ** 6,
                              within_rows=8, samples=2)
    act = read_dataset(data).actions.astype(np.float64)           # [T, 3, 2]
    spread = report["spread"]
    assert spread["rows"] == act.shape[0]
    assert spread["data_std"] == pytest.approx(act.std(0).mean(-1).tolist(), rel=1e-4)
    assert spread["data_size"] == pytest.approx(np.abs(act).mean((0, 2)).tolist(), rel=1e-4)
    assert spread["sample_error"] == pytest.approx(np.linalg.norm(act, axis=-1).mean(0).tolist(),
                                                   rel=1e-4)
    assert spread["sample_std"] == spread["within_obs_std"] == spread["sample_size"] == [0.0] * 3


def test_denoising_of_an_exact_and_of_a_zero_noise_model(spread_run):
    """An oracle that knows the data action has no error at any t; a model that predicts eps = 0
    has E||z||^2 = 2 per 2-d action and a clean-action error sigma_t / alpha_t E||z|| with
    E||z|| = sqrt(pi / 2) (a chi with 2 degrees of freedom)."""
    data, run = spread_run
    behavior = load_product(run, "behavior").module
    ds = read_dataset(data)
    obs, act = torch.as_tensor(ds.observations), torch.as_tensor(ds.actions)
    lay, vp = behavior.layout, behavior.vp

    def oracle(x_t, t, o, a):
        alpha, sigma = vp.alpha_sigma(t)
        return (x_t - alpha[..., None] * lay.targets(a)) / sigma[..., None]

    behavior.epsilon = oracle
    gen = torch.Generator().manual_seed(0)
    for row in denoising_by_noise_level(behavior, obs, act, gen, levels=(0.01, 0.5)):
        assert row["eps_mse"] < 1e-8 and row["clean_error"] < 1e-4
    behavior.epsilon = lambda x_t, t, o, a: torch.zeros_like(x_t)
    for row in denoising_by_noise_level(behavior, obs, act, gen, levels=(0.01, 0.05)):
        alpha, sigma = vp.alpha_sigma(torch.tensor(row["t"]))
        assert row["eps_mse"] == pytest.approx(2.0, rel=0.1)
        expected = float(sigma / alpha) * math.sqrt(math.pi / 2)
        assert row["clean_error"] == pytest.approx(expected, rel=0.1)
        assert row["per_agent"]["clean_error"] == pytest.approx([expected] * 3, rel=0.15)


def test_sample_spread_within_one_observation(spread_run):
    """Three samples of one observation from a model that returns its seed's noise differ;
    a deterministic one's do not."""
    _, run = spread_run
    behavior = load_product(run, "behavior").module
    obs, act = torch.zeros(5, 3, 6), torch.zeros(5, 3, 2)
    behavior.sample = lambda o, generator=None, **kw: torch.randn(o.shape[0], 3, 2,
                                                                   generator=generator)
    noisy = sample_spread(behavior, obs, act, torch.Generator().manual_seed(0), 5, 3)
    assert all(v > 0.3 for v in noisy["within_obs_std"])
    behavior.sample = lambda o, **kw: torch.ones(o.shape[0], 3, 2) * 0.5
    fixed = sample_spread(behavior, obs, act, torch.Generator().manual_seed(0), 5, 3)
    assert fixed["within_obs_std"] == [0.0] * 3 and fixed["sample_size"] == [0.5] * 3


@pytest.mark.parametrize("mode", ["sequential", "marginal", "joint"])
def test_every_decomposition_reports_per_agent(spread_run, mode):
    """The joint model's one row splits into its agents like the per-agent models' rows."""
    from scoredec.behavior import BehaviorModel
    from scoredec.layout import AgentSpec

    data, _ = spread_run
    ds = read_dataset(data)
    torch.manual_seed(0)
    behavior = BehaviorModel(AgentSpec(tuple(ds.obs_dims), tuple(ds.act_dims)), mode,
                             BehaviorConfig(arch="compact", hidden=16, compact_layers=2,
                                            sample_steps=2))
    report = behaviour_report(behavior, ds, "spread", episodes=2, num_envs=2, rows=32,
                              within_rows=4, samples=2)
    assert report["mode"] == mode
    for row in report["denoising"]:
        assert len(row["per_agent"]["clean_error"]) == 3
        assert np.mean(row["per_agent"]["eps_mse"]) == pytest.approx(row["eps_mse"], rel=1e-5)
    assert len(report["spread"]["within_obs_std"]) == 3


def test_bad_sizes_are_refused(spread_run):
    with pytest.raises(ValueError, match="samples"):
        _report(spread_run, samples=1)


def test_evaluate_behaviour_writes_the_report(spread_run, tmp_path, capsys):
    _, run = spread_run
    assert main(["-q", "evaluate", str(run), "--behaviour", "--episodes", "2", "--envs", "2",
                 "--rows", "64", "--samples", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "behaviour model sampled as a centralized policy" in out and "| agent |" in out
    report = json.loads((run / "behaviour_report.json").read_text())
    assert report["closed_loop"]["episodes"] == 2 and report["spread"]["rows"] == 64
    assert report["method"] == "omsd" and report["mode"] == "sequential"
    assert not (run / "evaluation.json").exists()        # the actors' file is not touched
    other = tmp_path / "r.json"
    assert main(["-q", "evaluate", str(run), "--behaviour", "--episodes", "2", "--rows", "16",
                 "--out", str(other)]) == 0
    assert json.loads(other.read_text())["spread"]["rows"] == 16


def test_a_run_without_a_behaviour_model_names_the_missing_file(spread_run, tmp_path, capsys):
    data, _ = spread_run
    run = tmp_path / "bc"
    cfg = TrainConfig(method="bc", seed=0, device="cpu", log_every=5, checkpoint_every=1000,
                      policy=PolicyConfig(hidden=8, layers=1, batch_size=16, steps=5))
    train(data, cfg, run, progress=False)
    assert main(["evaluate", str(run), "--behaviour"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'behavior.json'}" in err and "no finished behaviour model" in err
    assert main(["evaluate", str(run), "--data", str(data)]) == 2      # --data needs --behaviour
    assert "--behaviour" in capsys.readouterr().err
