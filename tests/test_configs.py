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
