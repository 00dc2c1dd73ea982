"""Captured training steps (scoredec/captured.py) against the eager stage step: the same noise
draws, the same losses and final weights within float32 reassociation, on the bandit data.

torch.compile runs on the CPU (one compile per stage, tiny nets, 20 steps); CUDA-graph capture
and the CUDA compile runs skip without a GPU."""

import copy

import pytest
import torch

from scoredec.actors import Actors
from scoredec.behavior import BehaviorConfig, BehaviorModel, BehaviorStage
from scoredec.captured import CapturedStep
from scoredec.critic import CriticConfig, IQLCritic
from scoredec.data.hdf5 import write_dataset
from scoredec.data.tensors import OfflineData
from scoredec.envs import bandit
from scoredec.layout import AgentSpec
from scoredec.pipeline import TrainConfig, train
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage, critic_action_gradient

STEPS = 20
BATCH = 32
CUDA = torch.cuda.is_available()
# (device, capture): torch.compile on every device, graph capture on CUDA only.
CASES = [pytest.param("cpu", "compile", id="cpu-compile"),
         pytest.param("cuda", "compile", id="cuda-compile",
                      marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CUDA")]),
         pytest.param("cuda", "graph", id="cuda-graph",
                      marks=[pytest.mark.gpu, pytest.mark.skipif(not CUDA, reason="needs CUDA")])]


def bandit_data(device) -> OfflineData:
    return OfflineData.from_dataset(bandit.make_dataset(512, seed=0), device=device)


def behavior_cfg() -> BehaviorConfig:
    # dropout 0: dropout masks come from the global RNG inside the captured region (same
    # distribution, different draws), so parity is checked without them.
    return BehaviorConfig(arch="compact", hidden=16, compact_layers=2, dropout=0.0, lr=1e-3,
                          lr_end=1e-4, weight_decay=0.01, batch_size=BATCH, steps=STEPS)


def run(stage, data, seed=5):
    """Losses of STEPS steps and the generator's final state."""
    gen = torch.Generator(device=data.device).manual_seed(seed)
    losses = []
    for module in stage.modules.values():
        module.train()
    for _ in range(STEPS):
        metrics = stage.step(data.sample(stage.batch_size, gen), gen)
        losses.append(torch.stack([metrics[k] for k in sorted(metrics)]).cpu())
    return torch.stack(losses), gen.get_state()


def assert_same_run(eager, captured, data, modules):
    losses_e, gen_e = run(eager, data)
    losses_c, gen_c = run(captured, data)
    assert torch.equal(gen_e, gen_c), "the captured step consumed the generator differently"
    torch.testing.assert_close(losses_c, losses_e, rtol=1e-4, atol=1e-5)
    for name, (a, b) in modules.items():
        for (key, pa), pb in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(pb, pa, rtol=1e-4, atol=1e-5, msg=f"{name}.{key}")
    # Checkpoints see the scheduler's float lr in every mode.
    for opt in captured.optimizers.values():
        assert all(isinstance(g["lr"], float) for g in opt.param_groups)
        torch.testing.assert_close(opt.param_groups[0]["lr"],
                                   next(iter(eager.optimizers.values())).param_groups[0]["lr"])


@pytest.mark.parametrize("device,capture", CASES)
def test_captured_stage1_matches_eager(device, capture):
    data = bandit_data(device)
    torch.manual_seed(0)
    model = BehaviorModel(data.spec, "sequential", behavior_cfg()).to(device)
    twin = copy.deepcopy(model)
    eager = BehaviorStage(model, behavior_cfg())
    captured = CapturedStep(BehaviorStage(twin, behavior_cfg()), capture)
    assert_same_run(eager, captured, data, {"behavior": (model, twin)})


@pytest.mark.parametrize("device,capture", CASES)
def test_captured_stage2_matches_eager(device, capture):
    data = bandit_data(device)
    torch.manual_seed(1)
    behavior = BehaviorModel(data.spec, "sequential", behavior_cfg()).to(device)
    critic = IQLCritic(data.spec, "joint", CriticConfig(hidden=16, layers=2)).to(device)
    with torch.no_grad():  # targets different from the online heads, as after training
        for p in critic.q_target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    actors = Actors(data.spec, hidden=16, layers=2).to(device)
    twin = copy.deepcopy(actors)
    cfg = PolicyConfig(beta=0.5, lr=1e-3, lr_end=1e-4, batch_size=BATCH, steps=STEPS)
    eager = PolicyStage(PolicyObjective("omsd", actors, cfg, behavior, critic))
    captured = CapturedStep(PolicyStage(PolicyObjective("omsd", twin, cfg, behavior, critic)), capture)
    assert_same_run(eager, captured, data, {"actors": (actors, twin)})


@pytest.mark.parametrize("scope", ["joint", "local"])
def test_func_action_gradient_equals_autograd(scope):
    spec = AgentSpec((4, 6, 3), (2, 1, 3))
    torch.manual_seed(2)
    critic = IQLCritic(spec, scope, CriticConfig(hidden=8, layers=2))
    obs = torch.randn(7, 3, spec.obs_max) * spec.obs_mask()
    act = (torch.rand(7, 3, spec.act_max) * 2 - 1) * spec.act_mask()
    g_ref, q_ref = critic.action_gradient(obs, act)
    with torch.no_grad():  # as PolicyObjective calls it
        g, q = critic_action_gradient(critic, obs, act)
    assert torch.equal(g, g_ref) and torch.equal(q, q_ref)


def test_graph_capture_without_cuda_is_refused(tmp_path):
    if CUDA:
        pytest.skip("this machine has CUDA")
    path = tmp_path / "bandit.h5"
    write_dataset(path, bandit.make_dataset(64, seed=0))
    cfg = TrainConfig(device="cpu", capture="graph", behavior=BehaviorConfig(
        arch="compact", hidden=8, compact_layers=1, batch_size=8, steps=2))
    with pytest.raises(RuntimeError, match="capture='graph'.*cpu"):
        train(path, cfg, tmp_path / "run", stages=("behavior",), progress=False)


def test_bad_capture_arguments():
    model = BehaviorModel(AgentSpec((5, 5), (1, 1)), "sequential", behavior_cfg())
    with pytest.raises(ValueError, match="capture must be one of"):
        CapturedStep(BehaviorStage(model, behavior_cfg()), "jit")
    with pytest.raises(ValueError, match="mode='reduce-overhead'"):
        CapturedStep(BehaviorStage(model, behavior_cfg()), "none", mode="reduce-overhead")
