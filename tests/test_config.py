"""Typed configs: strict dicts and YAML, generated CLI flags, overrides."""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import pytest

from scoredec.config import (
    ConfigError,
    FieldError,
    Interval,
    add_config_arguments,
    apply_arguments,
    config_from_dict,
    config_to_dict,
    load_config,
    param,
    save_config,
    validate_config,
)


@dataclass(frozen=True)
class Stage2:
    beta: float = param(0.1, "weight of the Q-gradient term")
    weighting: Literal["vds", "stable", "score"] = param("score", "score-term weighting w(t)")
    t_range: tuple[float, float] = param((0.02, 0.98), "range of diffusion time t")


@dataclass(frozen=True)
class Net:
    hidden: tuple[int, ...] = param((256, 256), "hidden layer widths")
    kind: str = param("resnet", "score network", choices=("resnet", "compact"))


@dataclass(frozen=True)
class Train:
    seed: int = param(0, "seed, set before any network is built")
    lr: float = param(3e-4, "learning rate (100% of base)")
    compile: bool = param(False, "torch.compile the networks")
    steps: Optional[int] = param(None, "number of steps; None means the paper's")
    out: Path = param(Path("runs/x"), "run directory")
    tags: list[str] = param(["a"], "free-form tags")
    weights: dict[str, float] = param({"q": 1.0}, "loss weights")
    stage2: Stage2 = param(Stage2(), "actor training")
    net: Net = param(Net, "network")

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def test_defaults_are_independent():
    a, b = Train(), Train()
    a.tags.append("z")
    assert b.tags == ["a"] and a.stage2 == b.stage2


def test_param_needs_help():
    with pytest.raises(TypeError, match="help"):
        param(1, "")


def test_dict_round_trip():
    cfg = Train(seed=3, steps=10, stage2=Stage2(beta=0.5), net=Net(hidden=(8,)))
    d = config_to_dict(cfg)
    assert d["stage2"]["t_range"] == [0.02, 0.98] and d["out"] == "runs/x"
    assert config_from_dict(Train, d) == cfg


def test_yaml_round_trip(tmp_path):
    cfg = Train(lr=1e-5, stage2=Stage2(weighting="vds", t_range=(0.02, 0.1)), tags=["x", "y"])
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Train, tmp_path / "c.yaml") == cfg


def test_yaml_exponent_without_dot_is_float(tmp_path):
    (tmp_path / "c.yaml").write_text("lr: 3e-4\nstage2:\n  beta: 1e-3\n")
    cfg = load_config(Train, tmp_path / "c.yaml")
    assert cfg.lr == 3e-4 and cfg.stage2.beta == 1e-3


def test_partial_and_empty_yaml(tmp_path):
    (tmp_path / "e.yaml").write_text("")
    assert load_config(Train, tmp_path / "e.yaml") == Train()
    (tmp_path / "p.yaml").write_text("stage2: {beta: 2}\n")
    assert load_config(Train, tmp_path / "p.yaml").stage2 == Stage2(beta=2.0)


def test_unknown_key_names_dotted_key_and_file(tmp_path):
    (tmp_path / "c.yaml").write_text("stage2:\n  betta: 0.3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*'stage2\.betta'"):
        load_config(Train, tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "data, key, expected",
    [
        ({"seed": 1.5}, "seed", "expected int"),
        ({"seed": True}, "seed", "expected int"),
        ({"lr": True}, "lr", "expected float"),
        ({"lr": "fast"}, "lr", "expected float"),
        ({"compile": 1}, "compile", "expected bool"),
        ({"steps": "10"}, "steps", "expected int | None"),
        ({"stage2": {"weighting": "other"}}, "stage2.weighting", "one of 'vds'"),
        ({"stage2": {"t_range": [0.1]}}, "stage2.t_range", r"tuple\[float, float\] \(2 items\)"),
        ({"stage2": {"t_range": [0.1, "x"]}}, r"stage2.t_range\[1\]", "expected float"),
        ({"net": {"hidden": [1, 2.5]}}, r"net.hidden\[1\]", "expected int"),
        ({"net": {"kind": "mlp"}}, "net.kind", "one of 'resnet', 'compact'"),
        ({"net": 3}, "net", "expected a mapping"),
        ({"weights": {"q": "x"}}, "weights.q", "expected float"),
    ],
)
def test_type_errors_name_key_type_and_value(data, key, expected):
    with pytest.raises(ConfigError, match=rf"f\.yaml: key '{key}': (expected )?{expected}"):
        config_from_dict(Train, data, where="f.yaml")


