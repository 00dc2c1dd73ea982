"""The OMAR importer: tiny synthetic folders in OMAR's per-agent .npy layout, round trips,
restored episode boundaries, and every bad input named by file and field."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from scoredec.data import DatasetError, read_dataset
from scoredec.data.omar import OMAR_TASKS, import_omar, omar_to_hdf5

STEMS = ("obs", "acs", "rews", "next_obs", "dones")


def write_omar(directory: Path, task: str, n_episodes: int = 3, *, episode_length: int | None = None,
               include_prey: bool = True, dones_at_end: bool = False, seed: int = 0,
               dtype=np.float64, trailing: int = 0) -> dict[str, list[np.ndarray]]:
    """Write consecutive episodes in OMAR's layout; return the arrays written, per stem."""
    spec = OMAR_TASKS[task]
    L = spec.episode_length if episode_length is None else episode_length
    rng = np.random.default_rng(seed)
    obs_dims = spec.obs_dims + (spec.prey_obs_dims if include_prey else ())
    act_dims = spec.act_dims + (spec.prey_act_dims if include_prey else ())
    lengths = [L] * n_episodes + ([trailing] if trailing else [])
    T = sum(lengths)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[np.ndarray]] = {s: [] for s in STEMS + ("states", "next_states")}
    dones = np.zeros(T)
    if dones_at_end:
        dones[np.cumsum([L] * n_episodes) - 1] = 1.0

    def chain(width):
        # An episode of m steps visits m + 1 observations; obs = the first m, next_obs = the last m.
        cur, nxt = [], []
        for m in lengths:
            seq = rng.standard_normal((m + 1, width))
            cur.append(seq[:-1])
            nxt.append(seq[1:])
        return np.concatenate(cur).astype(dtype), np.concatenate(nxt).astype(dtype)

    state = chain(17) if spec.has_state else None
    for i, (o, a) in enumerate(zip(obs_dims, act_dims)):
        obs, next_obs = chain(o)
        arrays = {"obs": obs, "acs": rng.uniform(-1, 1, (T, a)).astype(dtype),
                  "rews": rng.standard_normal(T).astype(dtype), "next_obs": next_obs, "dones": dones}
        if spec.has_state:
            arrays["states"], arrays["next_states"] = state
        for stem, array in arrays.items():
            np.save(directory / f"{stem}_{i}.npy", array)
            written[stem].append(array)
    return written


