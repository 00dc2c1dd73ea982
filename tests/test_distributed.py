"""Training on several processes (scoredec/distributed.py): two CPU processes under torchrun
train what one process trains at the same global batch, resume exactly, and only rank 0 writes.

Tolerances. The two runs differ only by float32 rounding: a gradient is the mean of two
half-batch means instead of one mean over the batch, and a BatchNorm's variance is summed over
the ranks in two passes. Measured on these tiny runs: at most 1.2e-7 for the OMSD stages (lr
3e-4, weights of scale 1) and 1e-5 for MA-CQL/OMAR (BatchNorm critics, lr 0.01), where one
process that merely computes the variance in two passes differs by as much (9.5e-6) from one
that does not. The tolerances, 1e-5 and 1e-4, are 10-100 times that; a mistake in what the
ranks share is far above them (per-rank BatchNorm statistics instead of the batch's: 0.3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from procs import ENV
from safetensors.torch import load_file

from scoredec import distributed
from scoredec.cli import main
from scoredec.datagen.factory import make_dataset_file
from scoredec.distributed import Group
from scoredec.methods import get_method
from scoredec.runs import read_metrics

TINY = ["--device", "cpu", "--seed", "2", "--log_every", "4", "--checkpoint_every", "6",
        "--behavior.arch", "resnet", "--behavior.hidden", "16", "--behavior.blocks", "1",
        "--behavior.steps", "30", "--behavior.batch_size", "16",
        "--critic.hidden", "8", "--critic.steps", "30", "--critic.batch_size", "16",
        "--policy.hidden", "8", "--policy.steps", "30", "--policy.batch_size", "16"]
"""omsd, with the resnet score net (dropout 0.1), condition noise and the importance-sampled t:
every random draw of a step that rows share."""
PRODUCTS = ("behavior", "critic", "actors")
OMSD_ATOL = 1e-5
BASELINE_ATOL = 1e-4

BASELINES = """
import sys
from pathlib import Path
import torch
from scoredec import distributed
from scoredec.methods import get_method
with distributed.launch(torch.device("cpu")):
    for name, overrides in {runs!r}.items():
        get_method(name).train(sys.argv[1], Path(sys.argv[2]) / name, seed=5, progress=False,
                               overrides=overrides)
"""
BASE = {"device": "cpu", "steps": 30, "batch_size": 16, "critic_hidden": 16, "actor_hidden": 16,
        "log_every": 10, "checkpoint_every": 20}
BASELINE_RUNS = {"matd3bc": BASE,   # target smoothing noise, the batch's mean |Q|
                 "macql": {**BASE, "actor_input_norm": True, "policy_samples": True},  # BatchNorms
                 "omar": {**BASE, "search": "cem", "omar_samples": 6, "omar_elites": 3, "coe": 0.7},
                 "iql": BASE}


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", str(processes), *args],
                          capture_output=True, text=True, env=ENV, timeout=300)


def train_two(data: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    proc = torchrun("-m", "scoredec", "-q", "train", "all", "--data", str(data), "--run-dir",
                    str(run), *TINY, *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def tensors(run: Path, product: str) -> dict[str, torch.Tensor]:
    return load_file(run / f"{product}.safetensors")


def files(run: Path) -> list[str]:
    """The run's files, without TensorBoard's (their names hold the host, pid and time)."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*")
                  if p.is_file() and "tensorboard" not in p.parts)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "spread.h5"
    make_dataset_file("spread", "medium", path, episodes=20, seed=3, progress=False)
    return path


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, data_file) -> Path:
    run = tmp_path_factory.mktemp("two") / "run"
    proc = train_two(data_file, run)
    assert proc.stdout.count("run: ") == 1, proc.stdout   # rank 0 alone reports
    return run


def test_two_processes_train_what_one_trains_and_rank_0_alone_writes(tmp_path, data_file,
                                                                     two_process_run):
    one = tmp_path / "one"
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(one), *TINY,
                 "--no-estimate"]) == 0
    two = two_process_run
    for product in PRODUCTS:
        a, b = tensors(one, product), tensors(two, product)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(b[key], a[key], atol=OMSD_ATOL, rtol=0, msg=key)
    # One writer: the same files as one process writes, one session in run.json that says two
    # processes trained, each metric line once, and metrics averaged over the ranks.
    assert files(two) == files(one)
    sessions = json.loads((two / "run.json").read_text())["sessions"]
    assert [s.get("processes") for s in sessions] == [{"world_size": 2, "backend": "gloo"}]
    lines_one, lines_two = read_metrics(one), read_metrics(two)
    assert [(r["stage"], r["step"]) for r in lines_two] == [(r["stage"], r["step"]) for r in lines_one]
    for r1, r2 in zip(lines_one, lines_two):
        for key in set(r1) - {"time"} - {"stage", "step"}:
            assert r2[key] == pytest.approx(r1[key], rel=1e-4, abs=1e-6), (r1, r2)


def test_two_processes_resume_exactly(tmp_path, data_file, two_process_run):
    run = tmp_path / "run"
    train_two(data_file, run, "--budget", "40")          # behaviour done, the critic mid-way
    assert (run / "behavior.safetensors").is_file() and not (run / "critic.safetensors").exists()
    train_two(data_file, run, "--resume")
    for product in PRODUCTS:
        a, b = tensors(two_process_run, product), tensors(run, product)
        assert all(torch.equal(a[k], b[k]) for k in a), product


