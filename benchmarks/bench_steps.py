"""Whole training steps, every variant side by side in one run (issue 5 part 3, DESIGN.md 4).

    .venv/bin/python -m pytest benchmarks/bench_steps.py --benchmark-json=bench_steps.json
    .venv/bin/python benchmarks/results_md.py bench_steps.json

stage1_step: one behaviour step, all n score networks: noise draws, noising + time features,
  denoising loss, backward, AdamW update, cosine lr (BehaviorStage.step).
stage2_step: one OMSD actor step: actions of all actors, sequential score evaluation through the
  fused op, the critic's action gradient, the losses, backward, Adam update, cosine lr
  (PolicyStage.step).

Variants: per-agent-loop (a naive reference: separate networks and optimizers per agent and a
Python loop over agents, DESIGN.md 1.5 literally), eager (the stacked stage step, the package's
reference path), compile (scoredec.captured.CapturedStep with torch.compile), compile-reduce-
overhead (its mode="reduce-overhead", cudagraph trees), graph (CapturedStep capture="graph": one
CUDA graph per step); reduce-overhead and graph run on a GPU only. Sizes: MPE spread widths (obs
18, action 5), n = 3 and 6 agents, batch per agent 64/512/4096 on a GPU (64/512 on the CPU);
compact score net (width 256, 3 layers) and resnet (H = 512, 2 blocks; H = 128 on the CPU, where
the full net makes one step take seconds); critic 256x2, actors 256x2, float32. Every variant
times step(batch, generator) on one fixed batch (batch sampling is outside, noise drawing inside)
and ends each round with torch.cuda.synchronize() on a GPU. flops counts the matmuls only.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from benchutil import DEVICE, sync, versions

from scoredec.actors import Actors
from scoredec.behavior import BehaviorConfig, BehaviorModel, BehaviorStage
from scoredec.captured import CapturedStep
from scoredec.critic import CriticConfig, IQLCritic
from scoredec.data.tensors import Batch
from scoredec.layout import AgentSpec
from scoredec.nets import StackedLinear, StackedMLP, make_score_net
from scoredec.training import EMA
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage

GPU = DEVICE.type == "cuda"
# SCOREDEC_BENCH_QUICK=1 (scoredec bench --quick): n = 3 and batch 512 (64 on the CPU) only.
QUICK = os.environ.get("SCOREDEC_BENCH_QUICK", "") not in ("", "0")
AGENTS = (3,) if QUICK else (3, 6)
BATCHES = ((512,) if QUICK else (64, 512, 4096)) if GPU else ((64,) if QUICK else (64, 512))
ARCHS = ("compact", "resnet")
OBS_DIM, ACT_DIM = 18, 5
HIDDEN = {"compact": 256, "resnet": 512 if GPU else 128}
VARIANTS = ("per-agent-loop", "eager", "compile", "compile-reduce-overhead", "graph")
STEPS = 1_000_000  # cosine horizon: the lr barely moves while timing


def behavior_cfg(arch: str, batch: int) -> BehaviorConfig:
    return BehaviorConfig(arch=arch, hidden=HIDDEN[arch], blocks=2, compact_layers=3,
                          dropout=0.1 if arch == "resnet" else 0.0, batch_size=batch, steps=STEPS)


def random_batch(spec: AgentSpec, batch: int, gen: torch.Generator) -> Batch:
    obs = torch.randn(batch, spec.n_agents, spec.obs_max, generator=gen)
    act = torch.rand(batch, spec.n_agents, spec.act_max, generator=gen) * 2 - 1
    return Batch(*(x.to(DEVICE) for x in (obs, act, torch.randn(batch, spec.n_agents, generator=gen), obs,
                                          torch.zeros(batch))))


def matmul_flops(module: torch.nn.Module, rows: int) -> int:
    """2 x rows x weights of every stacked linear layer: one forward pass of `rows` rows per model."""
    return 2 * rows * sum(m.weight.numel() for m in module.modules() if isinstance(m, StackedLinear))


# ----------------------------------------------------------------------------- naive references

class PerAgentStage1:
    """Stage 1 as reference code writes it: one network, one AdamW, one schedule and one weight
    average per agent, each agent's loss (the config's prediction target), backward and update
    in turn."""

    def __init__(self, model: BehaviorModel, cfg: BehaviorConfig):
        lay = self.layout = model.layout
        self.cfg, self.vp, self.mask = cfg, model.vp, model.x_mask
        self.nets = [make_score_net(cfg.arch, 1, lay.x_dim, lay.cond_dim, lay.in_mask()[k:k + 1],
                                    hidden=cfg.hidden, blocks=cfg.blocks, dropout=cfg.dropout,
                                    compact_layers=cfg.compact_layers, activation=cfg.activation,
                                    prediction=cfg.prediction, fourier_scale=cfg.fourier_scale,
                                    sigma_data=cfg.sigma_data).to(DEVICE) for k in range(lay.models)]
        self.opts = [torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                     for net in self.nets]
        self.emas = [EMA(net, cfg.ema) for net in self.nets] if cfg.ema > 0 else []
        self.scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, cfg.steps, cfg.lr_end) for o in self.opts]

    def step(self, batch: Batch, generator: torch.Generator) -> None:
        x0 = self.layout.targets(batch.actions)
        cond = self.layout.conditions(batch.obs, batch.actions)
        rows, d = x0.shape[1], x0.shape[2]
        for k, net in enumerate(self.nets):
            t = self.cfg.t_min + (1 - self.cfg.t_min) * torch.rand(rows, generator=generator, device=DEVICE)
            z = torch.randn(rows, d, generator=generator, device=DEVICE)
            x_t = self.vp.noise(x0[k], t, z)
            out = net(x_t[None], t[None], cond[k:k + 1])[0]
            loss = ((out - net.training_target(x0[k], z, x_t, t)) ** 2 * self.mask[k]).sum(-1).mean()
            self.opts[k].zero_grad(set_to_none=True)
            loss.backward()
            self.opts[k].step()
            self.scheds[k].step()
            if self.emas:
                self.emas[k].update(net)


class PerAgentStage2:
    """Stage 2 as DESIGN.md 1.5 writes it: a_cur of all actors, then per agent its actor, its
    score model's evaluation, the critic's gradient at its slot, its loss and its own update."""

    def __init__(self, objective: PolicyObjective, cfg: PolicyConfig):
        spec = objective.actors.spec
        self.obj, self.cfg, self.spec = objective, cfg, spec
        self.actors = [StackedMLP(1, spec.obs_dims[i], (cfg.hidden,) * cfg.layers, spec.act_dims[i]).to(DEVICE)
                       for i in range(spec.n_agents)]
        self.opts = [torch.optim.Adam(a.parameters(), lr=cfg.lr) for a in self.actors]
        self.scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, cfg.steps, cfg.lr_end) for o in self.opts]

    def act(self, i: int, obs: Tensor) -> Tensor:
        a = torch.tanh(self.actors[i](obs[None, :, i, :self.spec.obs_dims[i]])[0])
        return F.pad(a, (0, self.spec.act_max - a.shape[1]))

    def step(self, batch: Batch, generator: torch.Generator) -> None:
        obs, behavior, critic, cfg = batch.obs, self.obj.behavior, self.obj.critic, self.cfg
        lay, vp = behavior.layout, self.obj.vp
        with torch.no_grad():
            a_cur = torch.stack([self.act(i, obs) for i in range(self.spec.n_agents)], 1)
        rows = obs.shape[0]
        for k, agent in enumerate(lay.order):
            a = self.act(agent, obs)
            draw = self.obj.time_draw
            t = draw.t_from_uniform(torch.rand(rows, generator=generator, device=DEVICE))
            z = torch.randn(rows, lay.x_dim, generator=generator, device=DEVICE)
            with torch.no_grad():
                alpha, sigma = vp.alpha_sigma(t)
                x_t = alpha[:, None] * a.detach() + sigma[:, None] * z
                cond = lay.conditions(obs, a_cur)[k:k + 1]
                e = behavior.net.epsilon(x_t[None], t[None], cond, slice(k, k + 1))[0]
                if cfg.subtract_noise:
                    e = e - z
            slot = a.detach().requires_grad_(True)
            joint = torch.cat([a_cur[:, :agent], slot[:, None], a_cur[:, agent + 1:]], 1)
            q = critic.q_values(obs, joint, target=True).mean(dim=1)
            (g,) = torch.autograd.grad(q.sum(), slot)
            w = draw.row_weight(alpha, sigma)
            loss = ((w[:, None] * e * a).sum(-1) - cfg.beta * (g * a).sum(-1)).mean()
            self.opts[agent].zero_grad(set_to_none=True)
            loss.backward()
            self.opts[agent].step()
            self.scheds[agent].step()



# ----------------------------------------------------------------------------- set-ups

def _wrap(stage, variant: str):
    if variant == "eager":
        return stage
    if variant == "compile":
        return CapturedStep(stage, "compile")
    if variant == "compile-reduce-overhead":
        return CapturedStep(stage, "compile", mode="reduce-overhead")
    if variant == "graph":
        return CapturedStep(stage, "graph")
    raise ValueError(variant)


def make_stage1(variant: str, spec: AgentSpec, arch: str, batch: int):
    cfg = behavior_cfg(arch, batch)
    model = BehaviorModel(spec, "sequential", cfg).to(DEVICE)
    flops = 3 * matmul_flops(model.net, batch)  # forward + backward (twice the forward)
    if variant == "per-agent-loop":
        return PerAgentStage1(model, cfg), flops
    return _wrap(BehaviorStage(model, cfg), variant), flops


def make_stage2(variant: str, spec: AgentSpec, arch: str, batch: int):
    behavior = BehaviorModel(spec, "sequential", behavior_cfg(arch, batch)).to(DEVICE)
    critic = IQLCritic(spec, "joint", CriticConfig(hidden=256, layers=2)).to(DEVICE)
    cfg = PolicyConfig(hidden=256, layers=2, batch_size=batch, steps=STEPS)
    actors = Actors(spec, hidden=cfg.hidden, layers=cfg.layers).to(DEVICE)
    objective = PolicyObjective("omsd", actors, cfg, behavior, critic)
    # actors: a_cur, then forward + backward; score nets: one forward; critic target heads:
    # forward + the input gradient (about one more forward).
    flops = (4 * matmul_flops(actors, batch) + matmul_flops(behavior.net, batch)
             + 2 * matmul_flops(critic.q_target, batch))
    if variant == "per-agent-loop":
        return PerAgentStage2(objective, cfg), flops
    return _wrap(PolicyStage(objective), variant), flops


MAKERS = {"stage1_step": make_stage1, "stage2_step": make_stage2}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("n", AGENTS)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("op", tuple(MAKERS))
def test_step(benchmark, op, variant, n, batch, arch):
    if variant in ("compile-reduce-overhead", "graph") and not GPU:
        pytest.skip(f"{variant} (CUDA graphs) needs a GPU")
    torch.manual_seed(0)
    spec = AgentSpec((OBS_DIM,) * n, (ACT_DIM,) * n)
    stage, flops = MAKERS[op](variant, spec, arch, batch)
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    data = random_batch(spec, batch, torch.Generator().manual_seed(1))

    def run():
        stage.step(data, gen)
        sync()

    for _ in range(3):  # compile / graph capture / autotuning happen here, not in the timing
        run()
    benchmark.extra_info.update(versions())
    benchmark.extra_info.update(op=op, variant=variant, n=n, batch=batch, arch=arch, hidden=HIDDEN[arch],
                                dtype="float32", flops=flops)
    benchmark.group = f"{op} {arch} n={n} batch={batch}"
    rounds = 50 if GPU else (3 if n * batch >= 3000 or arch == "resnet" and n * batch > 1000 else 10)
    benchmark.pedantic(run, rounds=rounds, iterations=1, warmup_rounds=1)