def test_spread_round_trip(tmp_path):
    src = tmp_path / "simple_spread" / "expert" / "seed_2_data"
    written = write_omar(src, "spread", n_episodes=4)
    ds = omar_to_hdf5(src, "spread", tmp_path / "spread.h5")
    assert (ds.n_transitions, ds.n_agents, ds.obs_max, ds.act_max) == (100, 3, 18, 2)
    for i in range(3):
        np.testing.assert_array_equal(ds.observations[:, i], written["obs"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.actions[:, i], written["acs"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.rewards[:, i], written["rews"][i].astype(np.float32))
        np.testing.assert_array_equal(ds.next_observations[:, i], written["next_obs"][i].astype(np.float32))
    assert ds.observations.dtype == np.float32
    np.testing.assert_array_equal(ds.episode_boundaries(), [24, 49, 74, 99])
    assert not ds.terminals.any() and ds.timeouts.sum() == 4
    assert ds.state is None
    assert (ds.env_id, ds.quality, ds.seed, ds.generator) == ("spread", "expert", 2, "omar-import")
    assert ds.reference_returns == {"random": 159.8, "expert": 516.8}
    assert ds.agent_names == ("agent_0", "agent_1", "agent_2")
    assert read_dataset(tmp_path / "spread.h5").equals(ds)


def test_trailing_partial_episode_has_no_flag(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=2, trailing=7, dtype=np.float32)
    ds = import_omar(tmp_path, "spread")
    assert ds.n_transitions == 57
    np.testing.assert_array_equal(ds.episode_boundaries(), [24, 49])
    assert (ds.quality, ds.seed) == ("unknown", -1)


def test_column_rewards_and_integer_dones_accepted(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=1)
    for i in range(3):
        r = np.load(tmp_path / f"rews_{i}.npy")
        np.save(tmp_path / f"rews_{i}.npy", r[:, None])
        np.save(tmp_path / f"dones_{i}.npy", np.zeros((25, 1), np.int64))
    ds = import_omar(tmp_path, "spread")
    assert ds.rewards.shape == (25, 3)


@pytest.mark.parametrize("task,widths", [("tag", (16, 16, 16, 14)), ("world", (24, 24, 24, 22))])
def test_predator_prey_prey_is_optional_and_padded(tmp_path, task, widths):
    written = write_omar(tmp_path / "d", task, n_episodes=2)
    ds = import_omar(tmp_path / "d", task)
    assert ds.n_agents == 3 and ds.obs_dims == widths[:3]
    assert ds.agent_names == ("predator_0", "predator_1", "predator_2")
    full = omar_to_hdf5(tmp_path / "d", task, tmp_path / "full.h5", include_prey=True)
    assert full.obs_dims == widths and full.act_dims == (2,) * 4
    assert full.agent_names[-1] == "prey"
    prey_w = widths[-1]
    np.testing.assert_array_equal(full.observations[:, 3, :prey_w], written["obs"][3].astype(np.float32))
    assert not full.observations[:, 3, prey_w:].any()
    assert read_dataset(tmp_path / "full.h5").equals(full)


def test_halfcheetah_dones_and_time_limit(tmp_path):
    write_omar(tmp_path, "halfcheetah-2x3", n_episodes=2, dones_at_end=True)
    ds = import_omar(tmp_path, "halfcheetah-2x3")
    assert (ds.n_transitions, ds.obs_max, ds.act_max) == (2000, 6, 3)
    np.testing.assert_array_equal(np.flatnonzero(ds.timeouts), [999, 1999])
    assert not ds.terminals.any()
    assert ds.state.shape == (2000, 17) and ds.next_state.shape == (2000, 17)
    assert ds.reference_returns == {"random": -283.97, "expert": 3568.81}


def test_halfcheetah_early_done_is_terminal_and_limit_cuts_without_done(tmp_path):
    # Episodes of 10 (short limit for the test): a done on step 4 of episode 2 is a true end;
    # after it, a 10-step limit cuts episodes that carry no done.
    L = 10
    write_omar(tmp_path, "halfcheetah-2x3", n_episodes=3, episode_length=L)
    dones = np.zeros(30)
    dones[[9, 13]] = 1
    for i in range(2):
        np.save(tmp_path / f"dones_{i}.npy", dones)
    with pytest.raises(DatasetError, match="next_obs_0.npy"):
        # The synthetic chain breaks at 19, not at 13 + 10 = 23: the check notices.
        import_omar(tmp_path, "halfcheetah-2x3", episode_length=L)
    ds = import_omar(tmp_path, "halfcheetah-2x3", episode_length=L, check_continuity=False)
    np.testing.assert_array_equal(np.flatnonzero(ds.terminals), [13])
    np.testing.assert_array_equal(np.flatnonzero(ds.timeouts), [9, 23])
    assert ds.attrs["episode_order_checked"] is False


def test_explicit_metadata_wins(tmp_path):
    src = tmp_path / "medium-replay" / "seed_1_data"
    write_omar(src, "spread", n_episodes=1)
    assert (import_omar(src, "spread").quality, import_omar(src, "spread").seed) == ("medium-replay", 1)
    ds = import_omar(src, "spread", quality="mine", seed=9)
    assert (ds.quality, ds.seed) == ("mine", 9)


# --------------------------------------------------------------------------- bad inputs


class Trap:
    """Unpickling this creates a marker file: proof that a file was (not) unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickled_npy_is_refused_not_loaded(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=1)
    marker = tmp_path / "unpickled"
    trap = np.empty(25, dtype=object)
    trap[:] = [Trap(marker)] * 25
    np.save(tmp_path / "acs_1.npy", trap, allow_pickle=True)
    with pytest.raises(DatasetError, match="pickled") as e:
        import_omar(tmp_path, "spread")
    assert e.value.file.endswith("acs_1.npy") and e.value.field == "actions"
    assert not marker.exists()


def test_raw_pickle_named_npy_is_refused(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=1)
    marker = tmp_path / "unpickled"
    (tmp_path / "rews_0.npy").write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(DatasetError, match="pickled") as e:
        import_omar(tmp_path, "spread")
    assert e.value.file.endswith("rews_0.npy") and e.value.field == "rewards"
    assert not marker.exists()


def test_npz_archive_is_refused(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=1)
    with open(tmp_path / "obs_0.npy", "wb") as f:
        np.savez(f, a=np.zeros((25, 18)))
    with pytest.raises(DatasetError, match="npz") as e:
        import_omar(tmp_path, "spread")
    assert e.value.file.endswith("obs_0.npy")


def _edit(tmp_path, name, fn):
    p = tmp_path / name
    np.save(p, fn(np.load(p)))


@pytest.mark.parametrize(
    "edit,file,field,message",
    [
        (lambda d: (d / "next_obs_1.npy").unlink(), "next_obs_1.npy", "next_observations", "missing"),
        (lambda d: _edit(d, "rews_0.npy", lambda a: a[:-1]), "rews_0.npy", "rewards", "rows"),
        (lambda d: [_edit(d, f"{s}_2.npy", lambda a: a[:-1]) for s in STEMS], "obs_2.npy",
         "observations", "same rows"),
        (lambda d: _edit(d, "next_obs_2.npy", lambda a: np.where(np.arange(25)[:, None] == 7, np.nan, a)),
         "next_obs_2.npy", "next_observations", "non-finite.*row 7"),
        (lambda d: _edit(d, "rews_1.npy", lambda a: np.where(np.arange(25) == 3, np.inf, a)),
         "rews_1.npy", "rewards", "non-finite.*row 3"),
        (lambda d: _edit(d, "acs_1.npy", lambda a: np.where(np.arange(25)[:, None] == 5, 1.5, a)),
         "acs_1.npy", "actions", r"outside \[-1, 1\].*row 5"),
        (lambda d: _edit(d, "obs_0.npy", lambda a: a[:, :17]), "obs_0.npy", "observations", "width 18"),
        (lambda d: _edit(d, "acs_0.npy", lambda a: a[:, 0]), "acs_0.npy", "actions", "2 dimensions"),
        (lambda d: _edit(d, "dones_1.npy", lambda a: np.where(np.arange(25) == 4, 1, a)), "dones_1.npy",
         "dones", "differs from dones_0"),
        (lambda d: _edit(d, "dones_0.npy", lambda a: a + 2), "dones_0.npy", "dones", "0 or 1"),
        (lambda d: np.save(d / "obs_3.npy", np.zeros((25, 18))), "obs_3.npy", "observations", "3 agents"),
        (lambda d: _edit(d, "obs_1.npy", lambda a: a.astype("U8")), "obs_1.npy", "observations", "dtype"),
    ],
    ids=["missing", "rows-within-agent", "rows-across-agents", "nan", "inf-reward", "action-range",
         "width", "ndim", "dones-disagree", "dones-not-flags", "extra-agent", "strings"],
)
def test_bad_input_names_file_and_field(tmp_path, edit, file, field, message):
    write_omar(tmp_path, "spread", n_episodes=1)
    edit(tmp_path)
    with pytest.raises(DatasetError, match=message) as e:
        import_omar(tmp_path, "spread")
    assert Path(e.value.file).name == file
    assert e.value.field == field
    assert file in str(e.value)


def test_rows_out_of_episode_order_are_detected(tmp_path):
    write_omar(tmp_path, "spread", n_episodes=2)
    perm = np.random.default_rng(0).permutation(50)
    for i in range(3):
        for stem in STEMS:
            _edit(tmp_path, f"{stem}_{i}.npy", lambda a: a[perm])
    with pytest.raises(DatasetError, match="not consecutive") as e:
        import_omar(tmp_path, "spread")
    assert Path(e.value.file).name == "next_obs_0.npy"
    # Wrong episode length: the chain breaks at row 24, inside an assumed 30-step episode.
    write_omar(tmp_path / "b", "spread", n_episodes=2)
    with pytest.raises(DatasetError, match="row 24"):
        import_omar(tmp_path / "b", "spread", episode_length=30)


def test_state_copies_must_agree(tmp_path):
    write_omar(tmp_path, "halfcheetah-2x3", n_episodes=1, episode_length=10)
    _edit(tmp_path, "next_states_1.npy", lambda a: a + 1)
    with pytest.raises(DatasetError, match="differs from next_states_0") as e:
        import_omar(tmp_path, "halfcheetah-2x3", episode_length=10)
    assert Path(e.value.file).name == "next_states_1.npy" and e.value.field == "next_state"
    (tmp_path / "states_0.npy").unlink()
    with pytest.raises(DatasetError, match="missing") as e:
        import_omar(tmp_path, "halfcheetah-2x3", episode_length=10)
    assert Path(e.value.file).name == "states_0.npy" and e.value.field == "state"


def test_bad_arguments(tmp_path):
    with pytest.raises(DatasetError, match="no such directory"):
        import_omar(tmp_path / "nope", "spread")
    write_omar(tmp_path, "spread", n_episodes=1)
    with pytest.raises(ValueError, match="unknown OMAR task"):
        import_omar(tmp_path, "simple_reference")
    with pytest.raises(ValueError, match="no prey"):
        import_omar(tmp_path, "spread", include_prey=True)
    with pytest.raises(ValueError, match="episode_length"):
        import_omar(tmp_path, "spread", episode_length=0)
    (tmp_path / "empty").mkdir()
    for i in range(3):
        for stem, shape in zip(STEMS, [(0, 18), (0, 2), (0,), (0, 18), (0,)]):
            np.save(tmp_path / "empty" / f"{stem}_{i}.npy", np.zeros(shape))
    with pytest.raises(DatasetError, match="no rows"):
        import_omar(tmp_path / "empty", "spread")


def test_failed_conversion_leaves_no_output(tmp_path):
    write_omar(tmp_path / "src", "spread", n_episodes=1)
    _edit(tmp_path / "src", "acs_0.npy", lambda a: a * 3)
    with pytest.raises(DatasetError):
        omar_to_hdf5(tmp_path / "src", "spread", tmp_path / "out.h5")
    assert not (tmp_path / "out.h5").exists()
