"""`scoredec` in child processes, for the tests of what happens across processes (locks,
kills, identical bytes): the command line, a tiny training, and waiting for a lock holder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SCOREDEC = [sys.executable, "-c", "import sys; from scoredec.cli import main; sys.exit(main())"]
"""The CLI in a child interpreter: the same package and Python as the tests, installed or not."""

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

TINY = ["--device", "cpu", "--seed", "2", "--log_every", "4", "--checkpoint_every", "6",
        "--behavior.arch", "compact", "--behavior.hidden", "16", "--behavior.compact_layers", "1",
        "--behavior.steps", "30", "--behavior.batch_size", "16",
        "--critic.hidden", "8", "--critic.steps", "30", "--critic.batch_size", "16",
        "--policy.hidden", "8", "--policy.steps", "30", "--policy.batch_size", "16"]
"""A training of a few seconds, mostly the interpreter's start."""


PRELOADED = """
import sys
import scoredec.cli, scoredec.datagen.factory, scoredec.pipeline  # the imports main() does
print("ready", flush=True)
sys.stdin.readline()
sys.exit(scoredec.cli.main(sys.argv[1:]))
"""


def preloaded(*args: str) -> subprocess.Popen:
    """The CLI with `args` in a child that does its imports, then waits for `go` (so that it
    can run at a chosen moment, e.g. while another process holds a lock)."""
    return subprocess.Popen([sys.executable, "-c", PRELOADED, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)


def go(proc: subprocess.Popen) -> tuple[str, str]:
    """Let a preloaded child run once it is ready; wait for it: (stdout, stderr)."""
    ready = proc.stdout.readline()
    assert ready == "ready\n", proc.stderr.read()
    return proc.communicate("go\n", timeout=300)


def train_command(data: Path, run: Path, *extra: str) -> list[str]:
    return [*SCOREDEC, "-q", "train", "all", "--data", str(data), "--run", str(run), *TINY, *extra]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SCOREDEC, *args], capture_output=True, text=True, env=ENV,
                          timeout=300)


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=ENV)


def wait_until_holding(proc: subprocess.Popen, lock_file: Path, timeout: float = 120.0) -> None:
    """Return once `proc` has written itself into `lock_file` (it holds the lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if json.loads(lock_file.read_text())["pid"] == proc.pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        if proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before holding "
                                 f"{lock_file}: {proc.stderr.read()}")
        time.sleep(0.01)
    raise AssertionError(f"process {proc.pid} did not take {lock_file} in {timeout} s")