def test_accepted_conversions():
    cfg = config_from_dict(Train, {"lr": 1, "steps": None, "net": {"hidden": [4, 5, 6]}, "out": "o"})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.net.hidden == (4, 5, 6) and cfg.out == Path("o")


def test_post_init_error_becomes_config_error():
    with pytest.raises(ConfigError, match="lr must be positive"):
        config_from_dict(Train, {"lr": -1.0}, where="f.yaml")


def test_invalid_yaml_names_file(tmp_path):
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(Train, tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        load_config(Train, tmp_path / "missing.yaml")


def _parser():
    parser = argparse.ArgumentParser(prog="scoredec")
    add_config_arguments(parser, Train)
    return parser


def test_cli_help_lists_every_leaf_with_help_and_default():
    text = _parser().format_help()
    for flag in (
        "--seed",
        "--lr",
        "--compile",
        "--no-compile",
        "--stage2.beta",
        "--stage2.t_range",
        "--net.hidden",
        "--net.kind",
        "--tags",
        "--weights",
    ):
        assert flag in text
    assert "weight of the Q-gradient term (default: 0.1)" in text
    assert "(default: 256 256)" in text and "100% of base" in text


def test_cli_not_given_keeps_config():
    cfg = Train(seed=7)
    assert apply_arguments(cfg, _parser().parse_args([])) is cfg


def test_cli_overrides():
    args = _parser().parse_args(
        [
            "--stage2.beta",
            "0.3",
            "--compile",
            "--net.hidden",
            "64",
            "32",
            "--stage2.t_range",
            "0.02",
            "0.1",
            "--steps",
            "100",
            "--stage2.weighting",
            "vds",
            "--weights",
            "{q: 2, v: 1}",
            "--tags",
            "p",
            "q",
        ]
    )
    cfg = apply_arguments(Train(seed=5), args)
    assert cfg.seed == 5 and cfg.compile is True
    assert cfg.stage2 == Stage2(beta=0.3, weighting="vds", t_range=(0.02, 0.1))
    assert cfg.net.hidden == (64, 32) and cfg.steps == 100
    assert cfg.weights == {"q": 2.0, "v": 1.0} and cfg.tags == ["p", "q"]
    assert apply_arguments(Train(compile=True), _parser().parse_args(["--no-compile"])).compile is False
    assert apply_arguments(Train(steps=3), _parser().parse_args(["--steps", "none"])).steps is None


@pytest.mark.parametrize(
    "argv",
    [["--net.kind", "mlp"], ["--stage2.weighting", "x"], ["--seed", "1.5"], ["--stage2.t_range", "0.1"]],
)
def test_cli_rejects_bad_values(argv, capsys):
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert argv[0] in capsys.readouterr().err


def test_cli_post_init_checked():
    with pytest.raises(ConfigError, match="lr must be positive"):
        apply_arguments(Train(), _parser().parse_args(["--lr", "-1"]))


def test_cli_prefix():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Stage2, prefix="stage2.")
    cfg = apply_arguments(Stage2(), parser.parse_args(["--stage2.beta", "2"]), prefix="stage2.")
    assert cfg.beta == 2.0


def test_validate_config_checks_defaults():
    assert validate_config(Train()) == Train()

    @dataclass
    class Bad:
        steps: int = param("10", "a default of the wrong type")

    with pytest.raises(ConfigError, match="key 'steps': expected int"):
        validate_config(Bad())


# ----------------------------------------------------------------------------- bounds


@dataclass(frozen=True)
class Ranged:
    steps: int = param(10, "optimizer steps", bounds="[1, inf)")
    rate: float = param(0.5, "a rate", bounds="(0, 1]")
    shift: float = param(0.0, "any finite number", bounds="(-inf, inf)")
    order: Optional[tuple[int, ...]] = param(None, "agent order", bounds="[0, inf)")
    low: float = param(0.1, "lower end", bounds="(0, 1)")
    high: float = param(0.9, "upper end", bounds="(0, 1)")

    def __post_init__(self) -> None:
        if self.low >= self.high:
            raise FieldError("low", f"must be below high = {self.high}, got {self.low}")


