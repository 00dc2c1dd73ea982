"""Importer of the original OMAR datasets' per-agent ``.npy`` layout (docs/dataset_schema.md).

OMAR (ling-pan/OMAR, ``utils/buffer.py`` ``ReplayBuffer.load_batch_data``) reads one folder
per task x quality x seed, ``datasets/<env_id>/<data_type>/seed_<s>_data/``, holding for every
agent i (0-based)::

    obs_i.npy       [N, obs_dim_i]   float      observation
    acs_i.npy       [N, act_dim_i]   float      action (MPE and MaMuJoCo actions lie in [-1, 1])
    rews_i.npy      [N]              float      agent i's reward
    next_obs_i.npy  [N, obs_dim_i]   float      next observation
    dones_i.npy     [N]              0/1        episode end flag
    states_i.npy, next_states_i.npy  [N, state_dim]   MaMuJoCo only: the global state, one
                                                      identical copy per agent

OMAR's MPE tasks never set a done (``done_callback`` is None; ``--episode_length 25`` cuts the
episode), so episodes are the consecutive 25-row blocks. In MaMuJoCo (``episode_limit`` 1000)
a done marks the end of an episode; HalfCheetah cannot terminate, so a done on the 1000th step
is the time limit (a timeout) and an episode without a done is cut after 1000 rows as well.
This relies on the rows being consecutive steps of consecutive episodes, which is checked:
inside an episode ``next_obs[t]`` must equal ``obs[t + 1]``.

In tag and world, OMAR stores the pretrained prey as the last agent; scoredec's environments
learn only the three predators, so the prey's files are read only with ``include_prey=True``.

Nothing is unpickled: ``np.load(..., allow_pickle=False)``; a pickled file is an error.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from scoredec.data.hdf5 import write_dataset
from scoredec.data.schema import ACTION_TOLERANCE, DatasetError, MultiAgentDataset
from scoredec.envs.mpe.core import EPISODE_LENGTH as MPE_EPISODE_LENGTH
from scoredec.envs.mpe.spread import REFERENCE_RETURNS as SPREAD_REFERENCE
from scoredec.envs.mpe.tag import REFERENCE_RETURNS as TAG_REFERENCE
from scoredec.envs.mpe.world import REFERENCE_RETURNS as WORLD_REFERENCE

__all__ = ["OmarTask", "OMAR_TASKS", "import_omar", "omar_to_hdf5"]

log = logging.getLogger(__name__)

MAMUJOCO_EPISODE_LENGTH = 1000
"""OMAR ``main.py``: ``env_args = {..., "episode_limit": 1000, ...}``."""

HALFCHEETAH_REFERENCE = {"random": -283.97, "expert": 3568.81}
"""DESIGN.md 1.7: 2-agent HalfCheetah reference returns."""

CONTINUITY_RTOL = 1e-5
CONTINUITY_ATOL = 1e-6
"""next_obs[t] vs obs[t + 1]: the same numbers, up to a float64 -> float32 -> float64 trip."""

UNKNOWN_SEED = -1
"""Seed recorded when neither the caller nor the folder name (``seed_<s>_data``) gives one."""

QUALITIES = ("random", "medium-replay", "medium", "expert")
"""OMAR's ``--data_type`` values; the folder above ``seed_<s>_data`` is one of them."""

# OMAR file stem -> schema field it fills.
_AGENT_FILES = {
    "obs": "observations",
    "acs": "actions",
    "rews": "rewards",
    "next_obs": "next_observations",
    "dones": "dones",
}
_STATE_FILES = {"states": "state", "next_states": "next_state"}
_SEED_DIR = re.compile(r"seed_(\d+)_data")


@dataclass(frozen=True)
class OmarTask:
    """What the OMAR layout holds for one task."""

    env_id: str
    """scoredec's name of the task (``make_mpe`` name or ``halfcheetah-2x3``)."""
    omar_env_id: str
    """OMAR's ``--env_id`` (its dataset folder name)."""
    agent_names: tuple[str, ...]
    """The learned agents, in OMAR's agent order (files 0 .. n-1)."""
    obs_dims: tuple[int, ...]
    act_dims: tuple[int, ...]
    prey_obs_dims: tuple[int, ...]
    """Agents after the learned ones (the pretrained prey of tag and world), read on request."""
    prey_act_dims: tuple[int, ...]
    episode_length: int
    has_state: bool
    """MaMuJoCo: ``states_i.npy`` / ``next_states_i.npy`` are present."""
    reference_returns: dict[str, float]


def _names(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}_{i}" for i in range(count))


