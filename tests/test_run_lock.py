"""One writer per run directory and per dataset output (scoredec.locks): a second process is
refused with one line naming the first, which carries on; a killed holder leaves no lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from procs import ENV, SCOREDEC, go, preloaded, start, train_command, wait_until_holding

from scoredec.cli import main
from scoredec.data.hdf5 import read_dataset, write_dataset
from scoredec.envs import bandit
from scoredec.locks import ExclusiveLock, LockError, output_lock
from scoredec.runs import read_metrics

HOLD = """
import sys
from scoredec.locks import ExclusiveLock
lock = ExclusiveLock(sys.argv[1], "thing")
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bandit.h5"
    write_dataset(path, bandit.make_dataset(300, seed=1))
    return path


def holder(lock_file):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_file)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline() == "held\n"
    return proc


def test_a_held_lock_names_its_holder_and_dies_with_it(tmp_path):
    lock_file = tmp_path / "x.lock"
    proc = holder(lock_file)
    with pytest.raises(LockError, match=rf"^thing is in use by pid {proc.pid} on .*: -c .*x\.lock; "
                                        "do something else$"):
        ExclusiveLock(lock_file, "thing", hint="do something else")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_file.exists()                      # its description stays, stale ...
    with ExclusiveLock(lock_file, "thing"):        # ... but the OS dropped the lock
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()   # and it is rewritten
    assert not lock_file.exists()                  # a clean release removes the file


def test_nested_in_one_process_and_waiting_for_another(tmp_path):
    lock_file = tmp_path / "y.lock"
    outer = ExclusiveLock(lock_file, "thing")
    with ExclusiveLock(lock_file, "thing"):        # the same process again: nested
        pass
    assert lock_file.exists()                      # still held by the outer one
    outer.release()
    outer.release()                                # idempotent
    assert not lock_file.exists()

    proc = holder(lock_file)
    threading.Timer(0.2, lambda: proc.communicate("go\n")).start()
    with ExclusiveLock(lock_file, "thing", wait=True):   # blocks until the holder exits
        assert json.loads(lock_file.read_text())["pid"] == os.getpid()
        assert proc.wait(timeout=60) == 0


def test_two_trains_on_one_run_the_second_refused_the_first_finishes(data_file, tmp_path):
    run = tmp_path / "run"
    second = preloaded(*train_command(data_file, run, "--seed", "1")[len(SCOREDEC):])
    first = start(train_command(data_file, run))
    wait_until_holding(first, run / "run.lock")
    first.send_signal(signal.SIGSTOP)              # it holds the lock, wherever it is now
    try:
        _, err = go(second)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"scoredec train: error: run directory {run} is in use by "
                          f"pid {first.pid} on ")
    assert "train all" in err and "choose another run directory" in err
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert all((run / f"{name}.json").is_file() for name in ("behavior", "critic", "actors"))
    record = json.loads((run / "run.json").read_text())
    assert len(record["sessions"]) == 1            # the refused process wrote nothing
    steps = [(r["stage"], r["step"]) for r in read_metrics(run)]
    assert len(steps) == len(set(steps))
    assert not (run / "run.lock").exists()


def test_another_seed_on_a_finished_or_partial_run_is_refused(data_file, tmp_path, capsys):
    tiny = ["--device", "cpu", "--behavior.arch", "compact", "--behavior.hidden", "8",
            "--behavior.steps", "6", "--behavior.batch_size", "8", "--critic.hidden", "8",
            "--critic.steps", "6", "--critic.batch_size", "8", "--policy.hidden", "8",
            "--policy.steps", "6", "--policy.batch_size", "8", "--checkpoint_every", "2"]
    finished, partial = tmp_path / "finished", tmp_path / "partial"
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(finished),
                 "--seed", "0", *tiny]) == 0
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(partial),
                 "--seed", "0", "--budget", "3", *tiny]) == 0
    assert not (partial / "behavior.json").exists()
    capsys.readouterr()
    for run in (finished, partial):
        before = {p: p.read_bytes() for p in (run / "config.yaml", run / "run.json")}
        for extra in ((), ("--resume",)):
            assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(run),
                         "--seed", "1", *tiny, *extra]) == 2
            err = capsys.readouterr().err
            assert err == (f"scoredec train: error: {run}: cannot resume with a different config; "
                           "keys that differ from config.yaml: train.seed\n")
        assert {p: p.read_bytes() for p in before} == before   # seed 0's run is untouched


def test_two_data_makers_to_one_path_the_second_refused(tmp_path):
    out = tmp_path / "d.h5"
    second = preloaded("-q", "data", "make", "spread", "random", "--episodes", "20",
                       "--seed", "2", "--out", str(out))
    first = start([*SCOREDEC, "-q", "data", "make", "spread", "random", "--episodes", "20",
                   "--seed", "1", "--out", str(out)])
    wait_until_holding(first, tmp_path / "d.h5.lock")
    first.send_signal(signal.SIGSTOP)
    try:
        _, err = go(second)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and err.count("\n") == 1
    assert err.startswith(f"scoredec data: error: output {out} is in use by pid {first.pid} on ")
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    card = json.loads((tmp_path / "d.card.json").read_text())
    assert card["seed"] == 1                        # the card of the file that was written
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "d.card.json", "d.card.md", "d.card.png", "d.h5"]


def test_the_suite_waits_for_another_maker_and_uses_its_file(tmp_path):
    from scoredec.suite.presets import get_preset
    from scoredec.suite.run_cell import dataset_path, ensure_dataset

    preset = get_preset("smoke")
    path = dataset_path(tmp_path, preset, "spread", "random")
    path.parent.mkdir(parents=True)
    proc = holder(path.with_name(path.name + ".lock"))   # another shard is making it

    def other_shard_finishes():
        write_dataset(path, bandit.make_dataset(50, seed=0))
        proc.communicate("go\n")

    threading.Timer(0.2, other_shard_finishes).start()
    assert ensure_dataset(tmp_path, preset, "spread", "random") == path
    assert proc.returncode == 0
    assert read_dataset(path).env_id == "bandit"     # its file, not one made again