@pytest.mark.parametrize("text, inside, outside", [
    ("[1, inf)", [1, 2, 10**9], [0, -1, math.inf, math.nan]),
    ("(0, 1]", [1e-12, 0.5, 1.0], [0.0, 1.0000001, math.nan, -math.inf]),
    ("(-inf, inf)", [-1e300, 0.0, 1e300], [math.inf, -math.inf, math.nan]),
    ("[0, 4294967295]", [0, 4294967295], [-1, 4294967296]),
])
def test_interval_membership(text, inside, outside):
    interval = Interval(text)
    assert all(v in interval for v in inside)
    assert not any(v in interval for v in outside)


@pytest.mark.parametrize("text", ["1, inf", "[1; 2]", "[a, 2]", "[2, 1]", ""])
def test_malformed_bounds_fail_at_declaration(text):
    with pytest.raises(TypeError, match="bounds"):
        param(1, "x", bounds=text)


@pytest.mark.parametrize("data, key, text", [
    ({"steps": 0}, "steps", "must be >= 1, got 0"),
    ({"rate": 0}, "rate", "must be in (0, 1], got 0.0"),
    ({"rate": math.nan}, "rate", "must be in (0, 1], got nan"),
    ({"shift": math.inf}, "shift", "must be a finite number, got inf"),
    ({"order": [0, -2]}, "order", "must be >= 0, got -2"),
    ({"low": 0.95}, "low", "must be below high = 0.9, got 0.95"),
])
def test_out_of_range_names_file_and_key(data, key, text):
    with pytest.raises(ConfigError) as info:
        config_from_dict(Ranged, data, where="c.yaml")
    assert str(info.value) == f"c.yaml: key '{key}': {text}"


def test_out_of_range_flags_name_the_key():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Ranged)
    with pytest.raises(ConfigError, match=r"^command line: key 'steps': must be >= 1, got -5$"):
        apply_arguments(Ranged(), parser.parse_args(["--steps", "-5"]))
    with pytest.raises(ConfigError, match=r"^command line: key 'low': must be below high"):
        apply_arguments(Ranged(), parser.parse_args(["--low", "0.95"]))
    assert apply_arguments(Ranged(), parser.parse_args(["--order", "none"])).order is None


def test_field_error_in_a_section_gets_the_dotted_key(tmp_path):
    @dataclass(frozen=True)
    class Outer:
        inner: Ranged = param(Ranged, "a section")

    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  low: 0.5\n  high: 0.4\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'inner\.low': must be below high = 0\.4"):
        load_config(Outer, path)


def test_invalid_yaml_error_is_one_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner: [1,\n")
    with pytest.raises(ConfigError) as info:
        load_config(Ranged, path)
    assert "\n" not in str(info.value) and "line 2, column 1" in str(info.value)


def _project_configs():
    from scoredec.baselines.iql_awr import IQLConfig
    from scoredec.baselines.macql import CQLConfig
    from scoredec.baselines.matd3bc import TD3BCConfig
    from scoredec.baselines.omar import OMARConfig
    from scoredec.experiments.bandit import BanditConfig
    from scoredec.pipeline import TrainConfig

    return [TrainConfig, IQLConfig, CQLConfig, TD3BCConfig, OMARConfig, BanditConfig]


def _numeric(tp) -> bool:
    """int or float, possibly Optional or the element type of a tuple."""
    if tp in (int, float):
        return True
    return any(_numeric(a) for a in typing.get_args(tp) if a is not Ellipsis)


def _leaves(cls, prefix=""):
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            yield from _leaves(tp, f"{prefix}{f.name}.")
        else:
            yield f"{cls.__name__}: {prefix}{f.name}", tp, f


@pytest.mark.parametrize("cls", _project_configs(), ids=lambda c: c.__name__)
def test_every_numeric_field_of_every_config_has_bounds(cls):
    missing = [name for name, tp, f in _leaves(cls) if _numeric(tp) and f.metadata.get("bounds") is None]
    assert not missing, f"numeric fields without bounds: {missing}"
    assert validate_config(cls()) == cls()   # the defaults are inside their own bounds