OMAR_TASKS: dict[str, OmarTask] = {
    # Widths: scoredec/envs/mpe/{spread,tag,world}.py docstrings (the OMAR scenario files);
    # MPE actions are the 2-d forces of ``discrete_action=False``.
    "spread": OmarTask("spread", "simple_spread", _names("agent", 3), (18,) * 3, (2,) * 3,
                       (), (), MPE_EPISODE_LENGTH, False, SPREAD_REFERENCE),
    "tag": OmarTask("tag", "simple_tag", _names("predator", 3), (16,) * 3, (2,) * 3,
                    (14,), (2,), MPE_EPISODE_LENGTH, False, TAG_REFERENCE),
    "world": OmarTask("world", "simple_world", _names("predator", 3), (24,) * 3, (2,) * 3,
                      (22,), (2,), MPE_EPISODE_LENGTH, False, WORLD_REFERENCE),
    # OMAR main.py: MujocoMulti(scenario HalfCheetah-v2, agent_conf "2x3", agent_obsk 0):
    # each agent sees its 3 joints' positions and velocities and drives those 3 joints.
    "halfcheetah-2x3": OmarTask("halfcheetah-2x3", "HalfCheetah-v2", _names("agent", 2),
                                (6,) * 2, (3,) * 2, (), (), MAMUJOCO_EPISODE_LENGTH, True,
                                HALFCHEETAH_REFERENCE),
}


# --------------------------------------------------------------------------- loading


