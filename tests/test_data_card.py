"""Dataset cards: return statistics by hand, normalized scores, the multimodality measure on
the bandit (two coordination modes) and on independent agents, and the three card files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scoredec.data import MultiAgentDataset, write_dataset
from scoredec.data.hdf5 import read_dataset
from scoredec.data.card import (
    card_paths,
    episode_returns,
    format_card,
    load_or_make_card,
    make_card,
    normalized_score,
    return_kind_for,
    write_card,
)
from scoredec.envs.bandit import make_dataset


def episodic(T=60, n=3, episode_length=7, env_id="spread", seed=0, reference=None,
             attrs=None) -> MultiAgentDataset:
    """T rows of n agents with random rewards; timeouts every episode_length rows, one terminal,
    and a trailing partial episode when T is not a multiple."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((T, n, 4)).astype(np.float32)
    timeouts = np.zeros(T, bool)
    timeouts[episode_length - 1 :: episode_length] = True
    terminals = np.zeros(T, bool)
    terminals[10 % T] = T > 10
    return MultiAgentDataset(
        observations=obs, actions=rng.uniform(-1, 1, (T, n, 2)).astype(np.float32),
        rewards=rng.standard_normal((T, n)).astype(np.float32), next_observations=obs.copy(),
        terminals=terminals, timeouts=timeouts, obs_dims=(4,) * n, act_dims=(2,) * n,
        agent_names=tuple(f"agent_{i}" for i in range(n)), env_id=env_id, quality="medium",
        generator="test", seed=seed, reference_returns=reference, attrs=attrs or {})


def by_hand(ds, kind):
    """Episode returns with a plain loop over rows."""
    out, total = [], 0.0
    for t in range(ds.n_transitions):
        r = ds.rewards[t].astype(np.float64)
        total += r.mean() if kind == "mean" else r[0]
        if ds.terminals[t] or ds.timeouts[t]:
            out.append(total)
            total = 0.0
    return np.array(out)


@pytest.mark.parametrize("kind", ["mean", "agent0"])
def test_episode_returns_match_a_loop(kind):
    ds = episodic()
    got = episode_returns(ds, kind)
    want = by_hand(ds, kind)
    assert got.shape == (len(ds.episode_boundaries()),) == want.shape  # trailing rows left out
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_episode_returns_edge_cases():
    ds = episodic(T=5, episode_length=10)
    assert episode_returns(ds).shape == (0,)
    with pytest.raises(ValueError, match="return_kind"):
        episode_returns(ds, "sum")


def test_return_kind_mapping():
    assert return_kind_for("spread") == return_kind_for("mpe/simple_spread") == "mean"
    assert return_kind_for("tag") == return_kind_for("simple_world") == "agent0"
    assert return_kind_for("halfcheetah-2x3") == "agent0"
    assert return_kind_for("something-new") == "mean"


def test_normalized_score():
    ref = {"random": 159.8, "expert": 516.8}
    np.testing.assert_allclose(normalized_score([159.8, 516.8, 338.3], ref), [0.0, 100.0, 50.0])
    np.testing.assert_allclose(normalized_score(-4.1 + 189.7 * 0.25, {"random": -4.1, "expert": 185.6}), 25.0)
    with pytest.raises(ValueError, match="'random'"):
        normalized_score([1.0], {"expert": 1.0})
    with pytest.raises(ValueError, match="equal"):
        normalized_score([1.0], {"random": 1.0, "expert": 1.0})


def test_bandit_card():
    ds = make_dataset(4000, seed=3)
    card = make_card(ds)
    team = ds.actions[:, 0, 0].astype(np.float64) * ds.actions[:, 1, 0]
    r = card["returns"]
    assert (card["episodes"], card["transitions"], r["count"]) == (4000, 4000, 4000)
    np.testing.assert_allclose([r["mean"], r["std"], r["min"], r["max"]],
                               [team.mean(), team.std(), team.min(), team.max()], rtol=1e-6)
    assert card["reference_returns"] == ds.reference_returns
    assert (card["normalized_score"] is None) == (ds.reference_returns is None)
    assert (card["env_id"], card["seed"], card["n_agents"]) == ("bandit", 3, 2)
    assert card["obs_dims"] == [5, 5] and card["act_dims"] == [1, 1]
    assert card["attrs"] == json.loads(json.dumps(ds.attrs))
    (pair,) = card["multimodality"]["pairs"]
    f = pair["sign_fractions"]
    assert pair["agents"] == [0, 1]
    assert abs(f["++"] - 0.5) < 0.04 and abs(f["--"] - 0.5) < 0.04
    assert f["+-"] == f["-+"] == 0.0  # 8 standard deviations from the other side
    assert pair["mutual_information_bits"] > 0.99
    assert pair["local_mutual_information_bits"] > 0.95
    json.dumps(card, allow_nan=False)


def test_independent_agents_have_no_mutual_information():
    ds = episodic(T=20000, n=2, episode_length=25)
    (pair,) = make_card(ds)["multimodality"]["pairs"]
    for v in pair["sign_fractions"].values():
        assert abs(v - 0.25) < 0.02
    assert pair["mutual_information_bits"] < 0.005
    assert pair["local_mutual_information_bits"] < 0.05


