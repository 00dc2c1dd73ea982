"""Importer of OG-MARL's datasets: flashbax Vaults, read with tensorstore alone
(docs/dataset_schema.md).

A Vault (flashbax ``flashbax/vault/vault.py``, format version 1.x) is one directory,
``<rel_dir>/<vault_name>/<vault_uid>/`` (OG-MARL:
``vaults/og_marl/mamujoco/2halfcheetah.vlt/Good``),
holding:

- ``metadata.json``: ``{"version": 1.2, "structure_shape": TREE, "structure_dtype": TREE, ...}``,
  where TREE is the experience's nested dict with, per leaf, its buffer shape as a string
  (``"(1, 1000, 2, 17)"``) and its dtype name (``"float32"``);
- a TensorStore OCDBT key-value store (``manifest.ocdbt`` and ``d/``) in which every leaf is a
  zarr v2 array named by its dict path joined with dots plus a final dot (``observations.``,
  ``infos.state.``), shape ``[B, 10**13, ...]`` (batch, a time axis allocated far beyond the
  data, the leaf's own axes), and ``vault_index``, an int32 ``[1]`` array holding the number of
  time steps written.

OG-MARL's experience (og_marl ``replay_buffers.py``, ``vault_utils``) is time-major,
``[B, T, N, ...]``: ``observations [B,T,N,O]``, ``actions [B,T,N,A]`` (continuous) or
``[B,T,N]`` integers (discrete), ``rewards [B,T,N]``, ``terminals`` / ``truncations [B,T,N]``
and ``infos``: ``state [B,T,S]``, ``legals [B,T,N,A]`` (discrete tasks only). Older buffers hold
a dict per agent instead (``observations.agent_0.`` ``[B,T,O_0]``); both are read. Row t holds
the observation the action was taken in, the action, the reward and the flags it led to; the
next observation is row t + 1 (the environment's reset observation after an episode's end).
Batch rows are separate streams of steps, imported one after the other.

Episode ends: an episode ends at a row where every agent's ``terminals`` (or every agent's
``truncations``) flag is set. A Vault has no observation after an episode's last step, so:

- an episode that ends in a terminal state keeps its last row, flagged ``terminals``, with
  ``next_observations = observations`` (and ``next_state = state``) there: nothing bootstraps
  after a terminal row, so the stand-in is never read, and the terminal reward is kept;
- an episode cut without a terminal (a truncation, or a stream's data ending mid-episode) loses
  its last row, and the row before it, whose next observation is known, is flagged ``timeouts``
  (bootstrapped as any cut). Every kept number is the Vault's own; an episode's return misses
  that one step's reward. Only the last stream's trailing steps are left unflagged (the
  schema's trailing partial episode).

Actions must be continuous in [-1, 1] (the schema): a discrete-action Vault (SMAC, RWARE, ...;
integer actions, an action without its own axis, or ``infos.legals``) is refused. Actions
outside [-1, 1] are refused unless ``action_bounds=(low, high)`` rescales them
(``2 (u - low) / (high - low) - 1``, the schema's rule) or ``clip_actions`` clips them, as
OG-MARL's own continuous trainers do when they read a batch.

tensorstore is an optional extra (``pip install 'scoredec[ogmarl]'``); flashbax, jax and
TensorFlow are not needed.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from scoredec.data.hdf5 import write_dataset
from scoredec.data.omar import UNKNOWN_SEED, _pad
from scoredec.data.schema import ACTION_TOLERANCE, DatasetError, MultiAgentDataset

__all__ = ["INSTALL_HINT", "read_vault", "import_ogmarl", "ogmarl_to_hdf5"]

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'scoredec[ogmarl]' (or pip install tensorstore)"
METADATA_FILE = "metadata.json"
VAULT_MAJOR_VERSION = 1
"""flashbax refuses a Vault whose major version differs from its own (1.2 when written)."""
VAULT_INDEX = "vault_index"

# Vault leaf (dict path) -> what it fills; other leaves are listed in attrs and not read.
REQUIRED = ("observations", "actions", "rewards", "terminals", "truncations")
STATE = ("infos", "state")
LEGALS = ("infos", "legals")
DISCRETE_MESSAGE = ("has discrete actions ({why}); only continuous-action datasets (MaMuJoCo) "
                    "can be imported: scoredec's actors output actions in [-1, 1]")


def _tensorstore():
    try:
        import tensorstore
    except ImportError:
        raise RuntimeError(
            f"reading an OG-MARL Vault needs the tensorstore package, an optional extra: "
            f"{INSTALL_HINT}") from None
    return tensorstore


def _leaf_name(path: tuple[str, ...]) -> str:
    """flashbax's datastore name of a leaf: its dict keys, each followed by a dot."""
    return "".join(f"{key}." for key in path)


