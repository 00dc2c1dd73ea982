"""The OG-MARL importer: tiny synthetic flashbax Vaults written with tensorstore, exact values,
episode ends, and every bad input named by path and field.

The Vault is written the way flashbax writes one (instadeepai/flashbax, flashbax/vault/vault.py,
Vault.__init__ / _get_base_spec / _init_leaf / write, format VERSION 1.2):

- directory ``<rel_dir>/<vault_name>/<vault_uid>`` (``2halfcheetah.vlt/Good``, as OG-MARL's
  download_vault.py and replay_buffers.populate_from_vault name them);
- ``metadata.json`` = ``{"version": 1.2, "structure_shape": {leaf: str(shape)},
  "structure_dtype": {leaf: dtype.name}}`` with the buffer's nested dict (``infos`` nested);
- every leaf a zarr array in one OCDBT store based at the directory, kvstore path = dict keys
  each followed by a dot (``observations.``, ``infos.state.``), created with shape
  ``(B, int(10e12), *feature)``, dtype from the metadata and compressor gzip level 5, and
  written along the time axis ``[:, start:stop]`` in as many writes as the buffer flushed;
- ``vault_index``: an int32 zarr array of shape (1,) (no compressor given), holding the steps.

OG-MARL's experience (og_marl/vault_utils/analyse_vault.py: "Experience is of dimension of
(1, T, N, *E)"; the trainers unpack observations [B,T,N,O], actions [B,T,N,A], rewards,
terminals, truncations [B,T,N], infos.state [B,T,S], infos.legals for discrete tasks).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ts = pytest.importorskip("tensorstore")

from scoredec.data import DatasetError, read_dataset  # noqa: E402
from scoredec.data.ogmarl import import_ogmarl, ogmarl_to_hdf5, read_vault  # noqa: E402

TIME_AXIS_MAX_LENGTH = int(10e12)   # flashbax's upper bound of a leaf's time axis


def _spec(vault: Path, name: str) -> dict:
    return {"driver": "zarr",
            "kvstore": {"driver": "ocdbt", "base": f"file://{vault}", "path": name},
            "metadata": {}}


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}."] = value
    return out


def write_vault(vault: Path, experience: dict, *, writes: int = 2, buffer_len: int = 7) -> None:
    """Write ``experience`` (nested dict of [B, T, ...] arrays) as flashbax does."""
    os.makedirs(vault)

    def tree_of(fn, tree):
        return {k: tree_of(fn, v) if isinstance(v, dict) else fn(v) for k, v in tree.items()}

    # The metadata holds the buffer state's shapes (its own time length), not the Vault's.
    meta = {"version": 1.2,
            "structure_shape": tree_of(lambda a: str((a.shape[0], buffer_len, *a.shape[2:])),
                                       experience),
            "structure_dtype": tree_of(lambda a: a.dtype.name, experience)}
    (vault / "metadata.json").write_text(json.dumps(meta))
    T = next(iter(_flatten(experience).values())).shape[1]
    cuts = np.linspace(0, T, writes + 1).astype(int)
    for name, array in _flatten(experience).items():
        spec = _spec(vault, name)
        spec["metadata"]["compressor"] = {"id": "gzip", "level": 5}
        store = ts.open(spec, shape=(array.shape[0], TIME_AXIS_MAX_LENGTH, *array.shape[2:]),
                        dtype=array.dtype.name, create=True).result()
        for start, stop in zip(cuts[:-1], cuts[1:]):
            store[:, start:stop, ...].write(array[:, start:stop, ...]).result()
    index = ts.open(_spec(vault, "vault_index"), dtype=np.int32, shape=(1,), create=True).result()
    index.write(T).result()


def experience(T: int = 9, N: int = 2, O: int = 3, A: int = 2, S: int = 4, B: int = 1,
               seed: int = 0) -> dict:
    """A continuous-action experience with known values: episodes of rows 0-3 (terminal),
    4-6 (truncated) and 7-8 (cut by the data's end)."""
    rng = np.random.default_rng(seed)
    term = np.zeros((B, T, N), bool)
    trunc = np.zeros((B, T, N), bool)
    term[:, 3] = True
    trunc[:, 6] = True
    return {
        "observations": rng.standard_normal((B, T, N, O)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (B, T, N, A)).astype(np.float32),
        "rewards": rng.standard_normal((B, T, N)).astype(np.float32),
        "terminals": term,
        "truncations": trunc,
        "infos": {"state": rng.standard_normal((B, T, S)).astype(np.float32)},
    }


def vault_path(tmp_path: Path, uid: str = "Good") -> Path:
    return tmp_path / "vaults" / "og_marl" / "mamujoco" / "2halfcheetah.vlt" / uid


def test_read_vault_returns_written_steps_exactly(tmp_path):
    exp = experience()
    vault = vault_path(tmp_path)
    write_vault(vault, exp, writes=3)
    arrays, facts = read_vault(vault)
    assert facts == {"version": 1.2, "steps": 9, "batch": 1}
    assert set(arrays) == {("observations",), ("actions",), ("rewards",), ("terminals",),
                           ("truncations",), ("infos", "state")}
    for key, value in (("observations", exp["observations"]), ("terminals", exp["terminals"])):
        assert arrays[(key,)].dtype == value.dtype
        assert np.array_equal(arrays[(key,)], value)
    assert np.array_equal(arrays[("infos", "state")], exp["infos"]["state"])


def test_import_known_answer_and_episode_ends(tmp_path):
    exp = experience()
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    out = tmp_path / "d.h5"
    ds = ogmarl_to_hdf5(vault, out)
    assert read_dataset(out).equals(ds)
    obs, st = exp["observations"][0], exp["infos"]["state"][0]
    # Kept rows: 0-3 (terminal episode, whole), 4-5 (truncated: row 6 dropped),
    # 7 (cut by the data's end: row 8 dropped).
    kept = [0, 1, 2, 3, 4, 5, 7]
    nxt = [1, 2, 3, 3, 5, 6, 8]      # a terminal row is its own next row
    assert ds.n_transitions == 7 and ds.n_agents == 2
    assert np.array_equal(ds.observations, obs[kept])
    assert np.array_equal(ds.next_observations, obs[nxt])
    assert np.array_equal(ds.actions, exp["actions"][0][kept])
    assert np.array_equal(ds.rewards, exp["rewards"][0][kept])
    assert np.array_equal(ds.state, st[kept])
    assert np.array_equal(ds.next_state, st[nxt])
    assert ds.terminals.tolist() == [False, False, False, True, False, False, False]
    assert ds.timeouts.tolist() == [False, False, False, False, False, True, False]
    assert ds.env_id == "2halfcheetah" and ds.quality == "Good" and ds.seed == -1
    assert ds.agent_names == ("agent_0", "agent_1")
    assert ds.obs_dims == (3, 3) and ds.act_dims == (2, 2)
    assert ds.generator == "ogmarl-import" and ds.attrs["dropped_steps"] == 2
    assert ds.attrs["vault_steps"] == 9


def test_unit_reward_axis_and_float_flags_read(tmp_path):
    exp = experience()
    exp["rewards"] = exp["rewards"][..., None]                # [B, T, N, 1]
    exp["terminals"] = exp["terminals"].astype(np.float32)    # 0/1 floats
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    ds = import_ogmarl(vault)
    assert np.array_equal(ds.rewards, exp["rewards"][0, [0, 1, 2, 3, 4, 5, 7], :, 0])
    assert np.flatnonzero(ds.terminals).tolist() == [3]


def test_batch_rows_are_separate_streams(tmp_path):
    exp = experience(B=2)
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    ds = import_ogmarl(vault, env_id="cheetah", quality="good")
    kept = [0, 1, 2, 3, 4, 5, 7]
    assert ds.n_transitions == 14
    assert np.array_equal(ds.observations[:7], exp["observations"][0][kept])
    assert np.array_equal(ds.observations[7:], exp["observations"][1][kept])
    # Stream 0's cut end is a timeout (stream 1 follows it); only the last stream's is not.
    assert np.flatnonzero(ds.timeouts).tolist() == [5, 6, 12]
    assert np.flatnonzero(ds.terminals).tolist() == [3, 10]
    assert ds.env_id == "cheetah" and ds.quality == "good"


def test_per_agent_dict_layout_pads_narrower_agents(tmp_path):
    rng = np.random.default_rng(1)
    T = 4
    term = np.zeros((1, T), bool)
    term[0, -1] = True
    widths = {"agent_0": 3, "agent_1": 2, "agent_10": 1}
    exp = {
        "observations": {a: rng.standard_normal((1, T, w)).astype(np.float32)
                         for a, w in widths.items()},
        "actions": {a: rng.uniform(-1, 1, (1, T, 2)).astype(np.float32) for a in widths},
        "rewards": {a: np.ones((1, T), np.float32) for a in widths},
        "terminals": {a: term for a in widths},
        "truncations": {a: np.zeros((1, T), bool) for a in widths},
    }
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    ds = import_ogmarl(vault)
    assert ds.agent_names == ("agent_0", "agent_1", "agent_10")
    assert ds.obs_dims == (3, 2, 1)
    assert np.array_equal(ds.observations[:, 1, :2], exp["observations"]["agent_1"][0])
    assert not ds.observations[:, 1, 2:].any() and not ds.observations[:, 2, 1:].any()
    assert ds.terminals.tolist() == [False, False, False, True]


@pytest.mark.parametrize("kind", ["int", "no-axis", "legals"])
def test_discrete_action_vault_refused(tmp_path, kind):
    exp = experience()
    if kind == "int":
        exp["actions"] = np.zeros((1, 9, 2, 1), np.int32)
    elif kind == "no-axis":
        exp["actions"] = np.zeros((1, 9, 2), np.float32)
    else:
        exp["infos"]["legals"] = np.ones((1, 9, 2, 5), bool)
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    with pytest.raises(DatasetError, match="only continuous-action datasets \\(MaMuJoCo\\) can be "
                                           "imported") as err:
        import_ogmarl(vault)
    assert str(vault) in str(err.value) and "\n" not in str(err.value)


def test_out_of_range_actions_refused_clipped_or_rescaled(tmp_path):
    exp = experience()
    exp["actions"][0, 2, 1, 0] = 1.5
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    with pytest.raises(DatasetError, match=r"field 'actions': values outside \[-1, 1\] \(max "
                                           r"1.5 at batch 0, step 2, agent agent_1, column 0"):
        import_ogmarl(vault)
    ds = import_ogmarl(vault, clip_actions=True)
    assert ds.actions[2, 1, 0] == 1.0 and ds.attrs["clipped_action_values"] == 1
    # Box [-2, 2]: u -> u / 2 exactly (powers of two).
    ds = import_ogmarl(vault, action_bounds=(-2.0, 2.0))
    assert ds.actions[2, 1, 0] == 0.75
    kept = [0, 1, 2, 3, 4, 5, 7]
    assert np.array_equal(ds.actions, exp["actions"][0][kept] / 2)


def test_missing_leaf_named(tmp_path):
    exp = experience()
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    meta = json.loads((vault / "metadata.json").read_text())
    meta["structure_shape"]["next_obs"] = "(1, 7, 2, 3)"   # listed, never written
    meta["structure_dtype"]["next_obs"] = "float32"
    (vault / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="field 'next_obs': cannot open Vault array 'next_obs.'"):
        read_vault(vault)


def test_missing_required_field_named(tmp_path):
    exp = experience()
    del exp["truncations"]
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    with pytest.raises(DatasetError, match="field 'truncations': no such leaf in metadata.json"):
        import_ogmarl(vault)


@pytest.mark.parametrize("text, field", [
    ("{not json", None),
    (json.dumps({"version": 2.0, "structure_shape": {}, "structure_dtype": {}}), "version"),
    (json.dumps({"version": 1.2, "structure_shape": {"observations": "(1,"},
                 "structure_dtype": {"observations": "float32"}}), "structure_shape.observations"),
])
def test_damaged_metadata_named(tmp_path, text, field):
    vault = vault_path(tmp_path)
    write_vault(vault, experience())
    (vault / "metadata.json").write_text(text)
    with pytest.raises(DatasetError) as err:
        import_ogmarl(vault)
    assert err.value.file == str(vault / "metadata.json") and err.value.field == field


def test_metadata_disagreeing_with_store_named(tmp_path):
    vault = vault_path(tmp_path)
    write_vault(vault, experience())
    meta = json.loads((vault / "metadata.json").read_text())
    meta["structure_shape"]["observations"] = "(1, 7, 2, 5)"
    (vault / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="field 'observations': array is float32 "
                                           r"\[1, 10000000000000, 2, 3\], metadata.json says"):
        import_ogmarl(vault)


def test_damaged_store_named(tmp_path):
    vault = vault_path(tmp_path)
    write_vault(vault, experience())
    (vault / "manifest.ocdbt").write_bytes(b"garbage")
    with pytest.raises(DatasetError) as err:
        import_ogmarl(vault)
    assert err.value.file == str(vault) and err.value.field == "vault_index"
    assert "\n" not in str(err.value)


def test_agents_disagreeing_on_episode_end_named(tmp_path):
    exp = experience()
    exp["terminals"][0, 1, 0] = True
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    with pytest.raises(DatasetError, match="field 'terminals': set for some agents but not all "
                                           "at batch 0, step 1"):
        import_ogmarl(vault)


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from scoredec.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_writes_file_and_card(tmp_path, capsys):
    exp = experience()
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    out = tmp_path / "d.h5"
    code, out_text, err = _cli(capsys, "data", "import-ogmarl", str(vault), "--out", str(out),
                               "--env-id", "my-cheetah")
    assert code == 0, err
    assert f"wrote {out} (7 transitions, 2 agents; 2 steps dropped at cut episode ends)" \
        in out_text
    assert (tmp_path / "d.card.json").is_file()
    ds = read_dataset(out)
    assert ds.env_id == "my-cheetah"
    assert np.array_equal(ds.observations[:4], exp["observations"][0][:4])


def test_cli_missing_vault_one_line_error(tmp_path, capsys):
    missing = tmp_path / "nope.vlt" / "Good"
    code, _, err = _cli(capsys, "data", "import-ogmarl", str(missing), "--out",
                        str(tmp_path / "d.h5"))
    assert code == 2
    assert err.strip() == f"scoredec data: error: {missing}: no such directory"
    assert not (tmp_path / "d.h5").exists()


def test_cli_discrete_vault_one_line_error(tmp_path, capsys):
    exp = experience()
    exp["actions"] = np.zeros((1, 9, 2), np.int64)
    vault = vault_path(tmp_path)
    write_vault(vault, exp)
    code, _, err = _cli(capsys, "data", "import-ogmarl", str(vault), "--out",
                        str(tmp_path / "d.h5"))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "only continuous-action datasets (MaMuJoCo) can be imported" in lines[0]


def test_missing_tensorstore_is_one_line_with_the_install_hint(tmp_path, monkeypatch, capsys):
    vault = vault_path(tmp_path)
    write_vault(vault, experience())
    monkeypatch.setitem(sys.modules, "tensorstore", None)   # import tensorstore -> ImportError
    code, _, err = _cli(capsys, "data", "import-ogmarl", str(vault), "--out",
                        str(tmp_path / "d.h5"))
    assert code == 2
    assert err.strip() == ("scoredec data: error: reading an OG-MARL Vault needs the tensorstore "
                           "package, an optional extra: pip install 'scoredec[ogmarl]' (or pip "
                           "install tensorstore)")
