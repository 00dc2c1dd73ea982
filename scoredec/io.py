"""Atomic file writes: a reader sees either the old file or the complete new one, never a half.

Every writer goes through a temporary file in the destination's own directory (so that
``os.replace`` is a rename within one filesystem, which POSIX makes atomic), is fsynced, and
is then renamed over the destination. On any exception the temporary file is removed and an
existing destination is left untouched.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "atomic_output",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "to_jsonable",
]


def _current_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before worker threads exist.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk; some platforms
    # (Windows) cannot open a directory, which only costs durability, not atomicity.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    For writers that want a file name rather than bytes (h5py, safetensors). The temporary
    file exists (empty) when the block starts; the writer may overwrite or truncate it.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # mkstemp creates 0600; give the file the mode an ordinary open() would (or the mode of
        # the file it replaces), so that datasets and configs stay readable by the group.
        mode = dest.stat().st_mode & 0o7777 if dest.exists() else 0o666 & ~_UMASK
        os.chmod(tmp, mode)
        yield tmp
        # Writers may have closed the file without fsync; make the bytes durable before
        # the rename publishes them.
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any, *, where: str = "$") -> Any:
    """Convert ``obj`` to plain JSON types: numpy/torch scalars to Python, tuples and
    arrays to lists, Paths to strings. NaN and infinity raise ``ValueError`` naming the
    location (``$.a[3]``) because they are not JSON and would be silently mangled."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise ValueError(f"cannot write {obj!r} at {where} as JSON: NaN and infinity are not JSON")
        return float(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise ValueError(f"cannot write key {k!r} at {where} as JSON: keys must be strings")
            out[k] = to_jsonable(v, where=f"{where}.{k}")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, where=f"{where}[{i}]") for i, v in enumerate(obj)]
    # numpy and torch are optional here: recognise them by their conversion methods
    # rather than importing them into a module that only writes files.
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist(), where=where)
    item = getattr(obj, "item", None)
    if callable(item):
        return to_jsonable(item(), where=where)
    raise TypeError(f"cannot write object of type {type(obj).__name__} at {where} as JSON")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as JSON (indent 2, sorted keys, trailing newline) atomically.

    numpy scalars and arrays are converted; NaN or infinity raise ``ValueError``.
    """
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, allow_nan=False)
    atomic_write_text(path, text + "\n")
