"""The dataset format: exact round trip, bad inputs named by field, atomic writes, damaged files."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

import scoredec.data.hdf5 as hdf5
from scoredec.data import DatasetError, MultiAgentDataset, read_dataset, write_dataset


def make(T=23, obs_dims=(4, 6, 3), act_dims=(2, 1, 2), state_dim=5, seed=0) -> MultiAgentDataset:
    rng = np.random.default_rng(seed)
    n, om, am = len(obs_dims), max(obs_dims), max(act_dims)
    obs = np.zeros((T, n, om), np.float32)
    nobs = np.zeros((T, n, om), np.float32)
    act = np.zeros((T, n, am), np.float32)
    for i, (o, a) in enumerate(zip(obs_dims, act_dims)):
        obs[:, i, :o] = rng.standard_normal((T, o))
        nobs[:, i, :o] = rng.standard_normal((T, o))
        act[:, i, :a] = rng.uniform(-1, 1, (T, a))
    terminals = np.zeros(T, bool)
    timeouts = np.zeros(T, bool)
    if T > 12:
        act[0, 0, 0] = 1.0  # the boundary is allowed
        terminals[[5, 12]] = True
        timeouts[T - 1] = True
    state = None if state_dim is None else rng.standard_normal((T, state_dim)).astype(np.float32)
    return MultiAgentDataset(
        observations=obs,
        actions=act,
        rewards=rng.standard_normal((T, n)).astype(np.float32),
        next_observations=nobs,
        terminals=terminals,
        timeouts=timeouts,
        state=state,
        next_state=None if state is None else state[::-1].copy(),
        obs_dims=tuple(obs_dims),
        act_dims=tuple(act_dims),
        agent_names=tuple(f"agent_{i}" for i in range(n)),
        env_id="mpe/spread",
        quality="expert",
        generator="scripted",
        seed=seed,
        reference_returns={"random": 159.8, "expert": 516.8},
        attrs={"episode_length": 25, "policy": {"kind": "scripted", "noise": [0.1, 0.2]}},
    )


@pytest.mark.parametrize("compression", [None, "gzip", "lzf"])
def test_round_trip(tmp_path, compression):
    ds = make()
    write_dataset(tmp_path / "d.h5", ds, compression=compression)
    back = read_dataset(tmp_path / "d.h5")
    assert back.equals(ds)
    assert (back.n_agents, back.n_transitions, back.obs_max, back.act_max) == (3, 23, 6, 2)
    with h5py.File(tmp_path / "d.h5") as f:
        assert f.attrs["schema_version"] == 1 and f.attrs["scoredec_version"]


def test_round_trip_without_state_or_references(tmp_path):
    ds = dataclasses.replace(make(state_dim=None), reference_returns=None, attrs={})
    write_dataset(tmp_path / "d.h5", ds)
    back = read_dataset(tmp_path / "d.h5")
    assert back.equals(ds) and back.state is None and back.reference_returns is None


def test_empty_dataset_is_refused_and_not_written(tmp_path):
    # Nothing can be learned from or described by zero rows: refused on write as on read.
    with pytest.raises(DatasetError, match=r"d\.h5: field 'observations': has no rows"):
        write_dataset(tmp_path / "d.h5", make(T=0))
    assert list(tmp_path.iterdir()) == []


def test_write_converts_float64_and_int_flags(tmp_path):
    ds = make()
    ds64 = dataclasses.replace(
        ds,
        observations=ds.observations.astype(np.float64),
        terminals=ds.terminals.astype(np.int8),
        agent_names=list(ds.agent_names),
    )
    write_dataset(tmp_path / "d.h5", ds64)
    back = read_dataset(tmp_path / "d.h5")
    assert back.observations.dtype == np.float32 and back.terminals.dtype == np.bool_
    assert back.equals(ds)


def test_episode_boundaries():
    assert make().episode_boundaries().tolist() == [5, 12, 22]


def _set(ds, **changes):
    return dataclasses.replace(ds, **changes)


def _bad_cases():
    ds = make()
    act = ds.actions.copy()
    act[12, 0, 1] = 1.73
    obs_nan = ds.observations.copy()
    obs_nan[3, 1, 2] = np.nan
    pad = ds.observations.copy()
    pad[7, 2, 4] = 0.5  # agent 2 has width 3
    act_pad = ds.actions.copy()
    act_pad[1, 1, 1] = 0.1  # agent 1 has width 1
    rew_inf = ds.rewards.copy()
    rew_inf[4, 2] = np.inf
    return [
        ("missing", _set(ds, rewards=None), "rewards", "missing"),
        ("ndim", _set(ds, rewards=ds.rewards[:, :, None]), "rewards", "expected 2 dimensions"),
        ("rows", _set(ds, rewards=ds.rewards[:-1]), "rewards", "has 22 rows, observations have 23"),
        ("agents", _set(ds, actions=ds.actions[:, :2]), "actions", "has 2 agents"),
        (
            "next shape",
            _set(ds, next_observations=ds.next_observations[:, :, :5]),
            "next_observations",
            "differs",
        ),
        (
            "state rows",
            _set(ds, state=ds.state[:-2], next_state=ds.next_state[:-2]),
            "state",
            "has 21 rows",
        ),
        ("state pair", _set(ds, next_state=None), "next_state", "missing while 'state'"),
        ("dtype", _set(ds, rewards=ds.rewards.astype(np.int32)), "rewards", "expected dtype float32"),
        (
            "nan",
            _set(ds, observations=obs_nan),
            "observations",
            "non-finite value nan at row 3, agent 1, column 2",
        ),
        ("inf", _set(ds, rewards=rew_inf), "rewards", "non-finite value inf at row 4, agent 2"),
        (
            "range",
            _set(ds, actions=act),
            "actions",
            r"values outside \[-1, 1\] \(max 1.73 at row 12, agent 0",
        ),
        (
            "padding",
            _set(ds, observations=pad),
            "observations",
            "nonzero padding 0.5 at row 7, agent 2, column 4",
        ),
        (
            "act padding",
            _set(ds, actions=act_pad),
            "actions",
            "nonzero padding 0.1 at row 1, agent 1, column 1",
        ),
        ("dims len", _set(ds, obs_dims=(4, 6)), "obs_dims", "2 entries for 3 agents"),
        ("dims big", _set(ds, act_dims=(2, 3, 2)), "act_dims", "agent 1 has width 3, outside 1..2"),
        ("dims type", _set(ds, obs_dims=(4, 6.0, 3)), "obs_dims", "tuple of ints"),
        ("names len", _set(ds, agent_names=("a", "b")), "agent_names", "2 entries for 3 agents"),
        ("names dup", _set(ds, agent_names=("a", "b", "a")), "agent_names", "not unique"),
        (
            "flags float",
            _set(ds, terminals=ds.terminals.astype(np.float32)),
            "terminals",
            "expected bool flags",
        ),
        (
            "flags values",
            _set(ds, timeouts=np.full(23, 2, np.int64)),
            "timeouts",
            "0 or 1, got 2 at row 0",
        ),
        ("env", _set(ds, env_id=""), "env_id", "non-empty string"),
        ("seed", _set(ds, seed=1.5), "seed", "expected an int"),
        (
            "refs",
            _set(ds, reference_returns={"expert": 1.0}),
            "reference_returns",
            "'random' and 'expert'",
        ),
        (
            "refs nan",
            _set(ds, reference_returns={"random": 0.0, "expert": float("nan")}),
            "reference_returns",
            "finite",
        ),
        ("attrs", _set(ds, attrs={"x": object()}), "attrs", "JSON"),
    ]


@pytest.mark.parametrize("name, ds, field, detail", _bad_cases(), ids=[c[0] for c in _bad_cases()])
def test_bad_input_names_field(tmp_path, name, ds, field, detail):
    path = tmp_path / "dataset.h5"
    with pytest.raises(DatasetError, match=rf"dataset\.h5: field '{field}': .*{detail}") as info:
        write_dataset(path, ds)
    assert info.value.field == field and info.value.file == str(path)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_validate_in_memory_requires_storage_dtypes():
    ds = make()
    with pytest.raises(
        DatasetError, match=r"<memory>: field 'observations': expected dtype float32, got float64"
    ):
        _set(ds, observations=ds.observations.astype(np.float64)).validate()


def test_failed_write_leaves_no_file_and_keeps_old(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    original = hdf5._write_array
    calls = []

    def failing(f, name, array, compression):
        calls.append(name)
        if len(calls) == 3:
            raise OSError("disk full")
        original(f, name, array, compression)

    monkeypatch.setattr(hdf5, "_write_array", failing)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(path, make())
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(hdf5, "_write_array", original)
    old = make(seed=1)
    write_dataset(path, old)
    calls.clear()
    monkeypatch.setattr(hdf5, "_write_array", failing)
    with pytest.raises(OSError):
        write_dataset(path, make(seed=2))
    assert read_dataset(path).equals(old)
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.99])
def test_truncated_file_rejected(tmp_path, keep):
    path = tmp_path / "d.h5"
    write_dataset(path, make(T=2000), compression=None)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DatasetError, match=r"d\.h5") as info:
        read_dataset(path)
    assert info.value.file == str(path)


def test_garbage_and_missing_files_rejected(tmp_path):
    path = tmp_path / "g.h5"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DatasetError, match=r"g\.h5: cannot read HDF5"):
        read_dataset(path)
    with pytest.raises(DatasetError, match=r"none\.h5: no such file"):
        read_dataset(tmp_path / "none.h5")


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f)


@pytest.mark.parametrize(
    "edit, field, detail",
    [
        (
            lambda f: f.attrs.__setitem__("schema_version", 2),
            "schema_version",
            "unknown schema version 2",
        ),
        (lambda f: f.attrs.__setitem__("format", "other"), "format", "not a scoredec dataset"),
        (lambda f: f.__delitem__("actions"), "actions", "missing"),
        (lambda f: f.attrs.__delitem__("env_id"), "env_id", "missing attribute"),
        (lambda f: f.attrs.__setitem__("obs_dims", "[4, 6"), "obs_dims", "not valid JSON"),
        (lambda f: f.attrs.__setitem__("n_agents", 4), "n_agents", "attribute says 4"),
        (lambda f: f.create_dataset("extra", data=np.zeros(3)), "extra", "unknown dataset"),
        (
            lambda f: (f.__delitem__("rewards"), f.create_dataset("rewards", data=np.zeros((23, 3)))),
            "rewards",
            "expected dtype float32, got float64",
        ),
        (
            lambda f: f["actions"].__setitem__((2, 1, 0), 3.0),
            "actions",
            r"outside \[-1, 1\] \(max 3 at row 2, agent 1",
        ),
    ],
)
def test_bad_file_names_field(tmp_path, edit, field, detail):
    path = tmp_path / "dataset.h5"
    write_dataset(path, make())
    _edit(path, edit)
    with pytest.raises(DatasetError, match=rf"dataset\.h5: field '{field}': .*{detail}"):
        read_dataset(path)


def test_bad_compression_argument(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        write_dataset(tmp_path / "d.h5", make(), compression="zstd")


def test_value_limit_is_configurable(tmp_path, monkeypatch):
    ds = make()
    ds.rewards[4, 2] = 5e6
    path = tmp_path / "d.h5"
    with pytest.raises(DatasetError, match=r"field 'rewards': value 5e\+06 at row 4, agent 2 exceeds "
                                           r"the limit \|x\| <= 1e\+06"):
        write_dataset(path, ds)
    write_dataset(path, ds, limit=1e7)
    assert read_dataset(path, limit=1e7).equals(ds)
    with pytest.raises(DatasetError, match="exceeds the limit"):
        read_dataset(path)
    monkeypatch.setenv("SCOREDEC_VALUE_LIMIT", "1e7")
    assert read_dataset(path).equals(ds)
    monkeypatch.setenv("SCOREDEC_VALUE_LIMIT", "-3")
    with pytest.raises(ValueError, match="SCOREDEC_VALUE_LIMIT must be a positive finite number"):
        read_dataset(path)


def test_state_positions_are_row_and_column(tmp_path):
    ds = make()
    ds.state[3, 1] = np.inf
    with pytest.raises(DatasetError, match=r"field 'state': non-finite value inf at row 3, column 1$"):
        ds.validate()


@pytest.mark.parametrize(
    "edit, field, detail",
    [
        (lambda f: (f.__delitem__("rewards"),
                    f.create_dataset("rewards", data=np.zeros((23, 3), np.float32), scaleoffset=4)),
         "rewards", "uses the HDF5 filter"),
        (lambda f: (f.__delitem__("rewards"),
                    f.create_dataset("rewards", shape=(23, 3), dtype=np.float32)),
         None, None),   # contiguous, never written: 276 bytes declared, allowed (tiny)
        (lambda f: (f.__delitem__("state"), f.__delitem__("next_state"),
                    f.create_dataset("state", shape=(23, 10**7), dtype=np.float32, chunks=(1, 4096)),
                    f.create_dataset("next_state", shape=(23, 10**7), dtype=np.float32,
                                     chunks=(1, 4096))),
         "state", "declares 920000000 bytes"),
        (lambda f: f.attrs.__setitem__("n_transitions", np.arange(3)), "n_transitions",
         "expected a scalar attribute"),
        (lambda f: f.attrs.__setitem__("env_id", b"\xff\xfe"), "env_id", "not UTF-8"),
    ],
)
def test_storage_the_reader_will_not_touch(tmp_path, edit, field, detail):
    path = tmp_path / "dataset.h5"
    write_dataset(path, make())
    _edit(path, edit)
    if field is None:
        # Unwritten small arrays read as zeros (the fill value): the schema, not the storage
        # check, decides about them.
        read_dataset(path)
        return
    with pytest.raises(DatasetError, match=rf"dataset\.h5: field '{field}': .*{detail}"):
        read_dataset(path)
