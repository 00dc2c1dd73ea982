"""The dataset card: what a dataset holds, how good it is and how multimodal its joint behaviour is.

Next to ``name.h5``, ``write_card`` puts ``name.card.json`` (the numbers), ``name.card.md``
(``format_card``: the same, readable; ``scoredec data info`` prints it) and ``name.card.png``
(episode-return histogram, agent 0 vs agent 1 actions over the data and in comparable states).

Returns (DESIGN.md 1.7): per episode (``ds.episode_boundaries()``), either the sum over steps
of the mean agent reward ("mean": spread, and any team-reward task) or agent 0's summed reward
("agent0": predator 0 in tag and world; HalfCheetah's team reward). ``return_kind_for`` maps
env ids to these; unknown tasks get "mean".

Multimodality, generic for any dataset: for every pair of agents (i, j), the fractions of the
four sign patterns (++, +-, -+, --) of their first action dimensions (+ is >= 0) and the mutual
information between the two signs, over all rows and within neighbourhoods of comparable
states (the rows whose joint observation is nearest to an anchor row). Two agents that each
pick a side at random give ~0 bits; two that always pick the same side together, choosing the
side at random (the bandit's two coordination modes), give ~1 bit. The global figure mixes
state dependence with coordination; the local one conditions (roughly) on the state. If the
generator recorded a per-episode mode (attrs "mode"/"modes"/"episode_mode"/"episode_modes" as
a list), the card counts how often each mode occurs.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

import scoredec
from scoredec.data.fingerprint import file_sha256
from scoredec.data.schema import MultiAgentDataset
from scoredec.io import atomic_output, atomic_write_json, atomic_write_text, to_jsonable

__all__ = [
    "CARD_VERSION",
    "RETURN_KINDS",
    "TASK_RETURN_KIND",
    "return_kind_for",
    "episode_returns",
    "normalized_score",
    "make_card",
    "format_card",
    "card_paths",
    "write_card",
    "remove_card",
    "load_or_make_card",
]

log = logging.getLogger(__name__)

CARD_VERSION = 1
RETURN_KINDS = ("mean", "agent0")
TASK_RETURN_KIND = {
    "spread": "mean",
    "tag": "agent0",
    "world": "agent0",
    "halfcheetah-2x3": "agent0",
    "bandit": "mean",
}
"""Task -> return kind (DESIGN.md 1.7, OMAR ``eval_policy``)."""

MODE_KEYS = ("mode", "modes", "episode_mode", "episode_modes")
"""attrs keys under which a generator may record one coordination mode per episode."""

CARD_SEED = 0
"""Seeds the subsamples of the multimodality measure and the picture: same data, same card."""
SUBSAMPLE_ROWS = 20_000
"""Rows among which comparable states are searched (distance cost is rows x joint obs width)."""
ANCHORS = 8
NEIGHBOURS = 256
"""Rows per neighbourhood: enough for a 2x2 table (plug-in MI bias ~ 1 / (2 N ln 2) ~ 0.003 bit)."""
SCATTER_POINTS = 4000
ATTR_LIST_LIMIT = 16
"""Lists in attrs longer than this are summarized in the card, not copied."""


# --------------------------------------------------------------------------- returns


def return_kind_for(env_id: str) -> str:
    """The return kind of a task: "spread", "mpe/spread", "simple_spread" -> "mean"."""
    key = env_id.rsplit("/", 1)[-1].lower()
    key = key.removeprefix("simple_")
    return TASK_RETURN_KIND.get(key, "mean")


def _episode_starts(ends: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)


def episode_returns(ds: MultiAgentDataset, return_kind: str = "mean") -> np.ndarray:
    """[E] float64 return of every complete episode, in order.

    return_kind: "mean" (sum over steps of the mean agent reward) or "agent0" (agent 0's
    summed reward). A trailing episode without a terminal or timeout flag is left out.
    """
    if return_kind not in RETURN_KINDS:
        raise ValueError(f"return_kind must be one of {RETURN_KINDS}, got {return_kind!r}")
    rewards = np.asarray(ds.rewards, np.float64)
    per_step = rewards.mean(axis=1) if return_kind == "mean" else rewards[:, 0]
    ends = ds.episode_boundaries()
    if ends.size == 0:
        return np.zeros(0, np.float64)
    return np.add.reduceat(per_step[: ends[-1] + 1], _episode_starts(ends))


def normalized_score(returns: Any, reference_returns: dict[str, float]) -> np.ndarray:
    """100 (R - R_random) / (R_expert - R_random), elementwise (DESIGN.md 1.7)."""
    try:
        random, expert = float(reference_returns["random"]), float(reference_returns["expert"])
    except (KeyError, TypeError):
        raise ValueError(
            f"reference_returns needs 'random' and 'expert', got {reference_returns!r}"
        ) from None
    if expert == random:
        raise ValueError(f"expert and random reference returns are equal ({expert})")
    return 100.0 * (np.asarray(returns, np.float64) - random) / (expert - random)


def _stats(x: np.ndarray) -> dict[str, Any]:
    if x.size == 0:
        return {"count": 0}
    return {
        "count": int(x.size),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "min": float(x.min()),
        "max": float(x.max()),
    }


# --------------------------------------------------------------------------- multimodality


def _mutual_information_bits(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in mutual information (bits) between two boolean arrays."""
    if x.size == 0:
        return 0.0
    joint = np.array(
        [[np.mean(x & y), np.mean(x & ~y)], [np.mean(~x & y), np.mean(~x & ~y)]], np.float64
    )
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log2(joint[nz] / np.outer(px, py)[nz])))


