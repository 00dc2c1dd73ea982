"""Atomic writes: complete new file or untouched old file, never a temp file left behind."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from scoredec.io import _UMASK, atomic_output, atomic_write_bytes, atomic_write_json, atomic_write_text


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_write_bytes_and_text(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "sub" / "b.txt", "héllo")  # creates the parent
    assert (tmp_path / "sub" / "b.txt").read_text(encoding="utf-8") == "héllo"
    atomic_write_text(tmp_path / "a.bin", "new")  # replaces
    assert (tmp_path / "a.bin").read_text() == "new"
    assert _leftovers(tmp_path) == []


def test_json_converts_numpy_and_sorts(tmp_path):
    obj = {"b": np.float32(0.5), "a": np.arange(3), "c": (1, np.int64(2)), "d": np.bool_(True)}
    atomic_write_json(tmp_path / "x.json", obj)
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text) == {"a": [0, 1, 2], "b": 0.5, "c": [1, 2], "d": True}
    assert text.index('"a"') < text.index('"b"')
    assert text.endswith("\n")


@pytest.mark.parametrize("bad", [math.nan, math.inf, np.float64("nan")])
def test_json_refuses_nonfinite_and_keeps_old(tmp_path, bad):
    dest = tmp_path / "x.json"
    atomic_write_json(dest, {"ok": 1})
    with pytest.raises(ValueError, match=r"\$\.v\[1\]"):
        atomic_write_json(dest, {"v": [0.0, bad]})
    assert json.loads(dest.read_text()) == {"ok": 1}
    assert _leftovers(tmp_path) == []


def test_atomic_output_success_and_failure(tmp_path):
    dest = tmp_path / "data.h5"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(dest) as tmp:
            assert tmp.parent == dest.parent and tmp != dest
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert dest.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []
    with atomic_output(dest) as tmp:
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new"
    assert _leftovers(tmp_path) == []


def test_keyboard_interrupt_cleans_up(tmp_path):
    dest = tmp_path / "f"
    with pytest.raises(KeyboardInterrupt):
        with atomic_output(dest) as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert not dest.exists() and _leftovers(tmp_path) == []


def test_new_file_gets_umask_mode_and_replacement_keeps_mode(tmp_path):
    atomic_write_text(tmp_path / "a", "x")  # not mkstemp's 0600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o666 & ~_UMASK
    os.chmod(tmp_path / "a", 0o640)
    atomic_write_text(tmp_path / "a", "y")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o640
