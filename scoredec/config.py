"""Typed dataclass configs: one name, one default and one help text per parameter.

A config is a (nested) dataclass whose fields are declared with :func:`param`. The same
declaration drives YAML files (:func:`load_config`, :func:`save_config`), strict validation of
plain dicts (:func:`config_from_dict`) and command-line flags (:func:`add_config_arguments`,
:func:`apply_arguments`), so a parameter cannot drift between the three.

Example::

    @dataclass(frozen=True)
    class Stage2:
        beta: float = param(0.1, "weight of the Q-gradient term against the score term")

    @dataclass(frozen=True)
    class Train:
        seed: int = param(0, "seed for every generator; set before any network is built")
        stage2: Stage2 = param(Stage2(), "actor training")

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Train)          # --seed, --stage2.beta
    cfg = apply_arguments(load_config(Train, "train.yaml"), parser.parse_args())
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from scoredec.io import atomic_write_text

__all__ = [
    "ConfigError",
    "FieldError",
    "Interval",
    "param",
    "config_from_dict",
    "config_to_dict",
    "validate_config",
    "load_config",
    "save_config",
    "add_config_arguments",
    "apply_arguments",
]


class ConfigError(ValueError):
    """A config value or file is invalid; the message names the dotted key and the file."""


class FieldError(ValueError):
    """Raised by a config's ``__post_init__`` when fields disagree (``t_min >= t_max``): names
    the field; loading adds the section's dotted prefix and the file."""

    def __init__(self, field: str, text: str) -> None:
        super().__init__(f"{field} {text}")   # read on its own, e.g. when built in code
        self.field, self.text = field, text


_MISSING = dataclasses.MISSING

SEED_BOUNDS = "[0, 4294967295]"
"""The bounds of every seed field: what numpy's and torch's generators both take (uint32)."""


class Interval:
    """The allowed range of a numeric field, written as in mathematics: ``"[1, inf)"``,
    ``"(0, 1]"``, ``"(-inf, inf)"`` (any finite number). NaN is never inside; infinity only
    at a closed infinite end, which no field uses."""

    _FORM = re.compile(r"\s*([\[(])\s*([^,\s]+)\s*,\s*([^,\s]+)\s*([\])])\s*")

    def __init__(self, text: str) -> None:
        m = self._FORM.fullmatch(text)
        if not m:
            raise TypeError(f"bounds must look like '[1, inf)' or '(0, 1]', got {text!r}")
        self.low_closed, self.high_closed = m.group(1) == "[", m.group(4) == "]"
        try:
            self.low, self.high = float(m.group(2)), float(m.group(3))
        except ValueError:
            raise TypeError(f"bounds ends must be numbers or inf, got {text!r}") from None
        if not self.low <= self.high:
            raise TypeError(f"bounds {text!r} are empty")
        self.text = f"{m.group(1)}{m.group(2)}, {m.group(3)}{m.group(4)}"

    def __contains__(self, value: float) -> bool:
        low_ok = value >= self.low if self.low_closed else value > self.low
        high_ok = value <= self.high if self.high_closed else value < self.high
        return low_ok and high_ok   # False for NaN: every comparison with NaN is False

    def describe(self) -> str:
        """'>= 1', '> 0', 'a finite number' or 'in (0, 1]': what an error message asks for."""
        low_inf, high_inf = math.isinf(self.low), math.isinf(self.high)
        if low_inf and high_inf:
            return "a finite number"
        if high_inf:
            return f"{'>=' if self.low_closed else '>'} {_number(self.low)}"
        if low_inf:
            return f"{'<=' if self.high_closed else '<'} {_number(self.high)}"
        return f"in {self.text}"

    def __repr__(self) -> str:
        return f"Interval({self.text!r})"