def _leaves(tree: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Flatten metadata's nested dict into {path: leaf value}."""
    if isinstance(tree, dict):
        out: dict[tuple[str, ...], Any] = {}
        for key, value in tree.items():
            out.update(_leaves(value, path + (str(key),)))
        return out
    return {path: tree}


def _read_metadata(vault: Path) -> tuple[float, dict[tuple[str, ...], tuple[tuple[int, ...], str]]]:
    """(version, {leaf path: (buffer shape, dtype name)}) from metadata.json, checked."""
    path = vault / METADATA_FILE
    if not path.is_file():
        uids = sorted(p.name for p in vault.iterdir() if (p / METADATA_FILE).is_file())
        hint = (f"this holds Vaults, pass one of them: {', '.join(uids)}" if uids
                else "is this a Vault directory <vault_name>/<vault_uid>?")
        raise DatasetError(str(path), None, f"missing file ({hint})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(str(path), None, f"not readable JSON: {e}") from None
    if not isinstance(meta, dict):
        raise DatasetError(str(path), None, "expected a JSON object")
    version = meta.get("version")
    if isinstance(version, bool) or not isinstance(version, (int, float)):
        raise DatasetError(str(path), "version", f"expected a number, got {version!r}")
    if int(version // 1) != VAULT_MAJOR_VERSION:
        raise DatasetError(str(path), "version",
                           f"Vault format {version}; this importer reads {VAULT_MAJOR_VERSION}.x")
    trees = []
    for key in ("structure_shape", "structure_dtype"):
        tree = meta.get(key)
        if not isinstance(tree, dict) or not tree:
            raise DatasetError(str(path), key, "missing or not a non-empty object")
        trees.append(_leaves(tree))
    shapes, dtypes = trees
    if set(shapes) != set(dtypes):
        raise DatasetError(str(path), "structure_dtype", "names other leaves than structure_shape")
    out = {}
    for leaf, text in shapes.items():
        field = "structure_shape." + ".".join(leaf)
        try:
            shape = ast.literal_eval(text) if isinstance(text, str) else None
        except (ValueError, SyntaxError):
            shape = None
        if not (isinstance(shape, tuple) and len(shape) >= 2
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
            raise DatasetError(str(path), field, f"expected a shape like \"(1, 1000, 2, 17)\", "
                               f"got {text!r}")
        dtype = dtypes[leaf]
        try:
            np.dtype(dtype)
        except TypeError:
            raise DatasetError(str(path), "structure_dtype." + ".".join(leaf),
                               f"not a dtype name: {dtype!r}") from None
        out[leaf] = (shape, dtype)
    return version, out


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _open(ts, vault: Path, name: str, field: str):
    """One zarr array of the Vault's OCDBT store, opened as flashbax opens an existing Vault."""
    spec = {"driver": "zarr",
            "kvstore": {"driver": "ocdbt", "base": f"file://{vault.resolve()}", "path": name}}
    try:
        return ts.open(spec, open=True).result()
    except Exception as e:  # tensorstore reports every failure (missing, corrupt) as one error
        raise DatasetError(str(vault), field, f"cannot open Vault array '{name}': {_one_line(e)}") \
            from None


def _read(store, steps: int, vault: Path, field: str) -> np.ndarray:
    try:
        return np.asarray(store[:, :steps].read().result())
    except Exception as e:
        raise DatasetError(str(vault), field, f"cannot read its data: {_one_line(e)}") from None


def read_vault(vault_dir: str | os.PathLike) -> tuple[dict[tuple[str, ...], np.ndarray], dict]:
    """Every leaf of a Vault as numpy ``[B, steps, ...]`` (the written steps only) and facts
    about it ({"version", "steps", "batch"}). Raises DatasetError naming the Vault and leaf."""
    vault = Path(vault_dir)
    if not vault.is_dir():
        raise DatasetError(str(vault), None, "no such directory")
    version, structure = _read_metadata(vault)
    ts = _tensorstore()
    index = _open(ts, vault, VAULT_INDEX, VAULT_INDEX)
    if tuple(index.shape) != (1,) or not np.issubdtype(index.dtype.numpy_dtype, np.integer):
        raise DatasetError(str(vault), VAULT_INDEX,
                           f"expected one integer, got shape {tuple(index.shape)} {index.dtype}")
    try:
        steps = int(np.asarray(index.read().result())[0])
    except Exception as e:
        raise DatasetError(str(vault), VAULT_INDEX, f"cannot read its data: {_one_line(e)}") \
            from None
    if steps <= 0:
        raise DatasetError(str(vault), VAULT_INDEX, f"the Vault holds no steps ({steps})")
    arrays: dict[tuple[str, ...], np.ndarray] = {}
    batch = None
    for leaf, (shape, dtype) in structure.items():
        field = ".".join(leaf)
        store = _open(ts, vault, _leaf_name(leaf), field)
        on_disk = tuple(store.shape)
        if (len(on_disk) != len(shape) or on_disk[0] != shape[0] or on_disk[2:] != shape[2:]
                or store.dtype.numpy_dtype != np.dtype(dtype)):
            raise DatasetError(
                str(vault), field,
                f"array is {store.dtype.numpy_dtype} {list(on_disk)}, metadata.json says {dtype} "
                f"{list(shape)} (batch and feature axes must agree)")
        if on_disk[1] < steps:
            raise DatasetError(str(vault), field,
                               f"time axis has {on_disk[1]} steps, vault_index says {steps}")
        if batch is None:
            batch = shape[0]
        elif shape[0] != batch:
            raise DatasetError(str(vault), field, f"batch size {shape[0]}, other leaves {batch}")
        arrays[leaf] = _read(store, steps, vault, field)
    return arrays, {"version": version, "steps": steps, "batch": int(batch)}


# --------------------------------------------------------------------------- agents


def _natural(key: str) -> tuple:
    """agent_2 before agent_10 (a dict's leaves are stored in sorted key order)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key))


def _per_agent(arrays: dict, name: str, vault: Path, feature_axes: int
               ) -> tuple[tuple[str, ...] | None, list[np.ndarray]]:
    """(agent names or None, [B, S, *feature] per agent) for a stacked ``[B, S, N, *feature]``
    leaf or a dict of per-agent ``[B, S, *feature]`` leaves."""
    if (name,) in arrays:
        a = arrays[(name,)] if feature_axes else _squeeze_last(arrays[(name,)], 3)
        if a.ndim != 3 + feature_axes:
            raise DatasetError(str(vault), name,
                               f"expected [batch, time, agents{', width' * feature_axes}], "
                               f"got shape {list(a.shape)}")
        return None, [a[:, :, i] for i in range(a.shape[2])]
    keys = sorted((p[1] for p in arrays if len(p) == 2 and p[0] == name), key=_natural)
    if not keys:
        raise DatasetError(str(vault), name, "no such leaf in metadata.json")
    out = []
    for key in keys:
        a = arrays[(name, key)] if feature_axes else _squeeze_last(arrays[(name, key)], 2)
        if a.ndim != 2 + feature_axes:
            raise DatasetError(str(vault), f"{name}.{key}",
                               f"expected [batch, time{', width' * feature_axes}], "
                               f"got shape {list(a.shape)}")
        out.append(a)
    return tuple(keys), out


def _squeeze_last(a: np.ndarray, ndim: int) -> np.ndarray:
    """[..., 1] -> [...] for rewards and flags stored with a trailing unit axis."""
    return a[..., 0] if a.ndim == ndim + 1 and a.shape[-1] == 1 else a


def _flags(per_agent: list[np.ndarray], vault: Path, field: str) -> np.ndarray:
    """[B, S] bool: every agent's flag set. Agents must agree (episodes end for all at once)."""
    stacked = np.stack(per_agent, axis=-1)   # [B, S, N]
    if stacked.dtype != np.bool_:
        if not (np.issubdtype(stacked.dtype, np.number)):
            raise DatasetError(str(vault), field, f"expected 0/1 flags, got dtype {stacked.dtype}")
        bad = np.argwhere((stacked != 0) & (stacked != 1))
        if bad.size:
            b, t, i = (int(x) for x in bad[0])
            raise DatasetError(str(vault), field, f"flags must be 0 or 1, got {stacked[b, t, i]} "
                               f"at batch {b}, step {t}, agent {i}")
        stacked = stacked != 0
    every, some = stacked.all(axis=-1), stacked.any(axis=-1)
    split = np.argwhere(some & ~every)
    if split.size:
        b, t = (int(x) for x in split[0])
        raise DatasetError(str(vault), field, f"set for some agents but not all at batch {b}, step "
                           f"{t} (episodes end for all agents at once)")
    return every


def _as_float(a: np.ndarray, vault: Path, field: str) -> np.ndarray:
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.number):
        raise DatasetError(str(vault), field, f"expected numbers, got dtype {a.dtype}")
    return a.astype(np.float32)


def _check_continuous(arrays: dict, vault: Path) -> None:
    if any(p[:2] == LEGALS for p in arrays):
        raise DatasetError(str(vault), "actions", DISCRETE_MESSAGE.format(
            why="the Vault has legal-action masks, infos.legals"))
    for path, a in arrays.items():
        if path[0] != "actions":
            continue
        if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            raise DatasetError(str(vault), ".".join(path), DISCRETE_MESSAGE.format(
                why=f"{a.dtype} actions"))
        if a.ndim == (3 if len(path) == 1 else 2):
            raise DatasetError(str(vault), ".".join(path), DISCRETE_MESSAGE.format(
                why=f"one number per agent and step, shape {list(a.shape)}"))


def _actions(raw: list[np.ndarray], vault: Path, names: tuple[str, ...],
             bounds: tuple[float, float] | None, clip: bool) -> tuple[list[np.ndarray], int]:
    """Per-agent actions in [-1, 1]: rescaled from ``bounds``, clipped, or refused."""
    out, clipped = [], 0
    for i, a in enumerate(raw):
        a = a.astype(np.float64)
        if bounds is not None:
            low, high = bounds
            a = 2.0 * (a - low) / (high - low) - 1.0
        if clip:
            outside = np.abs(a) > 1.0
            clipped += int(outside.sum())
            a = np.clip(a, -1.0, 1.0)
        mag = np.abs(a)
        if a.size and mag.max() > 1 + ACTION_TOLERANCE:
            b, t, c = np.unravel_index(int(np.argmax(mag)), a.shape)
            raise DatasetError(
                str(vault), "actions",
                f"values outside [-1, 1] (max {a[b, t, c]:.6g} at batch {b}, step {t}, agent "
                f"{names[i]}, column {c}{' after rescaling' if bounds else ''}); pass "
                "--action-bounds LOW HIGH if the environment's Box is not [-1, 1], or "
                "--clip-actions to clip as OG-MARL's continuous trainers do")
        out.append(a.astype(np.float32))
    return out, clipped


# --------------------------------------------------------------------------- episodes


def _stream_plan(term: np.ndarray, trunc: np.ndarray, last_stream: bool
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For one stream of S steps: (keep [S], next index [S], terminals [S], timeouts [S]).

    A terminal row is kept with itself as the next row; the last row of an episode cut without
    a terminal (truncation, or the stream's end) is dropped and the row before it flagged a
    timeout, except at the very end of the data (a trailing partial episode, no flag)."""
    S = term.shape[0]
    ended = term | trunc
    drop = trunc & ~term
    if not term[-1]:
        drop[-1] = True
    nxt = np.minimum(np.arange(S) + 1, S - 1)
    nxt[term] = np.flatnonzero(term)
    timeouts = np.zeros(S, bool)
    # the row before a dropped row, when both lie in one episode
    dropped = np.flatnonzero(drop)
    before = dropped[dropped > 0] - 1
    before = before[~ended[before]]
    timeouts[before] = True
    if last_stream and not ended[-1] and S >= 2 and not ended[-2]:
        timeouts[S - 2] = False
    return ~drop, nxt, term.copy(), timeouts


# --------------------------------------------------------------------------- public API


def import_ogmarl(
    vault_dir: str | os.PathLike,
    *,
    env_id: str | None = None,
    quality: str | None = None,
    seed: int | None = None,
    agent_names: tuple[str, ...] | None = None,
    reference_returns: dict[str, float] | None = None,
    action_bounds: tuple[float, float] | None = None,
    clip_actions: bool = False,
) -> MultiAgentDataset:
    """Read an OG-MARL Vault directory (``<vault_name>/<vault_uid>``) into a validated
    MultiAgentDataset; the episode-end handling is in the module docstring.

    env_id: default the Vault's name without ``.vlt`` (``2halfcheetah``); it is a name of your
        own for ``evaluate --env``, since OG-MARL's observations are not scoredec's built-in
        tasks'. quality: default the Vault uid (``Good``). seed: default -1 (unknown).
    agent_names: default ``agent_0 ...`` (stacked layout) or the dict keys (per-agent layout).
    action_bounds: (low, high) of the environment's action Box, when not [-1, 1].
    clip_actions: clip actions to [-1, 1] instead of refusing values outside.

    Every problem raises DatasetError naming the Vault directory and the field.
    """
    vault = Path(vault_dir)
    if action_bounds is not None:
        low, high = (float(x) for x in action_bounds)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"action_bounds must be finite with low < high, got {action_bounds}")
        action_bounds = (low, high)
    arrays, facts = read_vault(vault)
    _check_continuous(arrays, vault)

    names, obs = _per_agent(arrays, "observations", vault, 1)
    _, act = _per_agent(arrays, "actions", vault, 1)
    _, rew = _per_agent(arrays, "rewards", vault, 0)
    _, term = _per_agent(arrays, "terminals", vault, 0)
    _, trunc = _per_agent(arrays, "truncations", vault, 0)
    n = len(obs)
    for field, group in (("actions", act), ("rewards", rew), ("terminals", term),
                         ("truncations", trunc)):
        if len(group) != n:
            raise DatasetError(str(vault), field, f"has {len(group)} agents, observations has {n}")
    names = tuple(agent_names) if agent_names is not None else (
        names or tuple(f"agent_{i}" for i in range(n)))
    if len(names) != n:
        raise ValueError(f"agent_names has {len(names)} names, the Vault has {n} agents")
    obs = [_as_float(a, vault, "observations") for a in obs]
    rew = [_as_float(a, vault, "rewards") for a in rew]
    act, clipped = _actions(act, vault, names, action_bounds, clip_actions)
    terminal = _flags(term, vault, "terminals")
    truncated = _flags(trunc, vault, "truncations")
    state = None
    if STATE in arrays:
        state = _as_float(arrays[STATE], vault, "infos.state")
        if state.ndim != 3:
            raise DatasetError(str(vault), "infos.state",
                               f"expected [batch, time, state_dim], got shape {list(state.shape)}")

    obs_dims = tuple(int(a.shape[2]) for a in obs)
    act_dims = tuple(int(a.shape[2]) for a in act)
    obs_all = np.stack([_pad([o[b] for o in obs], max(obs_dims)) for b in range(facts["batch"])])
    act_all = np.stack([_pad([a[b] for a in act], max(act_dims)) for b in range(facts["batch"])])
    rew_all = np.stack(rew, axis=-1)                                    # [B, S, N]

    parts: dict[str, list[np.ndarray]] = {k: [] for k in (
        "observations", "actions", "rewards", "next_observations", "terminals", "timeouts",
        "state", "next_state")}
    dropped = 0
    B = facts["batch"]
    for b in range(B):
        keep, nxt, terminals, timeouts = _stream_plan(terminal[b], truncated[b], b == B - 1)
        dropped += int((~keep).sum())
        parts["observations"].append(obs_all[b][keep])
        parts["next_observations"].append(obs_all[b][nxt][keep])
        parts["actions"].append(act_all[b][keep])
        parts["rewards"].append(rew_all[b][keep])
        parts["terminals"].append(terminals[keep])
        parts["timeouts"].append(timeouts[keep])
        if state is not None:
            parts["state"].append(state[b][keep])
            parts["next_state"].append(state[b][nxt][keep])
    joined = {k: (np.concatenate(v) if v else None) for k, v in parts.items()}
    if joined["observations"].shape[0] == 0:
        raise DatasetError(str(vault), "terminals", "no step is left: every episode is a single "
                           "step cut without a terminal")

    vault_name = vault.resolve().parent.name
    ignored = sorted(".".join(p) for p in arrays
                     if p[0] not in REQUIRED and p != STATE)
    ds = MultiAgentDataset(
        observations=joined["observations"],
        actions=joined["actions"],
        rewards=joined["rewards"],
        next_observations=joined["next_observations"],
        terminals=joined["terminals"],
        timeouts=joined["timeouts"],
        state=joined["state"],
        next_state=joined["next_state"],
        obs_dims=obs_dims,
        act_dims=act_dims,
        agent_names=names,
        env_id=env_id or vault_name.removesuffix(".vlt") or "ogmarl",
        quality=quality or vault.resolve().name,
        generator="ogmarl-import",
        seed=UNKNOWN_SEED if seed is None else seed,
        reference_returns=None if reference_returns is None else dict(reference_returns),
        attrs={
            "source": "OG-MARL flashbax Vault (instadeepai/flashbax flashbax/vault/vault.py), "
                      "read with tensorstore",
            "source_dir": str(vault.resolve()),
            "vault_version": facts["version"],
            "vault_steps": facts["steps"],
            "vault_batch": B,
            "episode_ends": "terminal: last row kept, next_observations = observations; "
                            "cut: last row dropped, the row before flagged timeout",
            "dropped_steps": dropped,
            "ignored_leaves": ignored,
            "action_bounds": None if action_bounds is None else list(action_bounds),
            "clipped_action_values": clipped if clip_actions else None,
        },
    )
    ds.validate(str(vault))
    log.info("imported %s: %d of %d steps (%d dropped at cut episode ends), %d episodes, %d agents",
             vault, ds.n_transitions, facts["steps"] * B, dropped,
             len(ds.episode_boundaries()), n)
    return ds


def ogmarl_to_hdf5(vault_dir: str | os.PathLike, out_path: str | os.PathLike,
                   **options: Any) -> MultiAgentDataset:
    """``import_ogmarl(vault_dir, **options)`` written atomically to ``out_path`` (HDF5)."""
    ds = import_ogmarl(vault_dir, **options)
    write_dataset(out_path, ds)
    return ds
