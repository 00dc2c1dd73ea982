"""`scoredec suite`: the smoke preset end to end, skipping done cells, shards, cell records,
failing cells, and the table's arithmetic on hand-made cells."""

import dataclasses
import json

import numpy as np
import torch
import pytest

from scoredec.cli import main
from scoredec.methods import config_with
from scoredec.pipeline import TrainConfig
from scoredec.suite import grid
from scoredec.suite.grid import Cell, make_cells, parse_shard, shard
from scoredec.suite.presets import BETA, get_preset
from scoredec.suite.run_cell import resolve_overrides
from scoredec.suite.table import load_cells, render_table, summarize, write_table

REQUIRED = {"key", "cell", "overrides", "seed", "normalized_mean", "normalized_std", "return_mean",
            "return_std", "curve", "stages", "seconds", "steps_per_s", "hardware", "versions",
            "centralized", "evaluation", "dataset", "preset"}


def test_smoke_preset_end_to_end_then_skips_done_cells(tmp_path):
    root = tmp_path / "results"
    argv = ["-q", "suite", "--preset", "smoke", "--methods", "omsd", "bc", "--root", str(root)]
    assert main(argv) == 0
    cells = sorted(p.name for p in (root / "cells").glob("*.json"))
    assert cells == ["bc__spread__medium__s0.json", "omsd__spread__medium__s0.json"]
    rec = json.loads((root / "cells" / cells[1]).read_text())
    assert REQUIRED <= rec.keys()
    assert rec["cell"] == {"method": "omsd", "task": "spread", "quality": "medium", "seed": 0}
    assert np.isfinite(rec["normalized_mean"]) and rec["evaluation"]["episodes"] == 5
    assert rec["evaluation"]["decentralized"] is True
    assert rec["overrides"]["policy"]["beta"] == BETA["medium"]
    assert set(rec["stages"]) == {"behavior", "critic", "policy"}
    assert rec["curve"]["stage"] == "policy" and len(rec["curve"]["step"]) == len(rec["curve"]["value"]) > 0
    assert {"scoredec", "torch", "python"} <= rec["versions"].keys()
    behaviour = rec["behaviour"]                   # the stage-1 report, on the actors' episodes
    assert behaviour["mode"] == "sequential" and behaviour["seed"] == rec["evaluation"]["seed"]
    assert behaviour["closed_loop"]["episodes"] == 5 and np.isfinite(behaviour["normalized_mean"])
    assert len(behaviour["denoising"]) > 0 and len(behaviour["spread"]["data_std"]) == 3
    assert "returns" not in behaviour["closed_loop"]
    assert json.loads((root / "cells" / cells[0]).read_text())["behaviour"] is None     # bc
    table = (root / "TABLE.md").read_text()
    assert "| spread | medium |" in table and "omsd" in table and "bc" in table
    assert "| task | quality | omsd (sequential) | bc (actors) |" in table
    assert (root / "plots" / "bars_spread.png").is_file()

    stamps = {p.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*.json")}
    assert main([*argv, "--no-table"]) == 0        # everything done: nothing retrained
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (root / "cells").glob("*.json")}


