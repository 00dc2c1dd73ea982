"""SIGKILL at random moments, resume, and end with the uninterrupted run's bytes:
scripts/kill_resume.sh with 3 kills (the script's default is 20)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from procs import ENV

ROOT = Path(__file__).resolve().parents[1]


def test_three_sigkills_and_resumes_end_bit_identical():
    bin_dir = Path(sys.executable).parent
    assert (bin_dir / "scoredec").is_file(), f"no scoredec command next to {sys.executable}"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "kill_resume.sh"), "3", "7"],
                          capture_output=True, text=True, timeout=600,
                          env={**ENV, "SCOREDEC_BIN": str(bin_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().endswith("identical"), proc.stdout
    landed = int(re.search(r"kills that landed while training: (\d+) of 3", proc.stdout).group(1))
    assert landed >= 1, proc.stdout    # at least one kill hit a running training
