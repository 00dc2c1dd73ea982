"""Any number of agents end to end (issue 18): spread data at N = 2, 4, 6 with the count and
measured reference returns recorded in the dataset, trained, evaluated in the environment the
run was trained on and scored against the dataset's references, and a suite cell at that count;
one-line refusals of another task or count; 3-agent data unchanged."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from scoredec.actors import Actors
from scoredec.cli import main
from scoredec.data.card import episode_returns, normalized_score
from scoredec.data.hdf5 import read_dataset, write_dataset
from scoredec.data.schema import DatasetError
from scoredec.datagen.factory import make_dataset
from scoredec.envs import make_env
from scoredec.envs.mpe import REFERENCE_RETURNS
from scoredec.envs.mpe.references import measure_spread_references, spread_reference_returns
from scoredec.envs.scenario import check_agents, dataset_scenario, reference_returns
from scoredec.layout import AgentSpec
from scoredec.rollout import evaluate, trained_env
from scoredec.suite.grid import split_task, task_label
from scoredec.suite.presets import get_preset
from scoredec.suite.table import render_table, summarize

TINY = ["--device", "cpu", "--behavior.arch", "compact", "--behavior.hidden", "16",
        "--behavior.compact_layers", "2", "--behavior.steps", "20", "--behavior.batch_size", "16",
        "--critic.hidden", "8", "--critic.steps", "20", "--critic.batch_size", "16",
        "--policy.hidden", "8", "--policy.steps", "20", "--policy.batch_size", "16"]


def _make(path, n, quality="medium", episodes=8, task="spread"):
    return main(["-q", "data", "make", task, quality, "--agents", str(n), "--episodes",
                 str(episodes), "--seed", "3", "--out", str(path)])


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("n", [2, 4, 6])
def test_make_train_evaluate_and_a_suite_cell_at_n_agents(tmp_path, capsys, n):
    data, run = tmp_path / "d.h5", tmp_path / "run"
    assert _make(data, n) == 0
    assert f"spread/medium with {n} agents" in capsys.readouterr().out
    refs, measurement = spread_reference_returns(n)
    ds = read_dataset(data)
    assert ds.n_agents == n and ds.obs_dims == (4 + 2 * n + 4 * (n - 1),) * n
    assert ds.scenario == {"n_agents": n, "n_landmarks": n}
    assert ds.reference_returns == refs and ds.attrs["reference_measurement"] == measurement
    card = json.loads(data.with_suffix(".card.json").read_text())
    assert card["reference_returns"] == refs and card["n_agents"] == n
    assert len(card["multimodality"]["pairs"]) == n * (n - 1) // 2
    assert card["multimodality"]["recorded_modes"]["matches_episodes"]
    assert all(len(mode) == n for mode in card["multimodality"]["recorded_modes"]["counts"])
    assert data.with_suffix(".card.png").stat().st_size > 10_000
    assert "measured at this agent count" in data.with_suffix(".card.md").read_text()

    assert main(["-q", "train", "all", "--data", str(data), "--run", str(run), *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--episodes", "4", "--envs", "4"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(f"spread ({n} agents) omsd: return") and "normalized" in line
    result = json.loads((run / "evaluation.json").read_text())
    assert result["env_kwargs"] == {"n_agents": n} and result["reference_returns"] == refs
    returns = np.array(result["returns"])
    assert result["normalized_mean"] == pytest.approx(normalized_score(returns, refs).mean())

    root = tmp_path / "suite"
    assert main(["-q", "suite", "--preset", "smoke", "--agents", str(n), "--methods", "omsd",
                 "--root", str(root), "--no-table"]) == 0
    key = f"omsd__spread-n{n}__medium__s0"
    rec = json.loads((root / "cells" / f"{key}.json").read_text())
    assert rec["cell"]["task"] == f"spread-n{n}" and rec["reference_returns"] == refs
    assert np.isfinite(rec["normalized_mean"]) and rec["evaluation"]["episodes"] == 5
    assert len(rec["behaviour"]["spread"]["data_std"]) == n
    assert rec["behaviour"]["closed_loop"]["reference_returns"] == refs
    assert read_dataset(root / "data" / f"spread-n{n}-medium-20ep-s0.h5").n_agents == n
    table = render_table(summarize([rec]))
    assert f"| spread-n{n} | medium |" in table


@pytest.fixture(scope="module")
def bc_run_4(tmp_path_factory):
    """A 4-agent spread run (BC: one stage) and a 3-agent dataset beside it."""
    tmp = tmp_path_factory.mktemp("agents")
    assert _make(tmp / "d4.h5", 4, "expert", episodes=4) == 0
    assert _make(tmp / "d3.h5", 3, "expert", episodes=4) == 0
    run = tmp / "bc4"
    assert main(["-q", "train", "all", "--data", str(tmp / "d4.h5"), "--run", str(run),
                 "--method", "bc", *TINY]) == 0
    return run, tmp / "d3.h5"


@pytest.mark.parametrize("argv, words", [
    (["--task", "tag"], ["trained on spread with 4 agents", "evaluated on tag"]),
    (["--task", "world"], ["spread", "world"]),
    (["--task", "halfcheetah-2x3"], ["spread", "halfcheetah-2x3"]),
    (["--agents", "3"], ["trained on spread with 4 agents", "evaluated with 3"]),
    (["--task", "spread", "--agents", "6"], ["4 agents", "with 6"]),
])
def test_evaluate_refuses_another_task_or_agent_count_in_one_line(bc_run_4, capsys, argv, words):
    run, _ = bc_run_4
    assert main(["evaluate", str(run), *argv]) == 2
    err = _one_line_error(capsys)
    assert all(w in err for w in words), err


def test_evaluate_takes_the_runs_own_task_and_count_when_named(bc_run_4, capsys):
    run, _ = bc_run_4
    assert main(["-q", "evaluate", str(run), "--task", "simple_spread", "--agents", "4",
                 "--episodes", "2", "--envs", "2"]) == 0
    assert json.loads((run / "evaluation.json").read_text())["env_kwargs"] == {"n_agents": 4}


def test_sample_refuses_data_of_another_agent_count(tmp_path, capsys):
    data3, data4, run = tmp_path / "d3.h5", tmp_path / "d4.h5", tmp_path / "run"
    assert _make(data3, 3, episodes=4) == 0 and _make(data4, 4, episodes=4) == 0
    small = [a if a != "20" else "5" for a in TINY]
    assert main(["-q", "train", "stage1", "--data", str(data4), "--run", str(run), *small]) == 0
    assert main(["sample", str(run), "--data", str(data3), "--count", "4"]) == 2
    err = _one_line_error(capsys)
    assert "d3.h5" in err and "3 agents" in err and "takes 4" in err


def test_a_policy_that_does_not_fit_the_environment_is_one_line():
    # a run whose dataset names no known task (imported from elsewhere) takes --task; the
    # widths are then checked before any step
    meta = {"env_id": "my-particles", "actors": {"obs_dims": [18] * 3}}
    target = trained_env(meta, task="tag")
    assert (target.env_id, target.env_kwargs) == ("tag", {"n_agents": 3})
    actors = Actors(AgentSpec((18,) * 3, (2,) * 3), hidden=8)
    with pytest.raises(ValueError, match=r"observation widths \[18, 18, 18\].* tag has 3 agents "
                                         r"with observation widths \[16, 16, 16\]"):
        evaluate(actors, **target.evaluate_kwargs(), episodes=1, num_envs=1)
    with pytest.raises(ValueError, match="trained on spread; it cannot be evaluated on tag"):
        trained_env({"env_id": "spread"}, task="tag")


def test_runs_saved_before_the_count_was_recorded_still_get_their_environment():
    # products of older runs hold no scenario and no references: the count comes from the
    # actors' widths, the references from the environment (measured at N != 3)
    target = trained_env({"env_id": "spread", "actors": {"obs_dims": [26] * 4}})
    assert (target.n_agents, target.env_kwargs, target.reference_returns) == (4, {"n_agents": 4}, None)
    env = make_env("spread", 2, **target.env_kwargs)
    assert env.reference_returns == spread_reference_returns(4)[0]
    assert make_env("spread", 2).reference_returns == REFERENCE_RETURNS["spread"]


def test_three_agent_data_is_unchanged_and_older_files_read_as_what_they_have(tmp_path):
    default = make_dataset("spread", "medium", episodes=5, seed=3, progress=False)
    assert make_dataset("spread", "medium", episodes=5, seed=3, progress=False,
                        n_agents=3).equals(default)
    assert "scenario" not in default.attrs and "reference_measurement" not in default.attrs
    assert default.scenario == {"n_agents": 3} and default.reference_returns == REFERENCE_RETURNS["spread"]
    path = tmp_path / "old.h5"
    write_dataset(path, default)
    assert read_dataset(path).scenario == {"n_agents": 3}
    assert dataset_scenario(read_dataset(path)) == {"n_agents": 3, "n_landmarks": 3}
    tag = make_dataset("tag", "random", episodes=2, seed=3, progress=False)
    assert dataset_scenario(tag) == {"n_agents": 3, "n_adversaries": 3, "n_good": 1,
                                     "n_landmarks": 2}
    four = make_dataset("spread", "random", episodes=2, seed=3, progress=False, n_agents=4)
    bad = dataclasses.replace(four, attrs={**four.attrs, "scenario": {"n_agents": 3}})
    with pytest.raises(DatasetError, match=r"field 'attrs': 'scenario' says n_agents 3, "
                                           r"observations have 4"):
        write_dataset(tmp_path / "bad.h5", bad)


def test_scores_at_four_agents_are_against_their_own_references():
    expert = make_dataset("spread", "expert", episodes=40, seed=5, progress=False, n_agents=4)
    random = make_dataset("spread", "random", episodes=40, seed=5, progress=False, n_agents=4)
    score = {name: normalized_score(episode_returns(ds), ds.reference_returns).mean()
             for name, ds in (("expert", expert), ("random", random))}
    # the scripted expert is the expert reference (100), uniform actions the random one (0);
    # the std of 40 episodes' mean is about 2.5 points
    assert 88 < score["expert"] < 112 and -12 < score["random"] < 12
    # the 3-agent references would put the random 4-agent data far below zero
    assert normalized_score(episode_returns(random), REFERENCE_RETURNS["spread"]).mean() < -5


def test_reference_measurement_is_seeded_with_a_stated_standard_error():
    a = measure_spread_references(4, episodes=200, seed=1)
    assert a == measure_spread_references(4, episodes=200, seed=1)
    for policy in ("random", "expert"):
        s = a[policy]
        assert s["episodes"] == 200 and s["stderr"] == pytest.approx(s["std"] / math.sqrt(200))
    assert a["random"]["mean"] + 20 * a["random"]["stderr"] < a["expert"]["mean"]
    assert reference_returns("spread", 3) == REFERENCE_RETURNS["spread"]       # published
    assert reference_returns("tag") == REFERENCE_RETURNS["tag"]


@pytest.mark.parametrize("task, n, words", [
    ("spread", 7, "spread takes 2 to 6 agents, got 7"),
    ("spread", 1, "spread takes 2 to 6 agents, got 1"),
    ("tag", 4, "tag has exactly 3 learned predators"),
    ("world", 2, "world has exactly 3 learned predators"),
    ("halfcheetah-2x3", 3, "halfcheetah-2x3 has 2 agents by its layout"),
])
def test_data_make_refuses_counts_a_task_does_not_take(tmp_path, capsys, task, n, words):
    assert _make(tmp_path / "x.h5", n, task=task) == 2
    assert words in _one_line_error(capsys)
    assert not (tmp_path / "x.h5").exists()


def test_suite_labels_and_refusals(tmp_path, capsys):
    assert task_label("spread", 4) == "spread-n4" and task_label("spread", 3) == "spread"
    assert split_task("spread-n4") == ("spread", 4) and split_task("halfcheetah-2x3") == (
        "halfcheetah-2x3", None)
    assert get_preset("smoke", n_agents=4).grid_tasks() == ("spread-n4",)
    assert get_preset("smoke").grid_tasks() == ("spread",)
    assert check_agents("tag", None) == 3 and check_agents("halfcheetah-6x1", None) == 6
    assert main(["suite", "--preset", "smoke", "--tasks", "spread", "tag", "--agents", "4",
                 "--root", str(tmp_path)]) == 2
    assert "tag has exactly 3 learned predators" in _one_line_error(capsys)
    assert not (tmp_path / "cells").exists()


def test_the_pettingzoo_view_carries_the_references_of_its_count():
    pytest.importorskip("pettingzoo")
    from scoredec.envs.pettingzoo_mpe import MPEParallelEnv

    assert MPEParallelEnv("spread", n_agents=4).reference_returns == spread_reference_returns(4)[0]
    assert MPEParallelEnv("spread").reference_returns == REFERENCE_RETURNS["spread"]
    assert MPEParallelEnv("spread", n_agents=8).reference_returns is None   # no expert beyond 6
