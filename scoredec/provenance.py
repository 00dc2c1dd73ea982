"""Where a result came from: code versions (with the git commit) and the hardware it ran on.

One helper for every record that needs it: a run's run.json (scoredec.runs) and the suite's
cell JSONs (scoredec.suite.run_cell). Never fails: what cannot be found is None.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import torch

from scoredec import __version__

__all__ = ["git_commit", "versions", "hardware"]

GIT_TIMEOUT_S = 5.0
"""A git that hangs (a network filesystem, a lock) must not hold up training."""


def git_commit() -> str | None:
    """HEAD of the git checkout the package runs from, or None (installed from a wheel, no git)."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=False, timeout=GIT_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def versions() -> dict:
    return {"scoredec": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "numpy": np.__version__, "git": git_commit()}


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or ""


def hardware(device: str) -> dict:
    """device: the torch device the work ran on ("cpu", "cuda")."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # The load average says whether the work shared its cores (its wall-clock is then longer).
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"device": device, "cpu": _cpu_model(), "cores": affinity,
            "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "platform": platform.platform(), "load_avg_1_5_15": load}
