"""The benchmark tooling: one renderer for every bench file's JSON, the RESULTS.md section update,
discovery of bench files, and `scoredec bench --help`. No timings here."""

import json
import sys
from pathlib import Path

import pytest

from scoredec.cli import main

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import results_md  # noqa: E402
import run_all  # noqa: E402

VERSIONS = {"device": "cpu", "torch": "2.13.0", "cuda": "-", "triton": "3.7.1", "threads": 2}


def bench_json(path, rows):
    path.write_text(json.dumps({"datetime": "2026-11-26T10:00:00", "benchmarks": [
        {"extra_info": {**VERSIONS, **extra}, "stats": {"median": median}, "params": {}}
        for extra, median in rows]}))
    return path


def table_rows(md):
    return [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]


def test_legacy_noise_embed_rows_render(tmp_path):
    rows = [({"backend": b, "B": B, "d": 2, "F": 16, "dtype": "float32", "bytes": 10 ** 6}, med)
            for b, med in (("eager", 4e-4), ("compile", 2e-4)) for B in (1536, 12288)]
    md = results_md.render(str(bench_json(tmp_path / "bench.json", rows)))
    assert "#### noise_embed" in md and "d 2 | F 16" in md  # constant shape keys in the header
    lines = table_rows(md)
    assert lines[0].startswith("| B | variant | median (us) | GB/s |")
    assert "| 1536 | compile | 200.0 | 5.0 | 2.00x | 1.00x |" in lines


def test_op_rows_with_flops_get_ratios_and_roofline(tmp_path):
    rows = [({"op": "stage2_step", "variant": v, "n": 3, "batch": b, "arch": "compact", "dtype": "float32",
              "flops": 10 ** 9}, med * b)
            for v, med in (("per-agent-loop", 4e-5), ("eager", 2e-5), ("compile", 1e-5)) for b in (64, 512)]
    path = bench_json(tmp_path / "bench_steps.json", rows)
    roof = {"matmul_tflops": {"float32": 1.0}, "copy_gbs": 10.0}
    md = results_md.render_files([path], roof, tmp_path / "plots", tmp_path)
    lines = table_rows(md)
    assert lines[0] == ("| batch | variant | median (us) | GFLOP/s | roofline | vs per-agent loop | vs eager "
                        "| vs compile |")
    # 1 GFLOP at 1 TFLOP/s = 1 ms roofline; compile at batch 64 takes 640 us.
    assert "| 64 | compile | 640.0 | 1562.5 | 156.2% | 4.00x | 2.00x | 1.00x |" in lines
    assert (tmp_path / "plots" / "stage2-step-cpu.png").stat().st_size > 1000
    assert "](plots/stage2-step-cpu.png)" in md


def test_update_section_replaces_only_its_device(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\nhand-written text\n")
    run_all.update_section(path, "cpu", "first")
    run_all.update_section(path, "NVIDIA H100 80GB HBM3", "gpu rows")
    run_all.update_section(path, "cpu", "second")
    text = path.read_text()
    assert "hand-written text" in text and "gpu rows" in text and "second" in text
    assert "first" not in text and text.count("scoredec bench: cpu begin") == 1


def test_discovery_finds_the_bench_files():
    names = [p.name for p in run_all.discover()]
    assert "bench_steps.py" in names and "bench_score_compact.py" in names
    assert [p.name for p in run_all.discover(only=["steps"])] == ["bench_steps.py"]


def test_bench_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "roofline" in out and "--results" in out and "--quick" in out
