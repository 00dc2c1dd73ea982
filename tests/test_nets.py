"""Stacked score networks against the naive per-agent float64 loop (tests/reference.py)."""

import pytest
import torch

from scoredec.behavior import BehaviorConfig, BehaviorModel
from scoredec.layout import AgentSpec
from scoredec.nets import ResNetScoreNet, parameter_count

from reference import reference_epsilon

SPECS = [
    AgentSpec((5,), (1,)),
    AgentSpec((5, 5), (1, 1)),
    AgentSpec((7, 3, 11), (2, 6, 1)),
    AgentSpec((4, 9, 4, 13), (3, 1, 2, 2)),
]


def small_cfg(arch, **changes):
    """A small score net in the form the fused kernels implement (eps prediction, Mish in the
    compact net, time features at scale 30, no weight average); changes: other fields."""
    kernel_form = {"prediction": "eps", "activation": "mish" if arch == "compact" else "relu",
                   "fourier_scale": 30.0, "ema": 0.0}
    return BehaviorConfig(arch=arch, hidden=24 if arch == "resnet" else 32, blocks=2,
                          compact_layers=2, dropout=0.1, **{**kernel_form, **changes})


def random_batch(spec, batch, gen, dtype=torch.float64):
    obs = torch.randn(batch, spec.n_agents, spec.obs_max, generator=gen, dtype=dtype)
    act = torch.rand(batch, spec.n_agents, spec.act_max, generator=gen, dtype=dtype) * 2 - 1
    return obs * spec.obs_mask().to(dtype), act * spec.act_mask().to(dtype)


@pytest.mark.parametrize("arch", ["resnet", "compact"])
@pytest.mark.parametrize("mode", ["sequential", "marginal", "joint"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"n{s.n_agents}")
@pytest.mark.parametrize("batch", [1, 3, 113])
def test_stacked_epsilon_matches_per_agent_loop(arch, mode, spec, batch):
    gen = torch.Generator().manual_seed(batch * 7 + spec.n_agents)
    order = tuple(reversed(range(spec.n_agents))) if mode == "sequential" else None
    torch.manual_seed(0)
    model = BehaviorModel(spec, mode, small_cfg(arch), order=order).double().eval()
    obs, act = random_batch(spec, batch, gen)
    lay = model.layout
    x = torch.randn(lay.models, batch, lay.x_dim, generator=gen, dtype=torch.float64)
    t = torch.rand(lay.models, batch, generator=gen, dtype=torch.float64) * 0.999 + 1e-3
    # Garbage in the padded action columns must not leak into any model.
    x_padded = x + (~lay.x_mask()[:, None, :]).double() * 100.0
    got = model.epsilon(x_padded, t, obs, act) * lay.x_mask()[:, None, :]
    want = reference_epsilon(model, x, t, obs, act)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    # float32 stack against the float64 reference, within float32 error.
    got32 = model.float().epsilon(x_padded.float(), t.float(), obs.float(), act.float())
    torch.testing.assert_close((got32 * lay.x_mask()[:, None, :]).double(), want, rtol=1e-4,
                               atol=1e-4)


def test_masked_inputs_get_no_gradient():
    spec = SPECS[2]
    model = BehaviorModel(spec, "sequential", small_cfg("compact"))
    obs, act = random_batch(spec, 16, torch.Generator().manual_seed(0), torch.float32)
    model.loss(obs, act).backward()
    first = model.net.mlp.layers[0]
    inactive = ~first.in_mask[:, :, 0].bool()
    assert first.weight.grad[inactive].abs().max() == 0
    assert first.weight.grad[~inactive].abs().max() > 0


def test_resnet_has_the_reference_size():
    net = ResNetScoreNet(models=3, x_dim=2, cond_dim=18)
    per_model = parameter_count(net)
    # Two 512x2048 and two 2048x512 matrices dominate: about 4.3M (DESIGN.md 2).
    assert 4.2e6 < per_model < 4.35e6, per_model


def test_compact_is_small():
    from scoredec.nets import CompactScoreNet
    assert 1.3e5 < parameter_count(CompactScoreNet(1, x_dim=2, cond_dim=18)) < 1.7e5


def test_mish_equals_torch_mish():
    import torch.nn.functional as F

    from scoredec.nets import mish
    x = torch.cat([torch.linspace(-60, 60, 20001, dtype=torch.float64), torch.randn(1000, dtype=torch.float64)])
    torch.testing.assert_close(mish(x), F.mish(x), rtol=1e-12, atol=1e-14)
    xr = x.clone().requires_grad_(True)
    xs = x.clone().requires_grad_(True)
    mish(xr).sum().backward()
    F.mish(xs).sum().backward()
    torch.testing.assert_close(xr.grad, xs.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_mish_is_finite_and_close_in_low_precision(dtype):
    import torch.nn.functional as F

    from scoredec.nets import mish
    x = torch.linspace(-60, 60, 4001, dtype=torch.float64)
    got = mish(x.to(dtype))
    assert torch.isfinite(got).all()
    # within a few ulps of the float64 value rounded to the dtype
    torch.testing.assert_close(got.double(), F.mish(x).to(dtype).double(),
                               rtol=4 * torch.finfo(dtype).eps, atol=4 * torch.finfo(dtype).eps)