def test_shards_partition_the_grid():
    cells = make_cells(["omsd", "bc", "brpo-ind"], ["spread", "tag"], ["random", "expert"], [0, 1, 2])
    assert len(cells) == len(set(cells)) == 36
    parts = [shard(cells, i, 2) for i in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert sorted(parts[0] + parts[1]) == sorted(cells)
    three = [set(shard(cells, i, 3)) for i in range(3)]
    assert sum(map(len, three)) == 36 and set().union(*three) == set(cells)
    assert make_cells(["omsd", "bc"], ["spread"], ["expert"], [0]) == \
        make_cells(["omsd", "bc"], ["spread"], ["expert"], [0])   # same order everywhere
    assert parse_shard("1/2") == (1, 2)
    for bad in ("2/2", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="shard"):
            parse_shard(bad)
    assert Cell.from_key("brpo-jal__world__medium-replay__s2") == Cell("brpo-jal", "world",
                                                                       "medium-replay", 2)


def test_a_failing_cell_writes_nothing_and_the_grid_goes_on(tmp_path, monkeypatch, capsys):
    import scoredec.suite.run_cell as rc

    def fake(cell, preset, root, *, resume, progress):
        if cell.method == "omsd":
            raise RuntimeError("boom")
        rec = {"key": cell.key, "normalized_mean": 1.0, "normalized_std": 0.0, "return_mean": 0.0,
               "seconds": {"total": 1.0}}
        grid.cell_path(root, cell).parent.mkdir(parents=True, exist_ok=True)
        grid.cell_path(root, cell).write_text(json.dumps(rec))
        return rec

    monkeypatch.setattr(rc, "run_cell", fake)
    code = main(["-q", "suite", "--preset", "smoke", "--methods", "omsd", "bc", "--no-table",
                 "--root", str(tmp_path)])
    assert code == 1
    assert "omsd__spread__medium__s0: RuntimeError: boom" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["bc__spread__medium__s0.json"]


def test_cpu_preset_overrides_are_valid_configs_with_beta_per_quality():
    preset = get_preset("cpu", tuned=False)     # DESIGN.md's betas; tuned ones: test below
    assert preset.qualities == ("random", "medium-replay", "medium", "expert")
    assert {"spread", "tag", "world"} <= set(preset.tasks) and preset.seeds == (0, 1, 2)
    betas = []
    for method in ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal", "bc"):
        for q in preset.qualities:
            ov = resolve_overrides(preset, Cell(method, "spread", q, 0))
            cfg = config_with(TrainConfig, ov, method=method, seed=0)
            if method == "omsd":
                betas.append(cfg.policy.beta)
    assert betas == [BETA[q] for q in preset.qualities] and betas[0] > betas[-1]
    from scoredec.baselines.iql_awr import IQLConfig
    from scoredec.baselines.macql import CQLConfig
    from scoredec.baselines.matd3bc import TD3BCConfig
    from scoredec.baselines.omar import OMARConfig

    for method, cls in (("iql", IQLConfig), ("matd3bc", TD3BCConfig), ("macql", CQLConfig),
                        ("omar", OMARConfig)):
        cfg = config_with(cls, resolve_overrides(preset, Cell(method, "spread", "expert", 0)))
        assert cfg.steps == preset.baseline_steps
    # HalfCheetah: OMAR's MaMuJoCo settings (CEM search, policy samples, discount 0.99).
    cheetah = {m: config_with(cls, resolve_overrides(preset, Cell(m, "halfcheetah-2x3", "medium", 0)))
               for m, cls in (("macql", CQLConfig), ("omar", OMARConfig))}
    assert cheetah["omar"].search == "cem" and cheetah["omar"].omar_samples == 20
    assert all(c.policy_samples and c.gamma == 0.99 for c in cheetah.values())
    # ... and the OMSD family's behaviour models standardize observations there (not on MPE;
    # BC has no behaviour model).
    for m in ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal"):
        on = {t: config_with(TrainConfig, resolve_overrides(preset, Cell(m, t, "expert", 0)), method=m,
                             seed=0).behavior.obs_norm for t in ("halfcheetah-2x3", "spread")}
        assert on == {"halfcheetah-2x3": True, "spread": False}
    assert "obs_norm" not in resolve_overrides(preset, Cell("bc", "halfcheetah-2x3", "expert", 0))["behavior"]
    spread = config_with(OMARConfig, resolve_overrides(preset, Cell("omar", "spread", "medium", 0)))
    assert spread.search == "softmax" and not spread.policy_samples and spread.gamma == 0.95
    long = get_preset("cpu-long")
    assert long.pipeline["policy"]["steps"] == 5 * preset.pipeline["policy"]["steps"]
    assert long.method_overrides["omar"]["steps"] == 5 * preset.method_overrides["omar"]["steps"]


def test_preset_sizes_per_task():
    preset = get_preset("cpu", tasks=("spread", "halfcheetah-2x3"))
    preset = dataclasses.replace(preset, task_episodes={"halfcheetah-2x3": {"expert": 7}},
                                 task_eval_episodes={"halfcheetah-2x3": 3})
    assert preset.episodes_for("spread", "expert") == preset.episodes["expert"]
    assert preset.episodes_for("halfcheetah-2x3", "expert") == 7
    assert preset.eval_episodes_for("spread") == 100 and preset.eval_episodes_for("halfcheetah-2x3") == 3


def _cell(method, task, quality, seed, score, seconds=10.0, centralized=False):
    return {"key": Cell(method, task, quality, seed).key,
            "cell": {"method": method, "task": task, "quality": quality, "seed": seed},
            "normalized_mean": score, "normalized_std": 1.0, "return_mean": 0.0,
            "centralized": centralized, "seconds": {"total": seconds}, "curve": None}


def test_table_averages_seeds_and_marks_centralized_methods(tmp_path):
    cells = [_cell("omsd", "spread", "expert", s, v) for s, v in enumerate([10.0, 20.0, 30.0])]
    cells += [_cell("omsd", "spread", "random", s, v) for s, v in enumerate([0.0, 2.0, 4.0])]
    cells += [_cell("brpo-jal", "spread", "expert", s, v, centralized=True)
              for s, v in enumerate([50.0, 70.0])]
    (tmp_path / "cells").mkdir()
    for c in cells:
        (tmp_path / "cells" / f"{c['key']}.json").write_text(json.dumps(c))
    summary = summarize(load_cells(tmp_path))
    assert summary.rows == [("spread", "random"), ("spread", "expert")]
    text = render_table(summary)
    std = np.std([10.0, 20.0, 30.0])
    assert f"| spread | expert | 20.0 ± {std:.1f} | 60.0 ± 10.0 (n=2) |" in text
    assert "| spread | random | 2.0 ± 1.6 | – |" in text
    assert "| **average** |  | **11.0** | **60.0** (1/2 rows) |" in text   # (20 + 2) / 2
    assert "brpo-jal\u2020" in text
    assert "| omsd | 6 | 1.0 min | 10 s | – |" in text
    assert "Beside the published numbers" not in text     # no method with a published column
    written = write_table(tmp_path, plots=False)
    assert written["table"].read_text() == text


def test_table_shows_behaviour_models_as_policies_where_cells_record_them(tmp_path):
    """Cells with the stage-1 report get a section beside BC's actors; cells written before it
    (no "behaviour" key, or None) still render, and a table of such cells alone has none."""
    old = [_cell("omsd", "spread", "expert", s, v) for s, v in enumerate([10.0, 20.0])]
    old += [_cell("bc", "spread", "expert", s, v) for s, v in enumerate([80.0, 90.0])]
    old += [_cell("omsd", "tag", "expert", 0, 5.0)]
    before = render_table(summarize(old))
    assert "Behaviour model as a policy" not in before
    new = [dict(c, behaviour={"mode": "sequential", "normalized_mean": b})
           for c, b in zip(old[:2], [30.0, 50.0])]
    jal = dict(_cell("brpo-jal", "spread", "expert", 0, 70.0, centralized=True),
               behaviour={"mode": "joint", "normalized_mean": 60.0})
    bc_none = dict(old[2], behaviour=None)
    text = render_table(summarize([*new, bc_none, old[3], old[4], jal]))
    assert "## Behaviour model as a policy (centralized)" in text
    assert "| task | quality | omsd (sequential) | brpo-jal (joint) | bc (actors) |" in text
    assert "| spread | expert | 40.0 ± 10.0 | 60.0 ± 0.0 (n=1) | 85.0 ± 5.0 |" in text
    assert "| tag | expert | – | – | – |" in text
    assert "| **average** |  | **40.0** (1/2 rows) | **60.0** (1/2 rows) | **85.0** (1/2 rows) |" in text
    assert render_table(summarize([dict(c, behaviour=None) for c in old])) == before


def test_table_puts_published_numbers_beside_ours_and_counts_shared_stages_once(tmp_path):
    cells = [_cell("omar", "spread", "expert", s, v) for s, v in enumerate([90.0, 100.0])]
    shared = _cell("omsd", "spread", "expert", 0, 50.0, seconds=10.0)
    shared["seconds"]["standalone"] = 25.0       # 15 s of stages copied from another cell
    shared["seconds"]["cpu"] = 8.0               # its own process's CPU time
    (tmp_path / "cells").mkdir()
    for c in cells + [shared]:
        (tmp_path / "cells" / f"{c['key']}.json").write_text(json.dumps(c))
    text = render_table(summarize(load_cells(tmp_path)))
    assert "| task | quality | omar (ours) | OMAR (paper) |" in text
    assert "| spread | expert | 95.0 ± 5.0 | 114.9 ± 2.6 |" in text
    assert "| omsd | 1 | 25 s | 25 s | 8 s |" in text        # stand-alone cost per method
    assert "Whole grid: 30 s of compute" in text              # what actually ran


def test_identical_stages_are_shared_within_the_family_and_equal_a_fresh_training(tmp_path):
    """brpo-ctde takes brpo-ind's marginal behaviour model and omsd's joint critic; both equal
    what brpo-ctde trains on its own, and the cell says where they came from."""
    from safetensors.torch import load_file

    from scoredec.suite.run_cell import run_cell

    preset = get_preset("smoke")
    shared_root, alone_root = tmp_path / "shared", tmp_path / "alone"
    for method in ("omsd", "brpo-ind", "brpo-ctde"):
        run_cell(Cell(method, "spread", "medium", 0), preset, shared_root)
    rec = json.loads((shared_root / "cells" / "brpo-ctde__spread__medium__s0.json").read_text())
    assert rec["shared_stages"]["behavior"]["from"] == "brpo-ind__spread__medium__s0"
    assert rec["shared_stages"]["critic"]["from"] == "omsd__spread__medium__s0"
    assert set(rec["stages"]) == {"behavior", "critic", "policy"}     # copied records included
    assert rec["seconds"]["standalone"] > rec["seconds"]["total"]
    ind = json.loads((shared_root / "cells" / "brpo-ind__spread__medium__s0.json").read_text())
    assert ind["shared_stages"] == {}          # its local critic matches nobody's, and omsd's
    #                                            behaviour model is sequential, not marginal
    same = [{k: v for k, v in r["behaviour"].items() if k != "seconds"} for r in (rec, ind)]
    assert same[0] == same[1] and same[0]["mode"] == "marginal"   # one model, one report
    run_cell(Cell("brpo-ctde", "spread", "medium", 0), preset, alone_root)
    for name in ("behavior", "critic", "actors"):
        a = load_file(shared_root / "runs" / "brpo-ctde__spread__medium__s0" / f"{name}.safetensors")
        b = load_file(alone_root / "runs" / "brpo-ctde__spread__medium__s0" / f"{name}.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


def test_tuning_jobs_presets_choice_and_the_cpu_preset_reading_it(tmp_path):
    from scoredec.suite import tuning
    from scoredec.suite.presets import apply_tuned

    jobs = tuning.jobs()
    assert len(jobs) == sum(len(v) * len(tuning.WEIGHTINGS_SEARCHED.get(m, (None,)))
                            for m, (_, grid) in tuning.SEARCH.items() for v in grid.values())
    assert all(j.cell.seed == tuning.TUNE_SEED and j.cell.seed not in get_preset("cpu").seeds
               for j in jobs)
    beta_job = tuning.Job("omsd", "medium", 0.2, "vds")
    p = tuning.job_preset(beta_job)
    policy = resolve_overrides(p, beta_job.cell)["policy"]
    assert policy["beta"] == 0.2 and policy["weighting"] == "vds"
    alpha_job = tuning.Job("matd3bc", "expert", 10.0)
    assert resolve_overrides(tuning.job_preset(alpha_job), alpha_job.cell)["alpha"] == 10.0
    # fake finished jobs: the best final score wins per method x quality
    for job, score in ((tuning.Job("omsd", "expert", 0.001, "score"), 5.0),
                       (tuning.Job("omsd", "expert", 0.005, "score"), 7.0),
                       (tuning.Job("omsd", "expert", 0.02, "score"), 1.0),
                       (tuning.Job("omsd", "expert", 0.001, "vds"), 2.0),
                       (tuning.Job("omsd", "expert", 0.005, "vds"), 9.0),
                       (tuning.Job("omsd", "expert", 0.02, "vds"), 4.0),
                       (tuning.Job("matd3bc", "expert", 1.0), 3.0)):
        cells = job.root(tmp_path) / "cells"
        cells.mkdir(parents=True)
        (cells / f"{job.cell.key}.json").write_text(json.dumps({"normalized_mean": score}))
    out = tmp_path / "tuned.yaml"
    doc = tuning.choose(tmp_path, out)
    want = {"expert": {"policy.weighting": "vds", "policy.beta": 0.005}}
    assert doc["chosen"]["omsd"] == want and doc["chosen"]["brpo-ctde"] == want
    assert "matd3bc" not in doc["chosen"]          # 1 of its 3 values done: nothing chosen
    tuned = apply_tuned(get_preset("cpu", tuned=False), out)
    assert tuned.beta["expert"] == 0.005
    policy = resolve_overrides(tuned, Cell("brpo-ind", "tag", "expert", 0))["policy"]
    assert policy["beta"] == 0.005 and policy["weighting"] == "vds"
    assert "weighting" not in resolve_overrides(tuned, Cell("brpo-ind", "tag", "medium", 0))["policy"]
    assert alpha_job.root(tmp_path).name == "alpha=10"   # the baselines' finished jobs keep their paths


def test_the_shipped_tuned_values_are_valid_fields_of_each_method():
    """configs/tuned/cpu.yaml (written by `scoredec suite tune`) applies cleanly: every chosen
    field exists in its method's config, and the cpu preset's cells still validate."""
    from scoredec.suite.presets import TUNED_CONFIG
    from scoredec.baselines.iql_awr import IQLConfig
    from scoredec.baselines.macql import CQLConfig
    from scoredec.baselines.matd3bc import TD3BCConfig
    from scoredec.baselines.omar import OMARConfig

    if not TUNED_CONFIG.is_file():
        pytest.skip("no tuned values shipped yet")
    preset = get_preset("cpu")
    classes = {"iql": IQLConfig, "matd3bc": TD3BCConfig, "macql": CQLConfig, "omar": OMARConfig}
    for method in ("omsd", "brpo-ind", "bc", *classes):
        for q in preset.qualities:
            ov = resolve_overrides(preset, Cell(method, "spread", q, 0))
            if method in classes:
                config_with(classes[method], ov)
            else:
                config_with(TrainConfig, ov, method=method, seed=0)


def test_condition_noise_does_not_split_the_marginal_models_signature():
    from scoredec.methods import config_with
    from scoredec.pipeline import TrainConfig
    from scoredec.suite.share import stage_signature

    def signature(method, cond_noise):
        cfg = config_with(TrainConfig, {"behavior": {"cond_noise": cond_noise}}, method=method, seed=0)
        return stage_signature(cfg, "behavior", "d.h5")

    assert signature("brpo-ind", 0.0) == signature("brpo-ctde", 0.2)
    assert signature("omsd", 0.0) != signature("omsd", 0.2)