def test_baselines_on_two_processes_train_what_one_trains(tmp_path, data_file):
    script = tmp_path / "baselines.py"
    script.write_text(BASELINES.format(runs=BASELINE_RUNS))
    proc = torchrun(str(script), str(data_file), str(tmp_path / "two"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name, overrides in BASELINE_RUNS.items():
        get_method(name).train(data_file, tmp_path / "one" / name, seed=5, progress=False,
                               overrides=overrides)
        a, b = tensors(tmp_path / "one" / name, "actors"), tensors(tmp_path / "two" / name, "actors")
        for key in a:
            torch.testing.assert_close(b[key], a[key], atol=BASELINE_ATOL, rtol=0,
                                       msg=f"{name} {key}")


def test_a_batch_the_processes_do_not_divide_is_refused_on_one_line(tmp_path, data_file):
    proc = torchrun("-m", "scoredec", "-q", "train", "all", "--data", str(data_file), "--run-dir",
                    str(tmp_path / "run"), *TINY, "--critic.batch_size", "15")
    assert proc.returncode != 0
    assert ("scoredec train: error: critic.batch_size = 15 is not divisible by the 2 training "
            "processes (each computes an equal share of a batch): choose a multiple of 2"
            in proc.stderr), proc.stderr
    # No traceback through scoredec's code (torchrun's launcher prints its own, of the child's exit).
    assert not [line for line in proc.stderr.splitlines()
                if line.strip().startswith("File ") and "scoredec" in line.split(",")[0]], proc.stderr
    assert not (tmp_path / "run").exists()     # refused before the run directory


# --------------------------------------------------------------------------- in this process

@pytest.fixture
def rank_1_of_2(monkeypatch):
    """Inside a step of rank 1 of 2 (the draws need no process group)."""
    monkeypatch.setattr(distributed, "_STEP", Group(1, 2, 1, torch.device("cpu")))


def test_a_rank_draws_its_rows_of_the_whole_batch_and_moves_the_generator_as_one_process(rank_1_of_2):
    mine, whole = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    z = distributed.draw_rows(torch.randn, (3, 5, 2), 1, generator=mine)
    assert torch.equal(z, torch.randn((3, 10, 2), generator=whole)[:, 5:])
    assert torch.equal(mine.get_state(), whole.get_state())
    u = distributed.draw_rows(torch.rand, (4, 7), 0, generator=mine)
    assert torch.equal(u, torch.rand((8, 7), generator=whole)[4:])


def test_a_rank_applies_its_rows_of_the_whole_batch_s_dropout_mask(rank_1_of_2):
    dropout = torch.nn.Dropout(0.3).train()
    x, other = torch.randn(2, 12, 5), torch.randn(2, 12, 5)
    torch.manual_seed(9)
    whole = dropout(torch.cat([other, x], dim=1))   # rows 12-23 are rank 1's
    torch.manual_seed(9)
    assert torch.equal(distributed.dropout_rows(dropout, x), whole[:, 12:])   # bit for bit on CPU


def test_without_torchrun_nothing_changes():
    assert not distributed.launched() and distributed.current() is None and distributed.is_writer()
    with distributed.launch(torch.device("cpu")) as group:
        assert group is None
    step = lambda batch, generator: {"seen": batch}   # noqa: E731
    assert distributed.run_step(step, "batch", None) == {"seen": "batch"}


def test_check_divisible_names_the_key():
    distributed.check_divisible({"policy.batch_size": 512}, 4)
    with pytest.raises(ValueError, match=r"^policy\.batch_size = 510 is not divisible by the 4 "):
        distributed.check_divisible({"policy.batch_size": 510}, 4)


def test_other_commands_refuse_to_run_under_torchrun(monkeypatch, capsys, tmp_path):
    for name, value in (("RANK", "0"), ("WORLD_SIZE", "2"), ("LOCAL_RANK", "0")):
        monkeypatch.setenv(name, value)
    assert main(["evaluate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "scoredec evaluate: error: `scoredec evaluate` runs in one process; under torchrun only "
        "`train` does (for the suite use --shard I/N, one job per shard)\n")


def test_a_captured_step_is_refused_on_several_processes(monkeypatch, tmp_path, data_file):
    from scoredec.pipeline import TrainConfig, train

    monkeypatch.setattr(distributed, "_GROUP", Group(0, 2, 0, torch.device("cpu")))
    with pytest.raises(ValueError, match=r"^capture must be 'none' when training on several "
                                         r"processes \(torchrun\), got 'compile'$"):
        train(data_file, TrainConfig(device="cpu", capture="compile"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_other_ranks_view_of_the_run_reads_checkpoints_and_refuses_to_write(tmp_path):
    from scoredec.checkpoint import save_checkpoint
    from scoredec.runs import RunDir, RunError, RunView

    with RunDir(tmp_path / "run", {"a": 1}) as run:
        save_checkpoint(run.checkpoint_stem("behavior-000000006"), modules={"m": torch.nn.Linear(1, 1)},
                        meta={"step": 6})
        run.record_latest("behavior-000000006")
        view = RunView(tmp_path / "run")    # no lock taken: rank 0 holds it
        assert view.latest("behavior-") == run.latest("behavior-")
        assert view.latest_step("behavior-") == 6
        for write in (lambda: view.record_latest("behavior-000000006"),
                      lambda: view.prune("behavior-", keep=0)):
            with pytest.raises(RunError, match="this process reads the run; the process holding "
                                               "its lock writes it"):
                write()
    assert view.latest("behavior-") is not None   # nothing was pruned
