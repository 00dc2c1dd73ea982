"""The run directory: resolved config, checkpoints, and the metrics log of one training run.

Layout::

    <run>/config.yaml              the resolved config (written atomically)
    <run>/checkpoints/<tag>.*      checkpoints (see scoredec.checkpoint), tag e.g. "stage1-000400"
    <run>/checkpoints/latest.json  pointer to the last recorded checkpoint
    <run>/metrics.jsonl            one JSON object per log call
    <run>/tensorboard/             TensorBoard events (optional)
    <run>/run.json                 the dataset's SHA-256 the run is tied to, and one entry per
                                   process that trained in it: time, command, versions (git
                                   commit), hardware
    <run>/run.lock                 while a process has the run open (scoredec.locks)

One process at a time: RunDir takes the run's lock before it reads or writes anything, and
holds it until close() (or the process ends; the OS drops it if the process dies).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import yaml

from scoredec.checkpoint import checkpoint_paths, is_complete
from scoredec.config import config_to_dict
from scoredec.io import atomic_write_bytes, atomic_write_json, atomic_write_text, to_jsonable
from scoredec.locks import ExclusiveLock
from scoredec.provenance import hardware, versions

__all__ = ["RunError", "RunDir", "RunView", "MetricsLogger", "read_metrics", "config_diff",
           "run_lock", "metrics_sink"]

log = logging.getLogger(__name__)

_STEP_RE = re.compile(r"(\d+)$")
POINTER = "latest.json"
LOCK = "run.lock"
RECORD = "run.json"
RECORD_FORMAT = "scoredec-run"
OWN_FILES = ("config.yaml", "metrics.jsonl", RECORD)
"""Files of the run root that only the lock holder writes (besides the caller's products)."""


class RunError(RuntimeError):
    """The run directory cannot be used as asked (would overwrite a run, or resume a different one)."""


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def config_diff(a: dict, b: dict) -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (including keys in only one)."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in fa.keys() | fb.keys() if fa.get(k, _flatten) != fb.get(k, _flatten))


def _normalize(config: Any) -> dict:
    """The config as it reads back from YAML: dataclasses to dicts, tuples to lists."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = config_to_dict(config)
    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict or a dataclass instance, got {type(config).__name__}")
    return yaml.safe_load(yaml.safe_dump(to_jsonable(config), sort_keys=False))


def run_lock(path: str | os.PathLike) -> ExclusiveLock:
    """Take the lock of the run directory ``path`` (created if missing), or raise LockError
    naming the process that holds it. RunDir takes it; so does whoever writes into a run
    before opening it (the suite's stage sharing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: is a file, not a run directory")
    path.mkdir(parents=True, exist_ok=True)
    return ExclusiveLock(path / LOCK, f"run directory {path}",
                         hint="wait for it to finish or choose another run directory")


class RunDir:
    """A run directory: refuses to silently overwrite a run, and to resume with another config.

    Args:
        path: the directory; created with ``checkpoints/`` if missing.
        config: the resolved config (dict or config dataclass); written to ``config.yaml``.
        resume: continue the run stored in ``path``. The stored config must equal ``config``
            except for dotted keys listed in ``allow_changes`` (prefixes match whole sections).
        complete_stored: fills a stored config's missing keys (fields added after it was
            written) with the values runs had before them; the comparison reads its result, so
            an old run resumes while a new field keeps that value.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        config: Any,
        *,
        resume: bool = False,
        allow_changes: Iterable[str] = (),
        complete_stored: Callable[[dict], dict] | None = None,
    ) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.config_path = self.path / "config.yaml"
        self.resume = resume
        self.config = _normalize(config)
        self.complete_stored = complete_stored
        self._lock: ExclusiveLock | None = run_lock(self.path)
        try:
            self._open(allow_changes)
        except BaseException:
            self.close()
            raise

    def _open(self, allow_changes: Iterable[str]) -> None:
        resume = self.resume
        if self.config_path.is_file():
            if not resume and self._has_checkpoints():
                raise RunError(
                    f"{self.path} already holds a run with checkpoints; pass --resume to continue it "
                    "or choose a new run directory"
                )
            if resume:
                self._check_same_config(tuple(allow_changes))
        elif resume:
            log.info("%s: a new run", self.path)   # open_run always opens with resume=True
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(self.config, sort_keys=False))

    def close(self) -> None:
        """Release the run's lock (idempotent)."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _has_checkpoints(self) -> bool:
        return self.checkpoints.is_dir() and any(
            p.suffix in (".json", ".safetensors") and p.name != POINTER
            for p in self.checkpoints.iterdir()
        )

    def _check_same_config(self, allow: tuple[str, ...]) -> None:
        try:
            stored = yaml.safe_load(self.config_path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise RunError(f"{self.config_path}: cannot read the stored config: {e}") from e
        if self.complete_stored is not None:
            stored = self.complete_stored(stored)
        differ = [
            k
            for k in config_diff(stored, self.config)
            if not any(k == a or k.startswith(a + ".") for a in allow)
        ]
        if differ:
            raise RunError(
                f"{self.path}: cannot resume with a different config; keys that differ from "
                f"{self.config_path.name}: {', '.join(differ)}"
            )

    # ------------------------------------------------------------------ what a dead writer left

    def remove_leftovers(self, products: Iterable[str] = ()) -> list[str]:
        """Delete what a killed writer of this run left: temporary files of atomic writes
        (``.<name>.*.tmp``) of the run's own files and of ``products`` (file stems in the run
        root, e.g. "actors"), and incomplete checkpoints (a tensor file without its JSON, or
        a JSON without its tensors). Safe only under the lock, which RunDir holds. Other
        files' temporaries (an `evaluate` writing its report now) are left alone.
        Returns the names removed, relative to the run."""
        owned = set(OWN_FILES) | {f"{p}{ext}" for p in products for ext in (".safetensors", ".json")}
        doomed = [p for p in self.path.glob(".*.tmp")
                  if any(p.name.startswith(f".{name}.") for name in owned)]
        if self.checkpoints.is_dir():
            doomed += self.checkpoints.glob(".*.tmp")
            for p in self.checkpoints.iterdir():
                if p.name == POINTER or p.suffix not in (".json", ".safetensors"):
                    continue
                if not is_complete(p.with_suffix("")):
                    doomed.append(p)
        removed = []
        for p in doomed:
            p.unlink(missing_ok=True)
            removed.append(str(p.relative_to(self.path)))
        if removed:
            log.info("%s: removed %d leftover(s) of an interrupted writer: %s", self.path,
                     len(removed), ", ".join(sorted(removed)))
        return removed

    # ------------------------------------------------------------------ the run record

    def check_data(self, data_file: str | os.PathLike, data_sha256: str, *,
                   allow_change: bool = False) -> str | None:
        """Refuse a dataset whose content differs from the one the run is tied to (RunError
        naming the file and both hashes) unless allow_change. Returns the recorded hash the
        data differs from (None: the same, or none recorded yet)."""
        known = self._read_record(self.path / RECORD).get("data", {}).get("sha256")
        if known is None or known == data_sha256:
            return None
        if not allow_change:
            raise RunError(
                f"{self.path}: dataset {data_file} has changed since the run started on it "
                f"(sha256 {known} recorded in {RECORD}, {data_sha256} now); use a new run "
                f"directory, or pass --allow-data-change to continue on the new data")
        log.warning("%s: continuing on a changed dataset %s (sha256 %s, was %s)", self.path,
                    data_file, data_sha256, known)
        return known

    def record_session(self, data_file: str | os.PathLike, data_sha256: str, device: str, *,
                       data_changed_from: str | None = None,
                       processes: dict | None = None) -> dict:
        """Tie the run to ``data_sha256`` and append this process's session to run.json: time,
        command, versions (with the git commit), hardware. Called when a process starts to
        train in the run, so that reopening a finished run leaves it as it is. Returns the
        record."""
        path = self.path / RECORD
        record = self._read_record(path)
        if not record and self._has_checkpoints():
            log.info("%s: the run predates dataset fingerprints; recording %s", self.path,
                     data_sha256)
        session = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "command": " ".join(sys.argv), "versions": versions(),
                   "hardware": hardware(str(device))}
        if data_changed_from is not None:
            session["data_changed_from"] = data_changed_from
        if processes is not None:   # several training processes (torchrun): their count, backend
            session["processes"] = processes
        record = {"format": RECORD_FORMAT, "data": {"file": str(data_file), "sha256": data_sha256},
                  "sessions": [*record.get("sessions", []), session]}
        atomic_write_json(path, record)
        return record

    @staticmethod
    def _read_record(path: Path) -> dict:
        if not path.is_file():
            return {}
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunError(f"{path}: unreadable run record: {e}") from e
        if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
            raise RunError(f"{path}: not a scoredec run record")
        return record

    # ------------------------------------------------------------------ checkpoints

    def checkpoint_stem(self, tag: str) -> Path:
        """``<run>/checkpoints/<tag>``, the stem for save_checkpoint / load_checkpoint."""
        if (
            not tag
            or "/" in tag
            or "\\" in tag
            or tag.startswith(".")
            or tag == POINTER.removesuffix(".json")
        ):
            raise ValueError(f"invalid checkpoint tag {tag!r}")
        return self.checkpoints / tag

    def _tags(self, prefix: str) -> list[str]:
        if not self.checkpoints.is_dir():
            return []
        tags = {p.name[: -len(".json")] for p in self.checkpoints.glob("*.json") if p.name != POINTER}
        return [t for t in tags if t.startswith(prefix) and is_complete(self.checkpoints / t)]

    def _order(self, tags: list[str]) -> list[str]:
        """Oldest first: by trailing step number, then by record order, then by commit time."""
        seq = self._read_pointer().get("sequence", {})

        def key(tag: str) -> tuple[int, int, int]:
            m = _STEP_RE.search(tag)
            json_path = checkpoint_paths(self.checkpoints / tag)[1]
            return (int(m.group(1)) if m else -1, int(seq.get(tag, -1)), json_path.stat().st_mtime_ns)

        return sorted(tags, key=key)

    def latest(self, prefix: str) -> Path | None:
        """Stem of the newest complete checkpoint whose tag starts with ``prefix``, or None.

        Newest means the largest step number at the end of the tag ("stage1-000400"); tags
        without one are ordered by :meth:`record_latest` calls, then by the JSON's write time.
        """
        tags = self._order(self._tags(prefix))
        return self.checkpoints / tags[-1] if tags else None

    def latest_step(self, prefix: str) -> int:
        """The step of the newest complete checkpoint with ``prefix`` (0 without one): where
        the stage resumes."""
        stem = self.latest(prefix)
        if stem is None:
            return 0
        json_path = checkpoint_paths(stem)[1]
        try:
            return int(json.loads(json_path.read_text(encoding="utf-8"))["meta"]["step"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RunError(f"{json_path}: no step recorded in the checkpoint: {e}") from e

    def _read_pointer(self) -> dict:
        path = self.checkpoints / POINTER
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RunError(f"{path}: unreadable checkpoint pointer: {e}") from e
        return data if isinstance(data, dict) else {}

    def record_latest(self, tag: str) -> None:
        """Point ``checkpoints/latest.json`` at ``tag`` (call after save_checkpoint succeeds)."""
        if not is_complete(self.checkpoint_stem(tag)):
            raise RunError(
                f"{self.checkpoint_stem(tag)}: cannot record an incomplete checkpoint as latest"
            )
        pointer = self._read_pointer()
        seq = pointer.get("sequence", {})
        seq[tag] = max(seq.values(), default=-1) + 1
        atomic_write_json(self.checkpoints / POINTER, {"latest": tag, "sequence": seq})

    def prune(self, prefix: str, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` complete checkpoints with ``prefix``; return their tags.

        Incomplete leftovers with the prefix (tensors without JSON, temp files of a killed
        save) are removed too.
        """
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        ordered = self._order(self._tags(prefix))
        doomed = ordered[: max(len(ordered) - keep, 0)]
        for tag in doomed:
            st_path, json_path = checkpoint_paths(self.checkpoints / tag)
            json_path.unlink(missing_ok=True)  # un-commit first: a half-pruned stem reads incomplete
            st_path.unlink(missing_ok=True)
        for p in self.checkpoints.glob(f"{glob_escape(prefix)}*.safetensors"):
            if not checkpoint_paths(p.with_suffix(""))[1].exists():
                p.unlink(missing_ok=True)
        for p in self.checkpoints.glob(f".{glob_escape(prefix)}*.tmp"):
            p.unlink(missing_ok=True)
        if doomed:
            pointer = self._read_pointer()
            seq = {t: s for t, s in pointer.get("sequence", {}).items() if t not in doomed}
            if pointer:
                latest = pointer.get("latest")
                atomic_write_json(
                    self.checkpoints / POINTER,
                    {"latest": latest if latest not in doomed else None, "sequence": seq},
                )
        return doomed


class RunView(RunDir):
    """A run directory that another process holds, read only: its checkpoints (latest,
    latest_step, checkpoint_stem) for the ranks of a multi-process training that do not write
    (scoredec.distributed: rank 0 holds the RunDir and its lock). Takes no lock; writing raises."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.config_path = self.path / "config.yaml"
        self._lock = None

    def _read_only(self, *args, **kwargs):
        raise RunError(f"{self.path}: this process reads the run; the process holding its lock "
                       "writes it")

    record_latest = prune = remove_leftovers = record_session = _read_only


def glob_escape(text: str) -> str:
    """Escape glob metacharacters so a tag prefix matches literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# ----------------------------------------------------------------------------- metrics


def read_metrics(path: str | os.PathLike, stage: str | None = None) -> list[dict]:
    """Records of ``metrics.jsonl`` (a run directory or the file itself), optionally of one stage.

    A torn last line (a crash mid-write) is skipped with a warning; a bad line elsewhere raises.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                log.warning("%s: skipping torn last line %d", path, i + 1)
                continue
            raise ValueError(f"{path}: line {i + 1} is not JSON: {e}") from e
        if stage is None or rec.get("stage") == stage:
            out.append(rec)
    return out


_SINKS: list[Callable[[str, int, dict[str, float]], None]] = []


@contextmanager
def metrics_sink(sink: Callable[[str, int, dict[str, float]], None]) -> Iterator[None]:
    """While inside, every MetricsLogger.log call also goes to sink(stage, step, scalars): an
    experiment tracker (scoredec.wandb_logger) sees what metrics.jsonl and TensorBoard see."""
    _SINKS.append(sink)
    try:
        yield
    finally:
        _SINKS.remove(sink)


class MetricsLogger:
    """Scalar metrics to ``<path>/metrics.jsonl`` (always) and TensorBoard (if available).

    Each :meth:`log` call is one JSON line ``{"step", "stage", "time", <name>: value, ...}``,
    flushed at once so that a crash loses at most the line being written. Non-finite values
    are written as null (strict JSON has no NaN) with a warning naming the metric.

    On resume call :meth:`truncate_after` with the checkpoint's step so the replayed steps
    are not logged twice in the JSONL file. TensorBoard event files are append-only; it
    shows replayed steps again after a resume.
    """

    RESERVED = ("step", "stage", "time")

    def __init__(self, path: str | os.PathLike, *, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.file = self.path / "metrics.jsonl"
        self._warned_nonfinite: set[str] = set()
        self._writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                log.warning("TensorBoard unavailable (%s); logging metrics to %s only", e, self.file)
            else:
                self._writer = SummaryWriter(log_dir=str(self.path / "tensorboard"))
        self._fh = self._open()

    def _open(self):
        # A crash mid-write leaves a torn last line (no newline); drop it, or our first line
        # would be glued onto it.
        if self.file.is_file() and self.file.stat().st_size > 0:
            data = self.file.read_bytes()
            if not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                log.warning("%s: dropping a torn last line (%d bytes)", self.file, len(data) - cut)
                atomic_write_bytes(self.file, data[:cut])
        return open(self.file, "a", encoding="utf-8")

    def log(self, step: int, stage: str, **scalars: float) -> None:
        """Append ``scalars`` at ``step`` of ``stage``; TensorBoard tags are ``<stage>/<name>``."""
        if self._fh is None:
            raise RuntimeError(f"{self.file}: logger is closed")
        record: dict[str, Any] = {"step": int(step), "stage": str(stage), "time": time.time()}
        for name, value in scalars.items():
            if name in self.RESERVED:
                raise ValueError(f"metric name {name!r} is reserved")
            v = float(value)
            if not math.isfinite(v):
                if name not in self._warned_nonfinite:
                    log.warning("metric %s/%s is %s at step %d (written as null)", stage, name, v, step)
                    self._warned_nonfinite.add(name)
                record[name] = None
            else:
                record[name] = v
            if self._writer is not None:
                self._writer.add_scalar(f"{stage}/{name}", v, global_step=int(step))
        self._fh.write(json.dumps(record, allow_nan=False) + "\n")
        self._fh.flush()
        for sink in _SINKS:
            sink(str(stage), int(step), {name: float(value) for name, value in scalars.items()})

    def truncate_after(self, stage: str, step: int) -> int:
        """Rewrite metrics.jsonl (atomically) without lines of ``stage`` with step > ``step``.

        Returns the number of lines removed. Torn lines are dropped as well.
        """
        self._fh.close()
        kept, removed = [], 0
        try:
            if self.file.is_file():
                for line in self.file.read_text(encoding="utf-8").splitlines():
                    if not line.strip():
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        log.warning("%s: dropping a torn line", self.file)
                        removed += 1
                        continue
                    if rec.get("stage") == stage and rec.get("step", -1) > step:
                        removed += 1
                        continue
                    kept.append(line)
                if removed:
                    atomic_write_text(self.file, "".join(line + "\n" for line in kept))
        finally:
            self._fh = self._open()
        return removed

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
