"""The in-memory multi-agent dataset and its validation (docs/dataset_schema.md).

All agents' transitions at one timestep form one row. Agents with different observation or
action widths are padded to the widest; ``obs_dims`` / ``act_dims`` give the true widths, and
the padding must be exactly zero so that a model that reads a padded column sees no signal.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCHEMA_VERSION", "ARRAY_FIELDS", "VALUE_LIMIT", "DatasetError", "MultiAgentDataset",
           "value_limit"]

SCHEMA_VERSION = 1
ACTION_TOLERANCE = 1e-6  # float32 round-off from tanh/clipping upstream; anything larger is a bug
VALUE_LIMIT = 1e6
"""Largest |x| accepted in observations, rewards and states (actions are bounded by 1). Far
above the values of the tasks here, and far enough below float32's 3.4e38 that squares summed
over a batch (1e12 x 1e4 rows) cannot overflow: a larger value is a broken file, refused when
it is read rather than met as a FloatingPointError in training. The environment variable
SCOREDEC_VALUE_LIMIT sets another limit."""
LIMITED_FIELDS = ("observations", "next_observations", "rewards", "state", "next_state")


def value_limit() -> float:
    """VALUE_LIMIT, or SCOREDEC_VALUE_LIMIT when set (a positive finite number)."""
    text = os.environ.get("SCOREDEC_VALUE_LIMIT")
    if text is None:
        return VALUE_LIMIT
    try:
        limit = float(text)
    except ValueError:
        limit = math.nan
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"SCOREDEC_VALUE_LIMIT must be a positive finite number, got {text!r}")
    return limit

# name -> (ndim, kind); kind "float" must be float32, "bool" must be bool.
ARRAY_FIELDS: dict[str, tuple[int, str]] = {
    "observations": (3, "float"),
    "actions": (3, "float"),
    "rewards": (2, "float"),
    "next_observations": (3, "float"),
    "terminals": (1, "bool"),
    "timeouts": (1, "bool"),
    "state": (2, "float"),
    "next_state": (2, "float"),
}
OPTIONAL_FIELDS = ("state", "next_state")
_AXES = ("row", "agent", "column")


class DatasetError(ValueError):
    """A dataset violates the schema. ``file`` and ``field`` name where (``field`` may be None)."""

    def __init__(self, file: str, field: str | None, detail: str) -> None:
        self.file = file
        self.field = field
        self.detail = detail
        where = f"{file}: field '{field}': " if field else f"{file}: "
        super().__init__(where + detail)


def _where(index: tuple[int, ...], field: str = "") -> str:
    """``row 12, agent 0`` for a numpy index into a [T, n, ...] array (``row 3, column 1`` for
    the [T, state_dim] global state)."""
    axes = ("row", "column") if field in ("state", "next_state") else _AXES
    return ", ".join(f"{axis} {int(i)}" for axis, i in zip(axes, index))


def _finite(v: int | float) -> bool:
    """math.isfinite that says False for an int too large for a float instead of raising."""
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


@dataclass(eq=False)
class MultiAgentDataset:
    """Transitions of n agents.

    Arrays (T transitions, n agents):
        observations:      [T, n, obs_max] float32, zero beyond obs_dims[i] for agent i
        actions:           [T, n, act_max] float32 in [-1, 1], zero beyond act_dims[i]
        rewards:           [T, n] float32
        next_observations: [T, n, obs_max] float32, padded like observations
        terminals:         [T] bool, true where the episode ended in a terminal state
        timeouts:          [T] bool, true where the episode was cut by a time limit
        state:             [T, state_dim] float32 global state, or None
        next_state:        [T, state_dim] float32, or None (present iff state is)
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    obs_dims: tuple[int, ...]
    act_dims: tuple[int, ...]
    agent_names: tuple[str, ...]
    env_id: str
    quality: str
    generator: str
    seed: int
    state: np.ndarray | None = None
    next_state: np.ndarray | None = None
    reference_returns: dict[str, float] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def n_transitions(self) -> int:
        return int(self.observations.shape[0])

    @property
    def n_agents(self) -> int:
        return int(self.observations.shape[1])

    @property
    def obs_max(self) -> int:
        return int(self.observations.shape[2])

    @property
    def act_max(self) -> int:
        return int(self.actions.shape[2])

    def episode_boundaries(self) -> np.ndarray:
        """Indices of the last transition of each episode (terminal or timeout), ascending.

        A trailing partial episode (data cut without a flag) has no entry.
        """
        return np.flatnonzero(np.asarray(self.terminals, bool) | np.asarray(self.timeouts, bool))

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields that are present, by name."""
        return {k: getattr(self, k) for k in ARRAY_FIELDS if getattr(self, k) is not None}

    def equals(self, other: MultiAgentDataset) -> bool:
        """Exact equality of every array (dtype included) and every attribute."""
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
                    return False
                if a.dtype != b.dtype or not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    def with_storage_dtypes(self, source: str = "<memory>") -> MultiAgentDataset:
        """A copy whose floating arrays are float32 and whose flags are bool (the stored dtypes).

        Accepts any floating dtype for float fields and bool or 0/1 integers for flags;
        anything else raises DatasetError naming the field.
        """
        changes: dict[str, Any] = {}
        for name, (_, kind) in ARRAY_FIELDS.items():
            a = getattr(self, name)
            if not isinstance(a, np.ndarray):
                continue  # validate() reports it
            if kind == "float" and np.issubdtype(a.dtype, np.floating) and a.dtype != np.float32:
                changes[name] = a.astype(np.float32)
            elif kind == "bool" and a.dtype != np.bool_ and a.ndim == 1:   # validate() names other shapes
                if not np.issubdtype(a.dtype, np.integer):
                    raise DatasetError(source, name, f"expected bool flags, got dtype {a.dtype}")
                bad = np.flatnonzero((a != 0) & (a != 1))
                if bad.size:
                    raise DatasetError(
                        source, name, f"flags must be 0 or 1, got {a[bad[0]]} at row {bad[0]}"
                    )
                changes[name] = a.astype(bool)
        for name in ("obs_dims", "act_dims", "agent_names"):
            if isinstance(getattr(self, name), list):
                changes[name] = tuple(getattr(self, name))
        return dataclasses.replace(self, **changes) if changes else self

    # ------------------------------------------------------------------ validation

    def validate(self, source: str = "<memory>", *, limit: float | None = None) -> None:
        """Raise DatasetError (naming ``source`` and the field) unless the dataset fits the schema.

        limit: the largest |x| of observations, rewards and states (default: value_limit())."""
        T, n = self._check_arrays(source)
        self._check_metadata(source, n)
        self._check_values(source, value_limit() if limit is None else limit)

    def _check_arrays(self, source: str) -> tuple[int, int]:
        for name, (ndim, kind) in ARRAY_FIELDS.items():
            a = getattr(self, name)
            if a is None:
                if name not in OPTIONAL_FIELDS:
                    raise DatasetError(source, name, "missing")
                continue
            if not isinstance(a, np.ndarray):
                raise DatasetError(source, name, f"expected a numpy array, got {type(a).__name__}")
            if a.ndim != ndim:
                raise DatasetError(source, name, f"expected {ndim} dimensions, got shape {a.shape}")
            want = np.float32 if kind == "float" else np.bool_
            if a.dtype != want:
                raise DatasetError(source, name, f"expected dtype {np.dtype(want)}, got {a.dtype}")
        if (self.state is None) != (self.next_state is None):
            present, absent = (
                ("state", "next_state") if self.next_state is None else ("next_state", "state")
            )
            raise DatasetError(source, absent, f"missing while '{present}' is present")
        T, n = self.observations.shape[:2]
        if T < 1:
            raise DatasetError(source, "observations", "has no rows (an empty dataset: nothing to "
                                                       "learn from or describe)")
        if n < 1:
            raise DatasetError(
                source, "observations", f"needs at least one agent, got shape {self.observations.shape}"
            )
        for name, a in self.arrays().items():
            if a.shape[0] != T:
                raise DatasetError(source, name, f"has {a.shape[0]} rows, observations have {T}")
            if a.ndim >= 2 and name not in OPTIONAL_FIELDS and a.shape[1] != n:
                raise DatasetError(source, name, f"has {a.shape[1]} agents, observations have {n}")
        if self.next_observations.shape != self.observations.shape:
            raise DatasetError(
                source,
                "next_observations",
                f"shape {self.next_observations.shape} differs from "
                f"observations {self.observations.shape}",
            )
        if self.state is not None and self.next_state.shape != self.state.shape:
            raise DatasetError(
                source,
                "next_state",
                f"shape {self.next_state.shape} differs from state {self.state.shape}",
            )
        return T, n

    def _check_metadata(self, source: str, n: int) -> None:
        for name, limit_field in (("obs_dims", "observations"), ("act_dims", "actions")):
            dims = getattr(self, name)
            if not isinstance(dims, tuple) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in dims
            ):
                raise DatasetError(source, name, f"expected a tuple of ints, got {dims!r}")
            if len(dims) != n:
                raise DatasetError(source, name, f"has {len(dims)} entries for {n} agents")
            width = getattr(self, limit_field).shape[2]
            for i, d in enumerate(dims):
                if not 1 <= d <= width:
                    raise DatasetError(
                        source,
                        name,
                        f"agent {i} has width {d}, outside 1..{width} ({limit_field} width)",
                    )
        names = self.agent_names
        if not isinstance(names, tuple) or not all(isinstance(s, str) and s for s in names):
            raise DatasetError(
                source, "agent_names", f"expected a tuple of non-empty strings, got {names!r}"
            )
        if len(names) != n:
            raise DatasetError(source, "agent_names", f"has {len(names)} entries for {n} agents")
        if len(set(names)) != n:
            raise DatasetError(source, "agent_names", f"names are not unique: {names!r}")
        for name in ("env_id", "quality", "generator"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise DatasetError(source, name, f"expected a non-empty string, got {value!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise DatasetError(source, "seed", f"expected an int, got {self.seed!r}")
        if not -2**63 <= int(self.seed) < 2**63:
            raise DatasetError(source, "seed", f"{self.seed} does not fit the stored int64")
        ref = self.reference_returns
        if ref is not None:
            if not isinstance(ref, dict) or not {"random", "expert"} <= set(ref):
                raise DatasetError(
                    source,
                    "reference_returns",
                    f"expected a dict with 'random' and 'expert', got {ref!r}",
                )
            for k, v in ref.items():
                if (
                    not isinstance(k, str)
                    or isinstance(v, bool)
                    or not isinstance(v, (int, float))
                    or not _finite(v)
                ):
                    raise DatasetError(
                        source, "reference_returns", f"entry {k!r} must be a finite number, got {v!r}"
                    )
            if ref["expert"] == ref["random"]:
                raise DatasetError(
                    source,
                    "reference_returns",
                    "expert and random returns are equal (normalization divides by their difference)",
                )
        if not isinstance(self.attrs, dict) or not all(isinstance(k, str) for k in self.attrs):
            raise DatasetError(source, "attrs", f"expected a dict with string keys, got {self.attrs!r}")
        try:
            json.dumps(self.attrs, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise DatasetError(source, "attrs", f"not JSON-serializable: {e}") from None

    def _check_values(self, source: str, limit: float) -> None:
        for name, a in self.arrays().items():
            if a.dtype == np.float32:
                bound = limit if name in LIMITED_FIELDS else float(np.finfo(np.float32).max)
                # min/max propagate NaN, which fails both comparisons: one cheap pass each.
                if not a.size or (a.min() >= -bound and a.max() <= bound):
                    continue
                idx = tuple(np.argwhere(~(np.abs(a) <= bound))[0])
                where = _where(idx, name)
                if not np.isfinite(a[idx]):
                    raise DatasetError(source, name, f"non-finite value {a[idx]} at {where}")
                raise DatasetError(source, name, f"value {a[idx]:.6g} at {where} exceeds the limit "
                                                 f"|x| <= {limit:g} (SCOREDEC_VALUE_LIMIT sets another)")
        act = self.actions
        mag = np.abs(act)
        if act.size and mag.max() > 1 + ACTION_TOLERANCE:
            idx = np.unravel_index(int(np.argmax(mag)), act.shape)
            raise DatasetError(
                source,
                "actions",
                f"values outside [-1, 1] (max {act[idx]:.6g} at {_where(idx[:2])}, column {idx[2]})",
            )
        for name, dims in (
            ("observations", self.obs_dims),
            ("next_observations", self.obs_dims),
            ("actions", self.act_dims),
        ):
            a = getattr(self, name)
            for i, d in enumerate(dims):
                pad = a[:, i, d:]
                if pad.size and np.any(pad != 0):
                    row, col = np.argwhere(pad != 0)[0]
                    raise DatasetError(
                        source,
                        name,
                        f"nonzero padding {float(pad[row, col]):.6g} at row {row}, agent {i}, "
                        f"column {d + col} "
                        f"(agent {i} has width {d})",
                    )
