"""Every shipped YAML config loads strictly into its dataclass."""

from pathlib import Path

import pytest

from scoredec.config import ConfigError, load_config
from scoredec.pipeline import TrainConfig

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads(path):
    cfg = load_config(TrainConfig, path)
    assert cfg.method


def test_a_misspelt_key_is_an_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("policy:\n  betta: 0.1\n")
    with pytest.raises(ConfigError, match="policy.betta"):
        load_config(TrainConfig, bad)


def test_cpu_yaml_is_the_cpu_presets_omsd_cell_on_expert_data():
    """configs/cpu.yaml (README's MPE example) must not drift from the preset it copies."""
    from scoredec.methods import config_with
    from scoredec.suite.grid import Cell
    from scoredec.suite.presets import get_preset
    from scoredec.suite.run_cell import resolve_overrides

    shipped = load_config(TrainConfig, Path(__file__).parent.parent / "configs" / "cpu.yaml")
    preset = get_preset("cpu")
    cell = config_with(TrainConfig, resolve_overrides(preset, Cell("omsd", "spread", "expert", 0)),
                       method="omsd", seed=0)
    assert shipped == cell
    assert (shipped.behavior.steps, shipped.critic.steps, shipped.policy.steps) == (20_000, 4000, 16_000)