def _number(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def param(default: Any = _MISSING, help: str = "", *, choices: tuple | None = None,
          bounds: str | None = None) -> Any:
    """Declare a config field with its default, its help text and optional allowed values.

    choices: the allowed values; bounds: the allowed range of a numeric field (each element
    of a tuple field), e.g. ``"[1, inf)"`` or ``"(0, 1]"`` (see :class:`Interval`). Every
    int and float field has bounds (tests/test_config.py checks it), so a value out of range
    is a ConfigError naming its key wherever it comes from (YAML, dict, command line).

    Mutable defaults (list, dict, set, dataclass instances) are copied per instance through a
    ``default_factory``; a dataclass *class* as default means "its default instance".
    """
    if not help:
        raise TypeError("param() needs a help text: it is the --help line and the YAML's documentation")
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None,
                "bounds": Interval(bounds) if bounds is not None else None}
    if isinstance(default, type) and dataclasses.is_dataclass(default):
        return dataclasses.field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict, set)) or dataclasses.is_dataclass(default):
        proto = default
        return dataclasses.field(default_factory=lambda: copy.deepcopy(proto), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ----------------------------------------------------------------------------- type checks


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints resolves string annotations (from __future__ import annotations).
    try:
        return typing.get_type_hints(cls)
    except NameError as e:
        raise TypeError(f"cannot resolve the field types of {cls.__name__}: {e}") from e


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if _is_union(tp):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = typing.get_args(tp)
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    """Internal: the value at dotted ``key`` does not fit its type; becomes a ConfigError."""

    def __init__(self, key: str, text: str) -> None:
        super().__init__(text)
        self.key = key


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Return ``value`` converted to ``tp`` (lists to tuples, int to float), or raise _Mismatch."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)

    if _is_union(tp):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1 and value is not None:
            # Optional[X]: X's own error (with the inner key) is the more precise one.
            try:
                return _coerce(value, members[0], key, where)
            except _Mismatch as e:
                if e.key != key:
                    raise
        for a in members:
            try:
                return _coerce(value, a, key, where)
            except (_Mismatch, ConfigError):
                continue
        raise _Mismatch(key, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        # type(...) is compared too: True == 1 must not satisfy Literal[1].
        for a in args:
            if value == a and type(value) is type(a):
                return value
        raise _Mismatch(key, f"expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch(key, f"expected None, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(key, f"expected bool, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch(key, f"expected int, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch(key, f"expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(key, f"expected str, got {value!r}")
    if tp is Path or (isinstance(tp, type) and issubclass(tp, os.PathLike)):
        if isinstance(value, (str, os.PathLike)):
            return Path(value)
        raise _Mismatch(key, f"expected a path (str), got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(key, f"expected {_type_name(tp)}, got {value!r}")
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _Mismatch(key, f"expected {_type_name(tp)} ({len(args)} items), got {value!r}")
            items = [_coerce(v, a, f"{key}[{i}]", where) for i, (v, a) in enumerate(zip(value, args))]
        else:
            elem = args[0] if args else Any
            items = [_coerce(v, elem, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(key, f"expected {_type_name(tp)}, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            _coerce(k, kt, f"{key}.{k}", where): _coerce(v, vt, f"{key}.{k}", where)
            for k, v in value.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return _from_dict(tp, value, where=where, prefix=f"{key}.")
        raise _Mismatch(key, f"expected a mapping for section {tp.__name__}, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch(key, f"expected {_type_name(tp)}, got {value!r}")
    raise TypeError(f"config field {key!r} has unsupported type {tp!r}")


def _check(value: Any, field: dataclasses.Field, tp: Any, key: str, where: str) -> Any:
    try:
        out = _coerce(value, tp, key, where)
    except _Mismatch as e:
        raise ConfigError(_msg(where, e.key, str(e))) from None
    choices = field.metadata.get("choices")
    if choices is not None and out is not None:
        # For a tuple or list field the choices constrain each element (--agents a b).
        items = out if isinstance(out, (tuple, list)) else (out,)
        for item in items:
            if item not in choices:
                allowed = ", ".join(map(repr, choices))
                raise ConfigError(_msg(where, key, f"expected one of {allowed}, got {item!r}"))
    bounds = field.metadata.get("bounds")
    if bounds is not None and out is not None:
        items = out if isinstance(out, (tuple, list)) else (out,)
        for item in items:
            if item is not None and item not in bounds:
                raise ConfigError(_msg(where, key, f"must be {bounds.describe()}, got {item!r}"))
    return out


def _msg(where: str, key: str, text: str) -> str:
    return f"{where}: key '{key}': {text}" if where else f"key '{key}': {text}"


# ----------------------------------------------------------------------------- dicts


def _from_dict(cls: type, data: Any, *, where: str, prefix: str) -> Any:
    section = prefix[:-1] if prefix else "<top level>"
    if not isinstance(data, dict):
        raise ConfigError(_msg(where, section, f"expected a mapping, got {data!r}"))
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        names = ", ".join(f"'{prefix}{k}'" for k in unknown)
        known = ", ".join(fields)
        head = f"{where}: " if where else ""
        raise ConfigError(f"{head}unknown key {names} (known keys of {cls.__name__}: {known})")
    hints = _hints(cls)
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                raise ConfigError(_msg(where, key, "missing (it has no default)"))
            continue
        kwargs[name] = _check(data[name], f, hints[name], key, where)
    try:
        return cls(**kwargs)
    except FieldError as e:
        raise ConfigError(_msg(where, f"{prefix}{e.field}", e.text)) from None
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        # __post_init__ checks between fields; keep the file and section in the message.
        raise ConfigError(_msg(where, section, str(e))) from e


def config_from_dict(cls: type, data: dict, *, where: str = "") -> Any:
    """Build ``cls`` from a plain dict, strictly.

    Unknown keys, wrong types and values outside ``choices`` raise :class:`ConfigError` naming
    the dotted key (``stage2.beta``) and ``where`` (usually the file). Missing keys take their
    defaults. int is accepted for float; bool is not accepted for int or float; lists are
    accepted for tuple fields.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass")
    return _from_dict(cls, data, where=where, prefix="")


def validate_config(cfg: Any, *, where: str = "") -> Any:
    """Re-check a config instance (e.g. the defaults of a class: ``validate_config(Train())``)
    with the same rules as :func:`config_from_dict`; returns the normalized instance."""
    return config_from_dict(type(cfg), config_to_dict(cfg), where=where)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def config_to_dict(cfg: Any) -> dict:
    """Plain dict of ``cfg`` for YAML/JSON: nested sections as dicts, tuples as lists, paths as str."""
    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"{cfg!r} is not a dataclass instance")
    return _plain(cfg)


# ----------------------------------------------------------------------------- YAML files


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``3e-4`` as a float.

    PyYAML implements YAML 1.1, where a float needs a dot (``3.0e-4``); plain ``3e-4`` would
    load as the string '3e-4' and then fail the type check, a classic ML-config trap.
    """


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its own text spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or " ".join(str(e).split())
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def load_config(cls: type, path: str | os.PathLike) -> Any:
    """Read a YAML file into ``cls``; every error names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror or e}") from e
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_problem(e)}") from e
    if data is None:
        data = {}
    return config_from_dict(cls, data, where=str(path))


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write ``cfg`` as YAML (fields in declaration order), atomically."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    atomic_write_text(path, text)


# ----------------------------------------------------------------------------- command line


class _NoneValue:
    """The parsed value of ``none`` for an Optional flag (argparse's None means 'not given')."""

    def __repr__(self) -> str:
        return "none"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NoneValue)

    def __hash__(self) -> int:
        return 0


_NONE = _NoneValue()


def _scalar_parser(tp: Any, optional: bool):
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "null"):
            return _NONE
        if tp is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
        if tp in (int, float, str, Path):
            try:
                return tp(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected {tp.__name__}, got {text!r}") from None
        # Anything else (dicts, nested lists, Any) is given as a YAML/JSON literal.
        try:
            return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.YAMLError as e:
            raise argparse.ArgumentTypeError(f"not a YAML/JSON value: {text!r} ({e})") from None

    parse.__name__ = _type_name(tp)  # argparse names the type in its error messages
    return parse


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) == 1:
            return args[0], optional
        return Union[tuple(args)], optional  # type: ignore[return-value]
    return tp, False


def _flag_kwargs(tp: Any, field: dataclasses.Field) -> dict[str, Any]:
    base, optional = _strip_optional(tp)
    origin = typing.get_origin(base)
    args = typing.get_args(base)
    choices = field.metadata.get("choices")
    kw: dict[str, Any] = {}
    if base is bool and not optional:
        kw["action"] = argparse.BooleanOptionalAction
        return kw
    if origin is Literal:
        choices = args if choices is None else choices
        elem = type(args[0])
        kw["type"] = _scalar_parser(elem, optional)
    elif origin in (tuple, list) and args:
        homogeneous = origin is list or (len(args) == 2 and args[1] is Ellipsis)
        elem = args[0]
        elem_base, _ = _strip_optional(elem)
        if typing.get_origin(elem_base) is Literal:
            choices = typing.get_args(elem_base) if choices is None else choices
            elem_base = type(typing.get_args(elem_base)[0])
        if elem_base in (bool, int, float, str, Path) and (homogeneous or len(set(args)) == 1):
            kw["type"] = _scalar_parser(elem_base, optional or _strip_optional(elem)[1])
            kw["nargs"] = "+" if homogeneous else len(args)
        else:
            kw["type"] = _scalar_parser(Any, optional)
    else:
        kw["type"] = _scalar_parser(base, optional)
    if choices is not None:
        kw["choices"] = list(choices) + ([_NONE] if optional else [])
        kw["metavar"] = "{" + ",".join(str(c) for c in kw["choices"]) + "}"
    else:
        # Name the expected type instead of argparse's upper-cased dest ("STAGE2.BETA").
        kw["metavar"] = kw["type"].__name__.upper() + ("|NONE" if optional else "")
    return kw


def _default_text(field: dataclasses.Field, defaults: Any = None) -> str:
    if defaults is not None:   # the enclosing config's own default for this section
        value = getattr(defaults, field.name)
    elif field.default is not _MISSING:
        value = field.default
    elif field.default_factory is not _MISSING:
        value = field.default_factory()
    else:
        return "required"
    value = _plain(value)
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else "empty"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


def _section_type(tp: Any) -> type | None:
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str = "",
                         defaults: Any = None) -> None:
    """Add one flag per leaf field of ``cls``: ``--name``, ``--section.name`` for nested ones.

    Help text is the field's help plus its default; ``choices`` and Literal types are enforced
    by argparse; bools are ``--flag/--no-flag``; tuples and lists take several values
    (``--hidden 256 256``); Optional fields accept ``none``; other types take a YAML/JSON
    literal. Every flag's argparse default is None, meaning "not given", so that
    :func:`apply_arguments` only overrides what the user typed. The defaults shown are those
    of ``defaults`` (an instance of ``cls``; default: ``cls()``), so a section whose parent
    gives it other defaults (``param(BehaviorConfig(hidden=128), ...)``) shows those.
    """
    hints = _hints(cls)
    if defaults is None:
        try:
            defaults = cls()
        except (TypeError, ValueError):   # a field without a default: show the fields' own
            defaults = None
    group = parser.add_argument_group(f"{prefix[:-1]} ({cls.__name__})") if prefix else parser
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        section = _section_type(tp)
        if section is not None:
            add_config_arguments(parser, section, prefix=f"{key}.",
                                 defaults=None if defaults is None else getattr(defaults, f.name))
            continue
        kw = _flag_kwargs(tp, f)
        help_text = f.metadata.get("help", "")
        if "(default" not in help_text:   # a help that explains its own default keeps it
            help_text = f"{help_text} (default: {_default_text(f, defaults)})"
        help_text = help_text.replace("%", "%%")
        group.add_argument(f"--{key}", dest=key, default=None, help=help_text, **kw)


def apply_arguments(cfg: Any, namespace: argparse.Namespace, prefix: str = "") -> Any:
    """Return a copy of ``cfg`` with every flag the user gave applied, type-checked.

    Flags left at None (not given) keep the value from ``cfg``; nested sections are replaced
    with :func:`dataclasses.replace`, so ``__post_init__`` checks run again.
    """
    hints = _hints(type(cfg))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        current = getattr(cfg, f.name)
        if _section_type(tp) is not None and dataclasses.is_dataclass(current):
            new = apply_arguments(current, namespace, prefix=f"{key}.")
            if new is not current:
                changes[f.name] = new
            continue
        given = getattr(namespace, key, None)
        if given is None:
            continue
        if given == _NONE or (isinstance(given, list) and given == [_NONE] and _strip_optional(tp)[1]):
            given = None
        elif isinstance(given, list):
            given = [None if g == _NONE else g for g in given]
        changes[f.name] = _check(given, f, tp, key, where="command line")
    if not changes:
        return cfg
    try:
        return dataclasses.replace(cfg, **changes)
    except FieldError as e:
        raise ConfigError(_msg("command line", f"{prefix}{e.field}", e.text)) from None
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(_msg("command line", prefix[:-1] or "<top level>", str(e))) from e
