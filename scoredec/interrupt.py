"""Ctrl-C and SIGTERM during training: finish the current step, checkpoint, stop cleanly.

A signal that arrives mid-step would leave the weights between a backward pass and an
optimizer step; so the handler only raises a flag, and the training loop (training.run_stage)
checks it after each whole step, writes an ordinary resumable checkpoint there and raises
`TrainingInterrupted`. The CLI turns that into one line with the resume command and exit 130.
A second signal while the step finishes stops at once (no checkpoint), as users expect of a
second Ctrl-C.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

__all__ = ["TrainingInterrupted", "StopRequest", "deferred_stop"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after checkpointing `stage` at `step`.

    A KeyboardInterrupt, so that code which catches Exception (the suite's per-cell guard)
    lets it through."""

    def __init__(self, stage: str, step: int, signal_name: str):
        super().__init__(f"interrupted ({signal_name}) at {stage} step {step}")
        self.stage, self.step, self.signal_name = stage, step, signal_name


class StopRequest:
    """Set by the signal handler; read by the training loop between steps."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    @property
    def requested(self) -> bool:
        return self.signal_name is not None


@contextmanager
def deferred_stop(enabled: bool = True) -> Iterator[StopRequest]:
    """While inside, SIGINT and SIGTERM set the yielded StopRequest instead of raising.

    Only in the main thread (the only one Python delivers signals to), when enabled (a loop
    with nowhere to checkpoint keeps the default behaviour) and for signals not ignored; the
    previous handlers come back on exit."""
    stop = StopRequest()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:   # the second signal: stop now
            raise KeyboardInterrupt
        stop.signal_name = signal.Signals(signum).name

    # A signal the process was started to ignore (a background job's SIGINT) stays ignored.
    previous = {s: signal.signal(s, handler) for s in SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        yield stop
    finally:
        for s, old in previous.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)   # None: set outside Python
