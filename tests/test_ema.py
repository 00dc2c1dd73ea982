"""The weight average of stage 1 (scoredec.training.EMA) and old products' configs."""

import torch
from torch import nn

from scoredec.pipeline import TrainConfig, saved_train_config
from scoredec.config import config_from_dict, config_to_dict
from scoredec.training import EMA


def test_ema_follows_its_recursion_with_warm_up():
    module = nn.Linear(1, 1, bias=False)
    values = [0.5, -1.0, 2.0, 3.0, 0.25]
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema = EMA(module, decay=0.9)
    want = 1.0
    for n, v in enumerate(values):
        with torch.no_grad():
            module.weight.fill_(v)
        ema.update(module)
        d = min(0.9, (1 + n) / (10 + n))   # 0.1, 0.18, 0.25, ...: the early weights count less
        want = d * want + (1 - d) * v
        assert abs(float(ema.shadow[0]) - want) < 1e-6
    ema.copy_to(module)
    assert abs(float(module.weight) - want) < 1e-6
    assert int(ema.updates) == len(values)


def test_ema_resumes_from_its_state_dict():
    module = nn.Linear(3, 2)
    ema = EMA(module, decay=0.99)
    for _ in range(4):
        with torch.no_grad():
            for p in module.parameters():
                p.add_(1.0)
        ema.update(module)
    copy = EMA(nn.Linear(3, 2), decay=0.99)
    copy.load_state_dict(ema.state_dict())
    ema.update(module)
    copy.update(module)
    for a, b in zip(ema.shadow, copy.shadow):
        assert torch.equal(a, b)


def test_products_saved_before_the_recipe_fields_rebuild_as_trained():
    saved = config_to_dict(TrainConfig())
    for key in ("prediction", "activation", "fourier_scale", "ema", "cond_noise"):
        del saved["behavior"][key]
    saved["behavior"]["arch"] = "compact"
    cfg = config_from_dict(TrainConfig, saved_train_config(saved))
    b = cfg.behavior
    assert (b.prediction, b.activation, b.fourier_scale, b.ema, b.cond_noise) == ("eps", "mish", 30.0, 0.0, 0.0)
    today = config_from_dict(TrainConfig, saved_train_config(config_to_dict(TrainConfig())))
    assert today == TrainConfig()
