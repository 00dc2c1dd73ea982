"""A run is tied to its dataset's content (SHA-256 in run.json) and records where it came from:
git commit, package version, hardware; reopening it on other data is refused."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from scoredec import __version__, provenance
from scoredec.cli import main
from scoredec.data import fingerprint
from scoredec.data.fingerprint import file_sha256
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

TINY = ["--device", "cpu", "--seed", "0", "--checkpoint_every", "2",
        "--behavior.arch", "compact", "--behavior.hidden", "8", "--behavior.steps", "6",
        "--behavior.batch_size", "8", "--critic.hidden", "8", "--critic.steps", "6",
        "--critic.batch_size", "8", "--policy.hidden", "8", "--policy.steps", "6",
        "--policy.batch_size", "8"]


def train(data, run, *extra):
    return main(["-q", "train", "all", "--data", str(data), "--run", str(run), *TINY, *extra])


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_changed_dataset_is_refused_for_a_partial_and_a_finished_run(tmp_path, capsys):
    data = tmp_path / "d.h5"
    write_dataset(data, bandit.make_dataset(200, seed=0))
    old = sha(data)
    finished, partial = tmp_path / "finished", tmp_path / "partial"
    assert train(data, finished) == 0
    assert train(data, partial, "--budget", "3") == 0
    write_dataset(data, bandit.make_dataset(200, seed=1))   # made again, same path, other seed
    new = sha(data)
    assert new != old
    capsys.readouterr()
    for run in (partial, finished):
        before = sorted((p.name, sha(p)) for p in run.iterdir() if p.is_file())
        assert train(data, run, "--resume") == 2
        assert capsys.readouterr().err == (
            f"scoredec train: error: {run}: dataset {data} has changed since the run started on "
            f"it (sha256 {old} recorded in run.json, {new} now); use a new run directory, or "
            "pass --allow-data-change to continue on the new data\n")
        assert sorted((p.name, sha(p)) for p in run.iterdir() if p.is_file()) == before

    assert train(data, partial, "--resume", "--allow-data-change") == 0
    record = json.loads((partial / "run.json").read_text())
    assert record["data"] == {"file": str(data.resolve()), "sha256": new}
    assert [o.get("data_changed_from") for o in record["sessions"]] == [None, old]
    assert train(data, partial, "--resume") == 0            # tied to the new content now
    # A finished run trains nothing on the new data, so it stays tied to the old content.
    assert train(data, finished, "--resume", "--allow-data-change") == 0
    assert json.loads((finished / "run.json").read_text())["data"]["sha256"] == old
    assert train(data, finished, "--resume") == 2
    actors = json.loads((partial / "actors.json").read_text())["meta"]
    assert actors["data_sha256"] == new


def test_the_run_records_commit_version_dataset_and_hardware(tmp_path):
    data = tmp_path / "d.h5"
    write_dataset(data, bandit.make_dataset(200, seed=0))
    assert train(data, tmp_path / "run") == 0
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["format"] == "scoredec-run"
    assert record["data"] == {"file": str(data.resolve()), "sha256": sha(data)}
    (session,) = record["sessions"]
    assert session["command"] == " ".join(sys.argv)         # this process's command line
    versions, hardware = session["versions"], session["hardware"]
    assert versions["scoredec"] == __version__ and versions["torch"]
    head = subprocess.run(["git", "-C", os.path.dirname(provenance.__file__), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    assert versions["git"] == (head.stdout.strip() if head.returncode == 0 else None)
    assert hardware["device"] == "cpu" and hardware["cores"] >= 1 and hardware["torch_threads"] >= 1
    assert set(hardware) >= {"cpu", "gpu"}
    for name in ("behavior", "critic", "actors"):
        meta = json.loads((tmp_path / "run" / f"{name}.json").read_text())["meta"]
        assert meta["data_sha256"] == sha(data)


def test_no_git_or_a_failing_git_gives_none(monkeypatch):
    monkeypatch.setattr(provenance.shutil, "which", lambda name: None)
    assert provenance.git_commit() is None
    monkeypatch.undo()

    def broken(*args, **kwargs):
        raise OSError("git vanished")

    monkeypatch.setattr(provenance.subprocess, "run", broken)
    assert provenance.git_commit() is None
    assert provenance.versions()["git"] is None


def test_fingerprint_streams_once_and_sees_an_edit_of_the_same_size(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 3_000_000)
    calls = []
    real = fingerprint.hashlib.file_digest
    monkeypatch.setattr(fingerprint.hashlib, "file_digest",
                        lambda f, name: calls.append(name) or real(f, name))
    first = file_sha256(path)
    assert first == hashlib.sha256(b"a" * 3_000_000).hexdigest()
    assert file_sha256(path) == first and len(calls) == 1    # cached in this process
    stamp = path.stat()
    with open(path, "r+b") as f:                            # edited in place, same size ...
        f.seek(1_000_000)
        f.write(b"b")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))   # ... and the mtime put back
    assert file_sha256(path) != first and len(calls) == 2
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        file_sha256(tmp_path / "missing.bin")
