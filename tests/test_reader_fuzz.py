"""Property-based fuzz of the dataset format: damaged files (random attribute values and types,
arrays of random shape and dtype, dropped and extra arrays, links, truncated and flipped bytes)
are read either into a valid dataset or refused with DatasetError, never with another error;
reading creates no file, and a write that is refused leaves nothing behind.

Derandomized with a fixed example budget, so CI runs the same examples every time in seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoredec.data import DatasetError, MultiAgentDataset, read_dataset, write_dataset
from scoredec.data.schema import ARRAY_FIELDS

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

ATTRS = ("format", "schema_version", "scoredec_version", "env_id", "quality", "generator", "seed",
         "n_agents", "n_transitions", "obs_dims", "act_dims", "agent_names", "reference_returns",
         "attrs")
FIELDS = tuple(ARRAY_FIELDS)
DTYPES = ("float32", "float64", "float16", "int8", "int32", "int64", "uint8", "bool", "complex64",
          "S3")


def valid(rows: int = 12) -> MultiAgentDataset:
    """Two agents of widths (3, 2) / (2, 1), padded, with a global state: every field present."""
    rng = np.random.default_rng(0)
    obs = np.zeros((rows, 2, 3), np.float32)
    obs[:, 0, :3] = rng.standard_normal((rows, 3))
    obs[:, 1, :2] = rng.standard_normal((rows, 2))
    act = np.zeros((rows, 2, 2), np.float32)
    act[:, 0, :2] = rng.uniform(-1, 1, (rows, 2))
    act[:, 1, :1] = rng.uniform(-1, 1, (rows, 1))
    flags = np.zeros(rows, bool)
    flags[-1] = True
    state = rng.standard_normal((rows, 4)).astype(np.float32)
    return MultiAgentDataset(
        observations=obs, actions=act, rewards=rng.standard_normal((rows, 2)).astype(np.float32),
        next_observations=obs[::-1].copy(), terminals=flags, timeouts=np.zeros(rows, bool),
        state=state, next_state=state[::-1].copy(), obs_dims=(3, 2), act_dims=(2, 1),
        agent_names=("a", "b"), env_id="bandit", quality="expert", generator="fuzz", seed=1,
        reference_returns={"random": 0.0, "expert": 1.0}, attrs={"k": [1, 2]})


# --------------------------------------------------------------------------- strategies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)

attr_values = st.one_of(
    st.none(),                                               # delete the attribute
    st.integers(-2**63, 2**63 - 1).map(np.int64),
    st.floats().map(np.float64),
    st.booleans().map(np.bool_),
    st.text(st.characters(blacklist_characters="\x00"), max_size=8),   # HDF5 strings hold no NUL
    st.binary(max_size=8).map(lambda b: np.bytes_(b.replace(b"\x00", b""))),
    json_values.map(lambda v: json.dumps(v)),                # valid JSON of any shape
    st.lists(st.integers(-3, 9), max_size=4).map(lambda v: np.array(v, np.int64)),
    st.sampled_from(['[3, 2]', '["a", "b"]', '{"random": 0, "expert": 0}', '{"random": 1e999}',
                     "[1e400]", "{}", "[", "null"]),
)


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim)))
    size = int(np.prod(shape)) if shape else 1
    if dtype == "S3":
        return np.array([b"ab"] * size, dtype="S3").reshape(shape)
    values = draw(st.lists(st.floats(width=32) | st.sampled_from([0.0, 1.0, -1.0, 1e7, 3e38]),
                           min_size=size, max_size=size))
    with np.errstate(all="ignore"):
        return np.array(values, np.float64).reshape(shape).astype(dtype)


def _set_attr(f, name, value):
    if value is None:
        if name in f.attrs:
            del f.attrs[name]
    else:
        f.attrs[name] = value


def _set_array(f, name, array):
    if name in f.keys():
        del f[name]
    if array is not None:
        f.create_dataset(name, data=array)


def _link(f, name, target):
    if name in f.keys():
        del f[name]
    f[name] = target


mutations = st.one_of(
    st.tuples(st.just("attr"), st.sampled_from(ATTRS) | st.text("xyz", min_size=1, max_size=3),
              attr_values),
    st.tuples(st.just("array"), st.sampled_from(FIELDS) | st.just("extra"), st.none() | arrays()),
    st.tuples(st.just("rows"), st.sampled_from(FIELDS), st.integers(0, 14)),
    st.tuples(st.just("value"), st.sampled_from(["observations", "rewards", "actions", "state"]),
              st.sampled_from([np.nan, np.inf, -np.inf, 1e30, 2e6, 1.5, -1.0000001])),
    st.tuples(st.just("link"), st.sampled_from(FIELDS),
              st.sampled_from(["soft", "dangling", "external", "group"])),
)


def _plain_array(f: h5py.File, name: str) -> bool:
    """A hard-linked dataset (an earlier mutation may have made it a link or a group)."""
    return (name in f.keys() and isinstance(f.get(name, getlink=True), h5py.HardLink)
            and isinstance(f[name], h5py.Dataset))


def _apply(f: h5py.File, mutation, folder: Path) -> None:
    kind, name, arg = mutation
    if kind == "attr":
        _set_attr(f, name, arg)
    elif kind == "array":
        _set_array(f, name, arg)
    elif kind == "rows" and _plain_array(f, name) and f[name].ndim:
        data = f[name][()]
        reps = -(-arg // max(len(data), 1)) if len(data) else 0
        grown = np.concatenate([data] * reps)[:arg] if reps else data[:0]
        _set_array(f, name, grown)
    elif kind == "value" and _plain_array(f, name) and f[name].size:
        data = f[name][()]
        data.reshape(-1)[0] = arg
        _set_array(f, name, data)
    elif kind == "link":
        if arg == "soft":
            _link(f, name, h5py.SoftLink("/observations"))
        elif arg == "dangling":
            _link(f, name, h5py.SoftLink("/nowhere"))
        elif arg == "external":
            _link(f, name, h5py.ExternalLink(str(folder / "other.h5"), "/x"))
        else:
            if name in f.keys():
                del f[name]
            f.create_group(name)


def _read_or_refuse(path: Path) -> MultiAgentDataset | None:
    """read_dataset's result, or None when it refused with DatasetError; any other exception
    fails the test. The folder must hold the same files afterwards."""
    before = sorted(os.listdir(path.parent))
    try:
        ds = read_dataset(path)
    except DatasetError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        ds = None
    assert sorted(os.listdir(path.parent)) == before, "reading left a file behind"
    if ds is not None:
        ds.validate(str(path))  # what was accepted really is a valid dataset
    return ds


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _fresh(folder: Path, name: str = "d.h5") -> Path:
    for p in folder.iterdir():
        p.unlink()
    path = folder / name
    write_dataset(path, valid(), compression=None)
    return path


@FUZZ
@given(edits=st.lists(mutations, min_size=1, max_size=3))
def test_mutated_files_are_read_or_refused_with_dataset_error(folder, edits):
    path = _fresh(folder)
    with h5py.File(path, "r+") as f:
        for edit in edits:
            _apply(f, edit, folder)
    _read_or_refuse(path)


@FUZZ
@given(cut=st.floats(0.0, 1.0, exclude_max=True),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)),
                      max_size=4))
def test_truncated_and_flipped_bytes_are_refused_with_dataset_error(folder, cut, flips):
    path = _fresh(folder)
    data = bytearray(path.read_bytes())
    for where, xor in flips:
        data[int(where * len(data))] ^= xor
    if cut > 0:
        data = data[: int(cut * len(data))]
    path.write_bytes(bytes(data))
    _read_or_refuse(path)


field_changes = st.dictionaries(
    st.sampled_from(FIELDS + ("obs_dims", "act_dims", "agent_names", "env_id", "seed",
                              "reference_returns", "attrs")),
    arrays() | json_values | st.none()
    | st.sampled_from([10**30, 2**63, -2**63 - 1, {"random": 10**400, "expert": 1}, (10**30, 1)]),
    max_size=2)


@FUZZ
@given(changes=field_changes)
def test_a_write_is_complete_or_leaves_nothing(folder, changes):
    for p in folder.iterdir():
        p.unlink()
    old = folder / "d.h5"
    write_dataset(old, valid(), compression="lzf")
    old_bytes = old.read_bytes()
    ds = dataclasses.replace(valid(), **{k: v for k, v in changes.items()
                                         if k in FIELDS or v is not None})
    try:
        write_dataset(old, ds)
    except DatasetError:
        # Refused: the old file is untouched and no temporary file stayed.
        assert os.listdir(folder) == ["d.h5"] and old.read_bytes() == old_bytes
        return
    assert os.listdir(folder) == ["d.h5"]
    assert read_dataset(old).equals(ds.with_storage_dtypes())
