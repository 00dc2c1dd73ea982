"""Typed configs: strict dicts and YAML, generated CLI flags, overrides."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import pytest

from scoredec.config import (
    ConfigError,
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