def test_card_with_references_modes_and_extra():
    modes = ["left", "right", "left", "left"] * 2 + ["left"]  # one per complete episode (9)
    ds = episodic(env_id="tag", reference={"random": -4.1, "expert": 185.6},
                  attrs={"mode": modes, "noise": 0.3})
    card = make_card(ds, extra={"note": "x", "values": np.arange(3)})
    returns = by_hand(ds, "agent0")
    assert card["return_kind"] == "agent0" and card["episodes"] == 9 == len(returns)
    norm = 100 * (returns + 4.1) / (185.6 + 4.1)
    s = card["normalized_score"]
    np.testing.assert_allclose([s["mean"], s["std"], s["min"], s["max"]],
                               [norm.mean(), norm.std(), norm.min(), norm.max()], rtol=1e-9)
    assert card["trailing_partial_rows"] == 60 - 56 and card["terminals"] == 1
    assert len(card["multimodality"]["pairs"]) == 3
    rec = card["multimodality"]["recorded_modes"]
    assert rec["counts"] == {"left": 7, "right": 2} and rec["matches_episodes"]
    assert abs(rec["fractions"]["left"] - 7 / 9) < 1e-12
    assert card["extra"] == {"note": "x", "values": [0, 1, 2]}
    text = format_card(card)
    assert "| left | 7 |" in text and "normalized score" in text and "agent 0's summed reward" in text


def test_long_attr_lists_are_summarized():
    ds = episodic(attrs={"per_episode": list(range(100)), "short": [1, 2]})
    card = make_card(ds)
    assert card["attrs"] == {"per_episode": "<list of 100 items>", "short": [1, 2]}


def test_single_agent_card_formats():
    ds = episodic(n=1)
    card = make_card(ds)
    assert card["multimodality"]["pairs"] == []
    assert "One agent" in format_card(card)


def test_write_card_files(tmp_path):
    ds = make_dataset(500, seed=1)
    h5 = tmp_path / "bandit.h5"
    write_dataset(h5, ds)
    json_path, md_path, png_path = write_card(ds, h5)
    assert (json_path, md_path, png_path) == card_paths(h5)
    assert json_path.name == "bandit.card.json" and png_path.name == "bandit.card.png"
    stored = json.loads(json_path.read_text())
    want = make_card(ds, path=h5)
    want["picture"] = png_path.name
    assert stored == json.loads(json.dumps(want))
    assert stored["file_bytes"] == h5.stat().st_size
    md = md_path.read_text()
    assert md == format_card(stored)
    assert md.startswith(f"# Dataset card: bandit / {ds.quality}") and "![returns" in md
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["bandit.h5", json_path.name, md_path.name, png_path.name])  # no temporary files left

    assert load_or_make_card(h5) == stored
    write_dataset(h5, make_dataset(700, seed=1))  # a different file: the stored card is stale
    fresh = load_or_make_card(h5)
    assert fresh["transitions"] == 700 and "picture" not in fresh
    json_path.unlink()
    assert load_or_make_card(h5)["transitions"] == 700


def test_card_of_imported_omar_data(tmp_path):
    from test_data_omar import write_omar  # the synthetic OMAR layout (tests/ is on sys.path)

    from scoredec.data.omar import omar_to_hdf5

    write_omar(tmp_path / "src", "spread", n_episodes=3)
    ds = omar_to_hdf5(tmp_path / "src", "spread", tmp_path / "s.h5")
    write_card(ds, tmp_path / "s.h5")
    card = load_or_make_card(tmp_path / "s.h5")
    assert card["episodes"] == 3 and card["episode_length"]["mean"] == 25
    returns = by_hand(ds, "mean")
    np.testing.assert_allclose(card["normalized_score"]["mean"],
                               np.mean(100 * (returns - 159.8) / (516.8 - 159.8)), rtol=1e-9)


def test_an_attribute_edited_in_place_gives_a_fresh_card(tmp_path):
    import h5py

    h5 = tmp_path / "bandit.h5"
    write_dataset(h5, make_dataset(300, seed=1))
    write_card(read_dataset(h5), h5)
    assert load_or_make_card(h5)["seed"] == 1
    size = h5.stat().st_size
    with h5py.File(h5, "r+") as f:
        f.attrs["seed"] = np.int64(7)
    assert h5.stat().st_size == size              # same bytes count: a size key would miss it
    card = load_or_make_card(h5)
    assert card["seed"] == 7 and card["file_sha256"] != json.loads(
        card_paths(h5)[0].read_text())["file_sha256"]


def test_a_maker_that_dies_before_its_card_leaves_no_card_of_the_old_file(tmp_path, monkeypatch):
    import scoredec.datagen.factory as factory

    out = tmp_path / "d.h5"
    factory.make_dataset_file("spread", "random", out, episodes=20, seed=1, progress=False)
    assert json.loads(card_paths(out)[0].read_text())["seed"] == 1

    def killed(ds, path):
        raise KeyboardInterrupt("killed between the data and its card")

    monkeypatch.setattr(factory, "write_card", killed)
    with pytest.raises(KeyboardInterrupt):
        factory.make_dataset_file("spread", "random", out, episodes=20, seed=2, progress=False)
    assert read_dataset(out).seed == 2
    assert not any(p.exists() for p in card_paths(out))     # seed 1's card went first
    assert load_or_make_card(out)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]   # the lock went too
