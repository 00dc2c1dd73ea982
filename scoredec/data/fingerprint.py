"""A dataset file's fingerprint: the SHA-256 of its bytes, which runs and cards are tied to.

Computed by streaming the file once per process. The in-process cache is keyed by the file's
identity and change stamps (path, device, inode, size, mtime_ns, ctime_ns), so an edit in place
or a file renamed over the path is hashed again; it is never written anywhere, so another
process always hashes the content itself.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["file_sha256"]

_CACHE: dict[tuple, str] = {}


def _identity(path: str, st: os.stat_result) -> tuple:
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's content (FileNotFoundError naming the path if it is missing)."""
    resolved = os.path.realpath(Path(path))
    with open(resolved, "rb") as f:
        # fstat of the open file: the key describes exactly the bytes read below, even if
        # another file is renamed over the path meanwhile.
        key = _identity(resolved, os.fstat(f.fileno()))
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    _CACHE[key] = digest
    return digest
