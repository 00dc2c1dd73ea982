"""Training progress a user can see wherever the job runs.

On a terminal: a tqdm bar per stage that stays as its one-line summary when the stage ends.
Elsewhere (a pipe, nohup, a batch scheduler), where a bar would be a flood of carriage returns
or nothing at all: a log line every `every_seconds` (step, steps/s, ETA, the last logged
metrics) and one when the stage ends. `scoredec --progress-every SECONDS` sets the interval.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm.auto import tqdm

__all__ = ["LOG_EVERY_SECONDS", "StageProgress", "format_duration", "set_log_interval"]

log = logging.getLogger(__name__)

LOG_EVERY_SECONDS = 30.0
"""Seconds between progress log lines off a terminal (`--progress-every`)."""

_interval = LOG_EVERY_SECONDS


def set_log_interval(seconds: float) -> None:
    """Seconds between progress log lines off a terminal, for every stage from now on."""
    global _interval
    if not seconds > 0:
        raise ValueError(f"--progress-every must be > 0 seconds, got {seconds}")
    _interval = float(seconds)


def format_duration(seconds: float) -> str:
    """12s, 7m35s, 2h05m, 7.5 days: as precise as a human reads an ETA."""
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f} days"


def _format_metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def _on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):   # replaced or closed stderr
        return False


class StageProgress:
    """Progress of one stage from step `start` to `total` (this call may stop earlier).

    enabled=False: nothing at all (`-q`, or a caller that reports its own progress)."""

    def __init__(self, name: str, total: int, start: int, enabled: bool = True,
                 every_seconds: float | None = None):
        self.name, self.total, self.start = name, total, start
        self.every = _interval if every_seconds is None else every_seconds
        terminal = enabled and _on_terminal()
        self.lines = enabled and not terminal
        self.metrics: dict[str, float] = {}
        self.step = start
        self.t0 = self.last_line = time.monotonic()
        self.bar = tqdm(total=total, initial=start, desc=name, disable=not terminal,
                        dynamic_ncols=True, leave=True)
        if self.lines:
            log.info("%s: %s", name, f"steps {start + 1}..{total}" if start else f"{total} steps")

    def set_metrics(self, metrics: dict[str, float]) -> None:
        self.metrics = metrics
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)

    def update(self, step: int) -> None:
        self.step = step
        self.bar.update(1)
        if self.lines:
            now = time.monotonic()
            if now - self.last_line >= self.every:
                self.last_line = now
                rate = self.rate(now)
                eta = (self.total - step) / rate if rate else float("inf")
                log.info("%s: step %d/%d (%.0f%%), %.1f steps/s, ETA %s%s", self.name, step,
                         self.total, 100.0 * step / max(self.total, 1), rate,
                         format_duration(eta), "; " + _format_metrics(self.metrics)
                         if self.metrics else "")

    def rate(self, now: float | None = None) -> float:
        """Steps/s of this call so far."""
        elapsed = (time.monotonic() if now is None else now) - self.t0
        return (self.step - self.start) / elapsed if elapsed > 0 else 0.0

    def close(self) -> None:
        self.bar.close()
        if self.lines:
            elapsed = time.monotonic() - self.t0
            done = "done" if self.step == self.total else f"stopped at step {self.step}/{self.total}"
            log.info("%s: %s, %d steps in %s (%.1f steps/s)%s", self.name, done,
                     self.step - self.start, format_duration(elapsed), self.rate(),
                     "; " + _format_metrics(self.metrics) if self.metrics else "")