def _load(path: Path, field: str) -> np.ndarray:
    """One ``.npy`` file as an array, never unpickling; every failure names the file."""
    if not path.is_file():
        raise DatasetError(str(path), field, "missing file")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            # numpy takes anything without the .npy/.npz magic for a pickle, so this also
            # catches files that are not NumPy data at all.
            raise DatasetError(
                str(path), field,
                "is not a plain .npy array: it holds pickled Python objects (or is not NumPy "
                "data); refusing to unpickle",
            ) from None
        raise DatasetError(str(path), field, f"not a readable .npy file: {e}") from None
    except (OSError, EOFError) as e:
        raise DatasetError(str(path), field, f"not a readable .npy file: {e}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        array.close()
        raise DatasetError(str(path), field, "is an .npz archive, expected a single .npy array")
    return array


def _as_float(array: np.ndarray, path: Path, field: str, ndim: int) -> np.ndarray:
    """Check shape and finiteness; return float32. Rewards may come as [N, 1]."""
    if ndim == 1 and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != ndim:
        raise DatasetError(str(path), field, f"expected {ndim} dimensions, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DatasetError(str(path), field, f"expected numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        where = f"row {idx[0]}" + (f", column {idx[1]}" if len(idx) > 1 else "")
        raise DatasetError(str(path), field, f"non-finite value {array[idx]} at {where}")
    return array.astype(np.float32)


def _as_flags(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(str(path), "dones", f"expected 1 dimension, got shape {array.shape}")
    if array.dtype != np.bool_:
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise DatasetError(str(path), "dones", f"expected 0/1 flags, got dtype {array.dtype}")
        bad = np.flatnonzero((array != 0) & (array != 1))
        if bad.size:
            raise DatasetError(
                str(path), "dones", f"flags must be 0 or 1, got {array[bad[0]]} at row {bad[0]}"
            )
    return array.astype(bool)


def _load_agent(directory: Path, i: int, obs_dim: int, act_dim: int) -> dict[str, Any]:
    """Agent i's five arrays, checked against each other and the task's widths."""
    out: dict[str, Any] = {}
    rows: tuple[Path, int] | None = None
    for stem, field in _AGENT_FILES.items():
        path = directory / f"{stem}_{i}.npy"
        raw = _load(path, field)
        if field == "dones":
            array = _as_flags(raw, path)
        else:
            array = _as_float(raw, path, field, 1 if field == "rewards" else 2)
        if rows is None:
            rows = (path, array.shape[0])
        elif array.shape[0] != rows[1]:
            raise DatasetError(
                str(path), field, f"has {array.shape[0]} rows, {rows[0].name} has {rows[1]}"
            )
        widths = {"observations": obs_dim, "next_observations": obs_dim, "actions": act_dim}
        want = widths.get(field)
        if want is not None and array.shape[1] != want:
            raise DatasetError(
                str(path), field,
                f"agent {i} should have width {want} in this task, got {array.shape[1]}",
            )
        if field == "actions" and array.size:
            mag = np.abs(array)
            if mag.max() > 1 + ACTION_TOLERANCE:
                row, col = np.unravel_index(int(np.argmax(mag)), array.shape)
                raise DatasetError(
                    str(path), field,
                    f"values outside [-1, 1] "
                    f"(max {array[row, col]:.6g} at row {row}, column {col})",
                )
        out[field] = array
        out[f"{field}_file"] = path
    return out


def _load_state(directory: Path, n_agents: int, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The global state of MaMuJoCo: OMAR keeps one copy per agent, which must agree."""
    result = []
    for stem, field in _STATE_FILES.items():
        first: np.ndarray | None = None
        for i in range(n_agents):
            path = directory / f"{stem}_{i}.npy"
            array = _as_float(_load(path, field), path, field, 2)
            if array.shape[0] != n_rows:
                raise DatasetError(
                    str(path), field, f"has {array.shape[0]} rows, obs_0.npy has {n_rows}"
                )
            if first is None:
                first = array
            elif array.shape != first.shape or not np.array_equal(array, first):
                raise DatasetError(
                    str(path), field, f"differs from {stem}_0.npy (the global state must be shared)"
                )
        result.append(first)
    return result[0], result[1]


# --------------------------------------------------------------------------- episodes


def _episode_flags(dones: np.ndarray, episode_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(terminals, timeouts) [T] bool from done flags and the time limit.

    Episodes start at row 0 and after every done; one that runs ``episode_length`` rows without
    a done is cut there (timeout). A done on an episode's ``episode_length``-th row is the time
    limit (timeout), an earlier one a true end (terminal). A trailing partial episode has no flag.
    """
    T = dones.shape[0]
    terminals = np.zeros(T, bool)
    timeouts = np.zeros(T, bool)
    start = 0
    for end in [*np.flatnonzero(dones).tolist(), None]:
        stop = T if end is None else end + 1
        cuts = np.arange(start + episode_length - 1, stop, episode_length)
        timeouts[cuts] = True
        if end is not None and not timeouts[end]:
            terminals[end] = True
        start = stop
    return terminals, timeouts


def _check_continuity(
    agents: list[dict[str, Any]], boundary: np.ndarray, episode_length: int
) -> None:
    """Inside an episode, next_obs[t] must be obs[t + 1]; otherwise the rows are not in
    episode order and the restored boundaries would be fiction."""
    inside = ~boundary[:-1]
    for i, a in enumerate(agents):
        nxt, cur = a["next_observations"][:-1], a["observations"][1:]
        close = np.isclose(nxt, cur, rtol=CONTINUITY_RTOL, atol=CONTINUITY_ATOL).all(axis=1)
        bad = np.flatnonzero(inside & ~close)
        if bad.size:
            t = int(bad[0])
            raise DatasetError(
                str(a["next_observations_file"]),
                "next_observations",
                f"row {t} is not followed by its next observation (row {t + 1} of "
                f"{a['observations_file'].name} differs) although both lie in one episode of "
                f"{episode_length} steps: {bad.size} such rows. The rows are not consecutive "
                "steps of consecutive episodes; check episode_length, or pass "
                "check_continuity=False to import without trustworthy episode boundaries",
            )


# --------------------------------------------------------------------------- public API


def _pad(arrays: list[np.ndarray], width: int) -> np.ndarray:
    """[T, w_i] per agent -> [T, n, width] float32, zero beyond w_i."""
    T = arrays[0].shape[0]
    out = np.zeros((T, len(arrays), width), np.float32)
    for i, a in enumerate(arrays):
        out[:, i, : a.shape[1]] = a
    return out


def _infer_from_path(directory: Path) -> tuple[str | None, int | None]:
    """(quality, seed) from ``.../<data_type>/seed_<s>_data`` when the folder is named so."""
    m = _SEED_DIR.fullmatch(directory.name)
    seed = int(m.group(1)) if m else None
    parent = directory.parent.name if m else directory.name
    return (parent if parent in QUALITIES else None), seed


def import_omar(
    directory: str | os.PathLike,
    task: str,
    *,
    episode_length: int | None = None,
    include_prey: bool = False,
    quality: str | None = None,
    seed: int | None = None,
    check_continuity: bool = True,
) -> MultiAgentDataset:
    """Read an OMAR dataset folder into a validated MultiAgentDataset.

    directory: the folder holding ``obs_0.npy`` ... (OMAR's ``seed_<s>_data``).
    task: one of ``OMAR_TASKS`` ("spread", "tag", "world", "halfcheetah-2x3").
    episode_length: the time limit; default 25 for MPE, 1000 for MaMuJoCo.
    include_prey: tag / world only: also read the prey (the last agent, files 3); its
        observation is narrower and is zero-padded (obs_dims records the true widths).
    quality, seed: default to what the folder names say (``<quality>/seed_<s>_data``), else
        "unknown" and -1.
    check_continuity: verify that rows are consecutive steps of consecutive episodes.

    Every problem raises DatasetError naming the offending file and field.
    """
    directory = Path(directory)
    if task not in OMAR_TASKS:
        raise ValueError(f"unknown OMAR task {task!r}; expected one of {sorted(OMAR_TASKS)}")
    spec = OMAR_TASKS[task]
    if include_prey and not spec.prey_obs_dims:
        raise ValueError(f"task {task!r} has no prey; include_prey applies to tag and world")
    if not directory.is_dir():
        raise DatasetError(str(directory), None, "no such directory")
    length = spec.episode_length if episode_length is None else episode_length
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"episode_length must be a positive int, got {episode_length!r}")

    obs_dims = spec.obs_dims + (spec.prey_obs_dims if include_prey else ())
    act_dims = spec.act_dims + (spec.prey_act_dims if include_prey else ())
    names = spec.agent_names + (("prey",) if include_prey else ())
    n_stored = len(spec.obs_dims) + len(spec.prey_obs_dims)
    extra = directory / f"obs_{n_stored}.npy"
    if extra.exists():
        raise DatasetError(
            str(extra), "observations",
            f"task {task!r} has {n_stored} agents in the OMAR layout (files 0-{n_stored - 1}); "
            "is this the folder of another task?",
        )

    agents: list[dict[str, Any]] = []
    for i, (o, a) in enumerate(zip(obs_dims, act_dims)):
        agent = _load_agent(directory, i, o, a)
        if agents and agent["observations"].shape[0] != agents[0]["observations"].shape[0]:
            raise DatasetError(
                str(agent["observations_file"]), "observations",
                f"has {agent['observations'].shape[0]} rows, obs_0.npy has "
                f"{agents[0]['observations'].shape[0]} (all agents must have the same rows)",
            )
        agents.append(agent)
    T = agents[0]["observations"].shape[0]
    if T == 0:
        raise DatasetError(str(agents[0]["observations_file"]), "observations", "has no rows")

    dones = agents[0]["dones"]
    for a in agents[1:]:
        differ = np.flatnonzero(a["dones"] != dones)
        if differ.size:
            raise DatasetError(
                str(a["dones_file"]), "dones",
                f"differs from dones_0.npy at row {differ[0]} "
                "(episodes end for all agents at once)",
            )
    terminals, timeouts = _episode_flags(dones, length)
    if check_continuity:
        _check_continuity(agents, terminals | timeouts, length)

    state = next_state = None
    if spec.has_state:
        state, next_state = _load_state(directory, len(obs_dims), T)

    inferred_quality, inferred_seed = _infer_from_path(directory)
    ds = MultiAgentDataset(
        observations=_pad([a["observations"] for a in agents], max(obs_dims)),
        actions=_pad([a["actions"] for a in agents], max(act_dims)),
        rewards=np.stack([a["rewards"] for a in agents], axis=1),
        next_observations=_pad([a["next_observations"] for a in agents], max(obs_dims)),
        terminals=terminals,
        timeouts=timeouts,
        state=state,
        next_state=next_state,
        obs_dims=obs_dims,
        act_dims=act_dims,
        agent_names=names,
        env_id=spec.env_id,
        quality=quality or inferred_quality or "unknown",
        generator="omar-import",
        seed=seed if seed is not None else (
            UNKNOWN_SEED if inferred_seed is None else inferred_seed
        ),
        reference_returns=dict(spec.reference_returns),
        attrs={
            "source": "OMAR per-agent .npy layout (ling-pan/OMAR utils/buffer.py)",
            "source_dir": str(directory.resolve()),
            "omar_env_id": spec.omar_env_id,
            "episode_length": length,
            "include_prey": include_prey,
            "episode_order_checked": check_continuity,
        },
    )
    ds.validate(str(directory))
    log.info(
        "imported %s (%s): %d transitions, %d episodes, %d agents",
        directory, task, T, int((terminals | timeouts).sum()), len(obs_dims),
    )
    return ds


def omar_to_hdf5(
    directory: str | os.PathLike, task: str, out_path: str | os.PathLike, **options: Any
) -> MultiAgentDataset:
    """``import_omar(directory, task, **options)`` written atomically to ``out_path`` (HDF5)."""
    ds = import_omar(directory, task, **options)
    write_dataset(out_path, ds)
    return ds
