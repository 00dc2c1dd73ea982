"""The on-disk dataset format: one HDF5 file per dataset (docs/dataset_schema.md).

Layout (schema version 1)::

    /observations       [T, n, obs_max] float32     /terminals   [T] bool
    /actions            [T, n, act_max] float32     /timeouts    [T] bool
    /rewards            [T, n] float32              /state       [T, state_dim] float32 (optional)
    /next_observations  [T, n, obs_max] float32     /next_state  [T, state_dim] float32 (optional)

    root attributes: format = "scoredec-dataset", schema_version = 1, scoredec_version,
    env_id, quality, generator, seed, n_agents, n_transitions (scalars), and as JSON strings:
    obs_dims, act_dims, agent_names, reference_returns (or "null"), attrs.

Files are written through a temporary file and renamed, so a reader never sees half a
dataset. Reading validates everything and never unpickles: h5py maps HDF5 types to numpy
and the non-scalar attributes are JSON. A file is self-contained, and the reader opens nothing
else: external links, soft links, external raw storage, virtual datasets and filters other
than the ones written here (gzip, lzf, shuffle; fletcher32 is accepted) are refused before any
array is read, as is an array that declares far more bytes than the file stores (unwritten
chunks would be filled in memory).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

import scoredec
from scoredec.data.schema import (
    ARRAY_FIELDS,
    OPTIONAL_FIELDS,
    SCHEMA_VERSION,
    DatasetError,
    MultiAgentDataset,
)
from scoredec.io import atomic_output

__all__ = ["write_dataset", "read_dataset", "COMPRESSIONS"]

log = logging.getLogger(__name__)

FORMAT = "scoredec-dataset"
COMPRESSIONS = (None, "gzip", "lzf")
_GZIP_LEVEL = 4  # past 4, gzip gets slower with little gain on float data
_STR_ATTRS = ("env_id", "quality", "generator")
_JSON_ATTRS = ("obs_dims", "act_dims", "agent_names", "reference_returns", "attrs")
_FILTERS = {
    h5py.h5z.FILTER_DEFLATE: "gzip",
    h5py.h5z.FILTER_SHUFFLE: "shuffle",
    h5py.h5z.FILTER_FLETCHER32: "fletcher32",
    h5py.h5z.FILTER_LZF: "lzf",
}
"""The HDF5 filters a dataset file may use: built into HDF5 or h5py. Any other id would make
HDF5 load a plugin library from its plugin path to read the array."""
_MAX_COMPRESSION = 2000
"""Declared bytes per stored byte beyond which an array counts as unwritten: deflate cannot
exceed about 1032:1 (all-zero float32 measured 753:1 at level 4, lzf 87:1)."""
_STORAGE_SLACK = 1 << 20
_KNOWN_ATTRS = {
    "format",
    "schema_version",
    "scoredec_version",
    "seed",
    "n_agents",
    "n_transitions",
    *_STR_ATTRS,
    *_JSON_ATTRS,
}


def _write_array(f: h5py.File, name: str, array: np.ndarray, compression: str | None) -> None:
    opts: dict[str, Any] = {}
    if compression is not None and array.size:
        # Byte shuffle groups the exponent bytes of float32 values, which gzip/lzf then find.
        opts = {"compression": compression, "shuffle": True, "chunks": True}
        if compression == "gzip":
            opts["compression_opts"] = _GZIP_LEVEL
    f.create_dataset(name, data=array, **opts)


def write_dataset(
    path: str | os.PathLike, ds: MultiAgentDataset, *, compression: str | None = "gzip",
    limit: float | None = None,
) -> None:
    """Validate ``ds`` and write it to ``path`` (HDF5) atomically.

    Floating arrays of any precision are stored as float32, 0/1 integer flags as bool.
    ``compression`` is one of None, "gzip", "lzf". ``limit``: the value limit of validation
    (default: schema.value_limit()). An existing file at ``path`` is replaced only once the
    new one is complete.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
    source = str(path)
    ds = ds.with_storage_dtypes(source)
    ds.validate(source, limit=limit)
    with atomic_output(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, array in ds.arrays().items():
                _write_array(f, name, array, compression)
            a = f.attrs
            a["format"] = FORMAT
            a["schema_version"] = SCHEMA_VERSION
            a["scoredec_version"] = scoredec.__version__
            for name in _STR_ATTRS:
                a[name] = getattr(ds, name)
            a["seed"] = np.int64(ds.seed)
            a["n_agents"] = np.int64(ds.n_agents)
            a["n_transitions"] = np.int64(ds.n_transitions)
            a["obs_dims"] = json.dumps(list(ds.obs_dims))
            a["act_dims"] = json.dumps(list(ds.act_dims))
            a["agent_names"] = json.dumps(list(ds.agent_names))
            a["reference_returns"] = json.dumps(ds.reference_returns, allow_nan=False)
            a["attrs"] = json.dumps(ds.attrs, allow_nan=False, sort_keys=True)
    log.info(
        "wrote %s: %d transitions, %d agents, env %s, quality %s",
        path,
        ds.n_transitions,
        ds.n_agents,
        ds.env_id,
        ds.quality,
    )


def _attr(f: h5py.File, name: str, source: str) -> Any:
    if name not in f.attrs:
        raise DatasetError(source, name, "missing attribute")
    value = f.attrs[name]
    if isinstance(value, np.ndarray):
        raise DatasetError(source, name, f"expected a scalar attribute, got an array of shape "
                                         f"{value.shape}")
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        try:
            value.encode("utf-8")   # h5py keeps undecodable bytes as lone surrogates
        except UnicodeEncodeError:
            raise DatasetError(source, name, "attribute is not UTF-8 text") from None
    return value


def _json_attr(f: h5py.File, name: str, source: str) -> Any:
    text = _attr(f, name, source)
    if not isinstance(text, str):
        raise DatasetError(source, name, f"expected a JSON string attribute, got {type(text).__name__}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasetError(source, name, f"attribute is not valid JSON: {e}") from None


def _int_tuple(value: Any, name: str, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise DatasetError(source, name, f"expected a list of ints, got {value!r}")
    return tuple(value)


def _refuse_links(f: h5py.File, source: str) -> None:
    """Every name at the root must be a hard link: soft and external links are refused before
    anything resolves them (an external link would open the file it names)."""
    for name in f.keys():   # lists link names without following them
        link = f.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise DatasetError(source, name, f"is an external link to {link.filename}:{link.path} "
                                             "(a dataset file may not point at other files)")
        if isinstance(link, h5py.SoftLink):
            raise DatasetError(source, name, f"is a soft link to {link.path} (a dataset file "
                                             "holds its arrays, not links)")
        if not isinstance(link, h5py.HardLink):
            raise DatasetError(source, name, f"unsupported HDF5 link {type(link).__name__}")


def _refuse_foreign_storage(node: h5py.Dataset, name: str, source: str) -> None:
    """Refuse arrays whose bytes live anywhere but in this file, need a filter plugin, or were
    never written (reading them would fill declared gigabytes in memory)."""
    if node.is_virtual:
        sources = sorted({m.file_name for m in node.virtual_sources()})
        raise DatasetError(source, name, f"is a virtual dataset (its data would come from "
                                         f"{', '.join(sources)}); store the array itself")
    if node.external:
        files = sorted({str(entry[0]) for entry in node.external})
        raise DatasetError(source, name, f"keeps its data in external storage ({', '.join(files)}); "
                                         "store the array in the file itself")
    plist = node.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        code, _, _, label = plist.get_filter(i)
        if code not in _FILTERS:
            text = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            raise DatasetError(source, name, f"uses the HDF5 filter {text!r} (id {code}); a dataset "
                                             f"file may use only {', '.join(_FILTERS.values())}")
    declared = node.size * node.dtype.itemsize
    stored = node.id.get_storage_size()
    if declared > _MAX_COMPRESSION * stored + _STORAGE_SLACK:
        raise DatasetError(source, name, f"declares {declared} bytes of shape {node.shape} but the "
                                         f"file stores {stored} (unwritten or damaged array)")


def _read_open(f: h5py.File, source: str) -> MultiAgentDataset:
    fmt = f.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode("utf-8", "replace")
    if not isinstance(fmt, str) or fmt != FORMAT:
        raise DatasetError(source, "format", f"not a scoredec dataset (format attribute {fmt!r})")
    _refuse_links(f, source)
    version = _attr(f, "schema_version", source)
    if version != SCHEMA_VERSION:
        raise DatasetError(
            source,
            "schema_version",
            f"unknown schema version {version!r} "
            f"(this scoredec {scoredec.__version__} reads {SCHEMA_VERSION})",
        )
    unknown_attrs = sorted(set(f.attrs) - _KNOWN_ATTRS)
    if unknown_attrs:
        raise DatasetError(source, unknown_attrs[0], "unknown attribute for schema version 1")
    unknown = sorted(set(f.keys()) - set(ARRAY_FIELDS))
    if unknown:
        raise DatasetError(source, unknown[0], "unknown dataset for schema version 1")
    arrays: dict[str, np.ndarray | None] = {}
    for name in ARRAY_FIELDS:
        if name not in f:
            if name in OPTIONAL_FIELDS:
                arrays[name] = None
                continue
            raise DatasetError(source, name, "missing")
        node = f[name]
        if not isinstance(node, h5py.Dataset):
            raise DatasetError(source, name, f"expected an array, found an HDF5 {type(node).__name__}")
        if node.dtype.kind not in "fbiu":
            # Refuse compound/string/object/reference types before reading any data.
            raise DatasetError(source, name, f"unsupported HDF5 type {node.dtype}")
        _refuse_foreign_storage(node, name, source)
        arrays[name] = node[()]
    strings = {}
    for name in _STR_ATTRS:
        value = _attr(f, name, source)
        if not isinstance(value, str):
            raise DatasetError(source, name, f"expected a string attribute, got {value!r}")
        strings[name] = value
    seed = _attr(f, "seed", source)
    names = _json_attr(f, "agent_names", source)
    if not isinstance(names, list):
        raise DatasetError(source, "agent_names", f"expected a list of strings, got {names!r}")
    ref = _json_attr(f, "reference_returns", source)
    extra = _json_attr(f, "attrs", source)
    ds = MultiAgentDataset(
        **arrays,
        obs_dims=_int_tuple(_json_attr(f, "obs_dims", source), "obs_dims", source),
        act_dims=_int_tuple(_json_attr(f, "act_dims", source), "act_dims", source),
        agent_names=tuple(names),
        seed=seed,
        reference_returns=ref,
        attrs=extra,
        **strings,
    )
    for name in ("n_agents", "n_transitions"):
        stored = _attr(f, name, source)
        actual = getattr(ds, name) if ds.observations.ndim == 3 else None
        if actual is not None and (isinstance(stored, bool) or stored != actual):
            raise DatasetError(source, name, f"attribute says {stored}, observations have {actual}")
    return ds


def read_dataset(path: str | os.PathLike, *, limit: float | None = None) -> MultiAgentDataset:
    """Read and validate a dataset file.

    Every problem — missing file, truncated or non-HDF5 bytes, links or storage outside the
    file, schema violations, values beyond ``limit`` (default: schema.value_limit()) — raises
    DatasetError naming the file (and the field where there is one).
    """
    source = str(path)
    if Path(path).is_dir():
        raise DatasetError(source, None, "is a directory, not a dataset file")
    if not Path(path).is_file():
        raise DatasetError(source, None, "no such file")
    try:
        with h5py.File(path, "r") as f:
            ds = _read_open(f, source)
    except DatasetError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as e:
        # h5py reports damaged files as OSError (bad signature, truncation) or, deeper in a
        # read, as KeyError/ValueError/RuntimeError; all mean "this file is not usable".
        raise DatasetError(source, None, f"cannot read HDF5 file (corrupt or truncated?): {e}") from e
    ds.validate(source, limit=limit)
    return ds