def _sign_fractions(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    n = max(x.size, 1)
    return {
        "++": float(np.sum(x & y) / n),
        "+-": float(np.sum(x & ~y) / n),
        "-+": float(np.sum(~x & y) / n),
        "--": float(np.sum(~x & ~y) / n),
    }


def _neighbourhoods(ds: MultiAgentDataset) -> list[np.ndarray]:
    """Row indices of ANCHORS neighbourhoods of comparable states (seeded by CARD_SEED).

    Comparable = nearest in the standardized joint observation, among a row subsample.
    """
    rng = np.random.default_rng(CARD_SEED)
    T = ds.n_transitions
    rows = np.sort(rng.choice(T, size=min(T, SUBSAMPLE_ROWS), replace=False))
    feats = np.asarray(ds.observations[rows], np.float64).reshape(rows.size, -1)
    scale = feats.std(axis=0)
    feats = (feats - feats.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    k = min(NEIGHBOURS, rows.size)
    out = []
    for a in rng.choice(rows.size, size=min(ANCHORS, rows.size), replace=False):
        d = np.sum((feats - feats[a]) ** 2, axis=1)
        out.append(rows[np.sort(np.argpartition(d, k - 1)[:k])])
    return out


def _recorded_modes(attrs: dict[str, Any], n_episodes: int) -> dict[str, Any] | None:
    for key in MODE_KEYS:
        value = attrs.get(key)
        if not isinstance(value, list) or not value:
            continue
        if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            continue
        labels, counts = np.unique(np.asarray([str(v) for v in value]), return_counts=True)
        p = counts / counts.sum()
        return {
            "key": key,
            "length": len(value),
            "matches_episodes": len(value) == n_episodes,
            "counts": {str(m): int(c) for m, c in zip(labels, counts)},
            "fractions": {str(m): float(f) for m, f in zip(labels, p)},
            "entropy_bits": float(-np.sum(p * np.log2(p))),
        }
    return None


def _multimodality(ds: MultiAgentDataset, n_episodes: int) -> dict[str, Any]:
    positive = np.asarray(ds.actions[:, :, 0]) >= 0  # [T, n]
    hoods = _neighbourhoods(ds) if ds.n_agents > 1 else []
    pairs = []
    for i in range(ds.n_agents):
        for j in range(i + 1, ds.n_agents):
            x, y = positive[:, i], positive[:, j]
            local = [_mutual_information_bits(x[h], y[h]) for h in hoods]
            pairs.append(
                {
                    "agents": [i, j],
                    "sign_fractions": _sign_fractions(x, y),
                    "mutual_information_bits": _mutual_information_bits(x, y),
                    "local_mutual_information_bits": float(np.mean(local)) if local else 0.0,
                }
            )
    return {
        "action_dimension": 0,
        "positive_when": "action >= 0",
        "pairs": pairs,
        "local": {
            "anchors": len(hoods),
            "neighbours": int(hoods[0].size) if hoods else 0,
            "subsample_rows": min(ds.n_transitions, SUBSAMPLE_ROWS),
            "seed": CARD_SEED,
        },
        "recorded_modes": _recorded_modes(ds.attrs, n_episodes),
    }


# --------------------------------------------------------------------------- the card


def _abbreviate(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _abbreviate(v) for k, v in value.items()}
    if isinstance(value, list) and len(value) > ATTR_LIST_LIMIT:
        return f"<list of {len(value)} items>"
    if isinstance(value, list):
        return [_abbreviate(v) for v in value]
    return value


def make_card(
    ds: MultiAgentDataset,
    *,
    path: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of ``ds`` as a JSON-able dict (see the module docstring for the measures).

    path: the dataset file, recorded with its size and SHA-256 (the content the card is of).
    extra: stored under "extra".
    """
    kind = return_kind_for(ds.env_id)
    ends = ds.episode_boundaries()
    lengths = (ends - _episode_starts(ends) + 1) if ends.size else np.zeros(0, np.int64)
    returns = episode_returns(ds, kind)
    ref = ds.reference_returns
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "scoredec_version": scoredec.__version__,
        "env_id": ds.env_id,
        "quality": ds.quality,
        "generator": ds.generator,
        "seed": int(ds.seed),
        "attrs": _abbreviate(ds.attrs),
        "n_agents": ds.n_agents,
        "agent_names": list(ds.agent_names),
        "obs_dims": list(ds.obs_dims),
        "act_dims": list(ds.act_dims),
        "state_dim": None if ds.state is None else int(ds.state.shape[1]),
        "transitions": ds.n_transitions,
        "episodes": int(ends.size),
        "terminals": int(np.count_nonzero(ds.terminals)),
        "timeouts": int(np.count_nonzero(ds.timeouts)),
        "trailing_partial_rows": int(ds.n_transitions - (ends[-1] + 1 if ends.size else 0)),
        "episode_length": _stats(lengths.astype(np.float64)),
        "return_kind": kind,
        "returns": _stats(returns),
        "reference_returns": ref,
        "normalized_score": _stats(normalized_score(returns, ref)) if ref else None,
        "multimodality": _multimodality(ds, int(ends.size)),
    }
    if path is not None:
        p = Path(path)
        card["file"] = p.name
        card["file_bytes"] = p.stat().st_size if p.is_file() else None
        card["file_sha256"] = file_sha256(p) if p.is_file() else None
    if extra is not None:
        card["extra"] = extra
    return to_jsonable(card)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _stats_row(name: str, s: dict[str, Any] | None) -> str:
    if not s or not s.get("count"):
        return f"| {name} | - | - | - | - |"
    cells = " | ".join(_num(s[k]) for k in ("mean", "std", "min", "max"))
    return f"| {name} | {cells} |"


def format_card(card: dict[str, Any]) -> str:
    """The card as Markdown (what ``scoredec data info FILE.h5`` prints)."""
    names = ", ".join(card["agent_names"])
    el = card["episode_length"]
    length = "-"
    if el.get("count"):
        length = f"{_num(el['mean'])} (min {_num(el['min'])}, max {_num(el['max'])})"
    lines = [
        f"# Dataset card: {card['env_id']} / {card['quality']}",
        "",
        "| | |",
        "|---|---|",
        f"| task | {card['env_id']} |",
        f"| quality | {card['quality']} |",
        f"| generator | {card['generator']} |",
        f"| seed | {card['seed']} |",
        f"| agents | {card['n_agents']} ({names}) |",
        f"| observation widths | {', '.join(map(str, card['obs_dims']))} |",
        f"| action widths | {', '.join(map(str, card['act_dims']))} |",
        f"| state width | {_num(card['state_dim'])} |",
        f"| transitions | {card['transitions']:,} |",
        f"| episodes | {card['episodes']:,} ({card['terminals']:,} terminal, "
        f"{card['timeouts']:,} time limit; {card['trailing_partial_rows']} trailing rows) |",
        f"| episode length | {length} |",
    ]
    if card.get("file"):
        size, sha = card.get("file_bytes"), card.get("file_sha256")
        lines.append(f"| file | {card['file']}" + (f" ({size:,} bytes)" if size else "") + " |")
        if sha:
            lines.append(f"| sha256 | {sha} |")
    kind = {"mean": "sum over steps of the mean agent reward", "agent0": "agent 0's summed reward"}
    lines += [
        "",
        f"## Returns ({kind.get(card['return_kind'], card['return_kind'])})",
        "",
        "| | mean | std | min | max |",
        "|---|---|---|---|---|",
        _stats_row("return", card["returns"]),
    ]
    ref = card.get("reference_returns")
    if ref:
        lines.append(_stats_row("normalized score", card.get("normalized_score")))
        lines += ["", f"Normalized: 100 (R - random) / (expert - random) with random "
                  f"{_num(ref['random'])}, expert {_num(ref['expert'])}."]
        measured = card["attrs"].get("reference_measurement")
        if isinstance(measured, dict) and {"random", "expert"} <= measured.keys():
            r, e = measured["random"], measured["expert"]
            lines.append(f"The reference returns were measured at this agent count with the "
                         f"package's own policies, {_num(r['episodes'])} episodes each (seed "
                         f"{measured.get('seed')}): random {_num(r['mean'])} +- "
                         f"{_num(r['stderr'], 2)}, expert {_num(e['mean'])} +- "
                         f"{_num(e['stderr'], 2)} (standard errors).")
    mm = card["multimodality"]
    lines += [
        "",
        "## Multimodality",
        "",
        "Signs of the agents' first action dimension (+ is >= 0): how often each joint pattern "
        "occurs, and the mutual information between the two signs over all rows and within "
        f"{mm['local']['anchors']} neighbourhoods of {mm['local']['neighbours']} rows in "
        "comparable states. ~0 bits: independent choices; ~1 bit: the agents always choose "
        "together between two equally likely modes.",
        "",
    ]
    if mm["pairs"]:
        lines += [
            "| agents | ++ | +- | -+ | -- | MI (bits) | local MI (bits) |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in mm["pairs"]:
            f = p["sign_fractions"]
            lines.append(
                f"| {p['agents'][0]}, {p['agents'][1]} | {f['++']:.3f} | {f['+-']:.3f} | "
                f"{f['-+']:.3f} | {f['--']:.3f} | {p['mutual_information_bits']:.3f} | "
                f"{p['local_mutual_information_bits']:.3f} |"
            )
    else:
        lines.append("One agent: no joint behaviour to measure.")
    modes = mm.get("recorded_modes")
    if modes:
        lines += [
            "",
            f"Coordination modes recorded by the generator (attrs '{modes['key']}', "
            f"{modes['length']} entries, entropy {modes['entropy_bits']:.3f} bits):",
            "",
            "| mode | episodes | fraction |",
            "|---|---|---|",
        ]
        for m, c in modes["counts"].items():
            lines.append(f"| {m} | {c} | {modes['fractions'][m]:.3f} |")
    lines += ["", "## Generator parameters", "", "```json",
              json.dumps(card["attrs"], indent=2, sort_keys=True), "```"]
    if card.get("extra"):
        lines += ["", "## Extra", "", "```json",
                  json.dumps(card["extra"], indent=2, sort_keys=True), "```"]
    if card.get("picture"):
        lines += ["", f"![returns and joint actions]({card['picture']})"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- files


def card_paths(h5_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(json, md, png) card paths next to a dataset: ``d.h5`` -> ``d.card.json`` ..."""
    p = Path(h5_path)
    return p.with_suffix(".card.json"), p.with_suffix(".card.md"), p.with_suffix(".card.png")


def _plot(ds: MultiAgentDataset, card: dict[str, Any], png_path: Path) -> None:
    # Figure + Agg canvas directly: no pyplot, so no global backend switch and no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13.5, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax_r, ax_all, ax_local = fig.subplots(1, 3)

    returns = episode_returns(ds, card["return_kind"])
    if returns.size:
        ax_r.hist(returns, bins=int(np.clip(np.sqrt(returns.size), 10, 50)), color="0.4")
        for name, color in (("random", "tab:red"), ("expert", "tab:green")):
            if ds.reference_returns:
                ax_r.axvline(ds.reference_returns[name], color=color, ls="--", label=name)
        if ds.reference_returns:
            ax_r.legend(fontsize=8)
    else:
        ax_r.text(0.5, 0.5, "no complete episode", ha="center", va="center",
                  transform=ax_r.transAxes)
    ax_r.set(title=f"episode returns ({card['return_kind']}), {returns.size} episodes",
             xlabel="return", ylabel="episodes")

    act = np.asarray(ds.actions[:, :, 0], np.float64)
    if ds.n_agents > 1:
        rng = np.random.default_rng(CARD_SEED)
        size = min(ds.n_transitions, SCATTER_POINTS)
        rows = rng.choice(ds.n_transitions, size=size, replace=False)
        ax_all.scatter(act[rows, 0], act[rows, 1], s=3, alpha=0.3)
        hood = _neighbourhoods(ds)[0]
        ax_local.scatter(act[hood, 0], act[hood, 1], s=6, alpha=0.5, color="tab:orange")
        for ax, title in ((ax_all, f"all states ({rows.size} rows)"),
                          (ax_local, f"comparable states ({hood.size} rows near one state)")):
            ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), title=title,
                   xlabel=f"{ds.agent_names[0]} action[0]", ylabel=f"{ds.agent_names[1]} action[0]")
            ax.axhline(0, color="0.8", lw=0.8)
            ax.axvline(0, color="0.8", lw=0.8)
    else:
        ax_all.hist(act[:, 0], bins=50, range=(-1, 1), color="0.4")
        ax_all.set(title="agent 0 action[0]", xlabel="action")
        ax_local.set_axis_off()
    fig.suptitle(f"{ds.env_id} / {ds.quality}")
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png")


def write_card(ds: MultiAgentDataset, h5_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Write the card of ``ds`` (stored at ``h5_path``) as JSON, Markdown and PNG next to it.

    Each file is written atomically; the JSON goes last, so a card JSON implies the others.
    """
    json_path, md_path, png_path = card_paths(h5_path)
    card = make_card(ds, path=h5_path)
    card["picture"] = png_path.name
    _plot(ds, card, png_path)
    atomic_write_text(md_path, format_card(card))
    atomic_write_json(json_path, card)
    log.info("wrote card %s", json_path)
    return json_path, md_path, png_path


def remove_card(h5_path: str | os.PathLike) -> None:
    """Delete the card files of a dataset (the JSON first: it marks a complete card), before
    the dataset is rewritten, so that no card of the old content stays beside the new."""
    for path in card_paths(h5_path):
        path.unlink(missing_ok=True)


def load_or_make_card(h5_path: str | os.PathLike) -> dict[str, Any]:
    """The stored card of a dataset file, or (if missing, or written for other content: its
    SHA-256 differs, say after an attribute was edited in place) one computed from the file."""
    from scoredec.data.hdf5 import read_dataset

    json_path = card_paths(h5_path)[0]
    if json_path.is_file() and Path(h5_path).is_file():
        card = json.loads(json_path.read_text(encoding="utf-8"))
        if (card.get("file_sha256") == file_sha256(h5_path)
                and card.get("card_version") == CARD_VERSION):
            return card
        log.info("card %s is stale (file content or card version changed); recomputing",
                 json_path)
    return make_card(read_dataset(h5_path), path=h5_path)
