"""`scoredec suite`: the smoke preset end to end, skipping done cells, shards, cell records,
failing cells, and the table's arithmetic on hand-made cells."""

import json

import numpy as np
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
    table = (root / "TABLE.md").read_text()
    assert "| spread | medium |" in table and "omsd" in table and "bc" in table
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
    preset = get_preset("cpu")
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
    assert "| omsd | 6 | 1.0 min | 10 s |" in text
    written = write_table(tmp_path, plots=False)
    assert written["table"].read_text() == text
