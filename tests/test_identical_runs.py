"""Two identical trainings in two processes leave byte-identical run directories, except the
files whose job is to say when and where: metrics.jsonl (a wall-clock time per record, which
the suite's steps/s come from), tensorboard/ (event files carry wall times and the host in
their names) and run.json (each opening's time, command line and load average)."""

from __future__ import annotations

import hashlib

from procs import start, train_command

from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

TIMED = ("metrics.jsonl", "run.json", "tensorboard")


def file_hashes(run):
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def test_two_identical_trainings_give_identical_files(tmp_path):
    data = tmp_path / "d.h5"
    write_dataset(data, bandit.make_dataset(300, seed=0))
    procs = [start(train_command(data, tmp_path / name)) for name in ("a", "b")]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    a, b = file_hashes(tmp_path / "a"), file_hashes(tmp_path / "b")
    assert {n.split("/")[0] for n in a if n.split("/")[0] in TIMED} == set(TIMED)
    a, b = ({n: h for n, h in run.items() if n.split("/")[0] not in TIMED} for run in (a, b))
    assert a.keys() == b.keys()
    assert {"config.yaml", "behavior.safetensors", "behavior.json", "critic.safetensors",
            "actors.safetensors", "checkpoints/policy-000000030.safetensors",
            "checkpoints/latest.json"} <= a.keys()
    assert sorted(name for name in a if a[name] != b[name]) == []
