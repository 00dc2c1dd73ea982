"""Ctrl-C and SIGTERM during `scoredec train`: a checkpoint at the current step, one line with
the resume command, exit 130; resuming from it ends with the weights of an unbroken run."""

import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from scoredec import training
from scoredec.cli import main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

LINE = re.compile(r"^interrupted at (\w+) step (\d+): resume with: (.+)$")
TINY = ["--device", "cpu", "--seed", "2", "--log_every", "10", "--checkpoint_every", "1000",
        "--behavior.arch", "compact", "--behavior.hidden", "16", "--behavior.compact_layers", "2",
        "--behavior.batch_size", "16", "--critic.hidden", "8", "--critic.steps", "15",
        "--critic.batch_size", "16", "--policy.hidden", "8", "--policy.steps", "15",
        "--policy.batch_size", "16", "--no-estimate"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "bandit.h5"
    write_dataset(path, bandit.make_dataset(200, seed=4))
    return path


def _same_products(a, b):
    for name in ("behavior", "critic", "actors"):
        x, y = load_file(str(a / f"{name}.safetensors")), load_file(str(b / f"{name}.safetensors"))
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), f"{name}:{key} differs after the interrupt"


def _resume_args(stderr: str) -> tuple[str, int, list[str]]:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr          # one line, no traceback
    stage, step, command = LINE.match(lines[0]).groups()
    words = shlex.split(command)
    assert words[0].endswith("scoredec") and words[-1] == "--resume"
    return stage, int(step), words[1:]


def test_sigint_to_a_training_process_checkpoints_and_the_resumed_run_is_bit_identical(
        data_file, tmp_path):
    run = tmp_path / "stopped"
    args = ["-q", "train", "all", "--data", str(data_file), "--run", str(run), *TINY,
            "--behavior.steps", "1000"]
    # SIGINT back to its default in the child: a test run started in the background of a
    # non-interactive shell (`.ci/run &`) ignores SIGINT, and a child inherits that (scoredec
    # rightly keeps an ignored SIGINT ignored), so the Ctrl-C would never arrive.
    proc = subprocess.Popen([sys.executable, "-m", "scoredec.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)          # after it has logged some steps
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stage, step, resume = _resume_args(err)
    assert stage == "behavior" and 20 <= step < 1000
    assert (run / "checkpoints" / f"behavior-{step:09d}.json").is_file()
    assert main(resume) == 0                  # the printed command, as printed
    straight = tmp_path / "straight"
    assert main(["-q", "train", "all", "--data", str(data_file), "--run", str(straight), *TINY,
                 "--behavior.steps", "1000"]) == 0
    _same_products(run, straight)


def test_sigterm_at_a_given_step_of_the_critic_then_resume(data_file, tmp_path, monkeypatch,
                                                          capsys):
    """In-process, so the signal lands at an exact step: the critic's 7th of 15."""
    class SignalAt(training.StageProgress):
        def update(self, step):
            super().update(step)
            if self.name == "critic" and step == 7:
                signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(training, "StageProgress", SignalAt)
    handler = signal.getsignal(signal.SIGTERM)

    def args_for(run):
        return ["-q", "train", "all", "--data", str(data_file), "--run", str(run), *TINY,
                "--behavior.steps", "30"]

    run = tmp_path / "stopped"
    args = args_for(run)
    assert main(args) == 130
    stage, step, resume = _resume_args(capsys.readouterr().err)
    assert (stage, step) == ("critic", 7) and resume == args + ["--resume"]
    assert (run / "behavior.json").is_file() and not (run / "critic.json").is_file()
    monkeypatch.undo()
    assert main(resume) == 0
    straight = tmp_path / "straight"
    assert main(args_for(straight)) == 0
    _same_products(run, straight)
    assert signal.getsignal(signal.SIGTERM) is handler   # the handlers are back
