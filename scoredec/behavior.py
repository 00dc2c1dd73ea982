"""Stage 1a: behaviour score models, one per agent, and the sequential sampler (DESIGN.md 1.3, 1.6).

A BehaviorModel is n score networks eps_k(x_t, t | c_k) in one stack, with the conditions of
a ScoreLayout: the OMSD prefixes [o_k, a_<k] ("sequential"), the marginal IND/CTDE models
("marginal") or one joint JAL model ("joint"). Training minimizes the denoising loss
E || eps_k(alpha_t a_k + sigma_t z, t | c_k) - z ||^2 with t ~ U(t_min, 1), all models at once.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scoredec import sde
from scoredec.config import param
from scoredec.layout import AgentSpec, ScoreLayout
from scoredec.nets import CompactScoreNet, make_score_net
from scoredec.ops import noise_and_embed, score_eval_compact
from scoredec.sampling import integrate
from scoredec.training import Stage, cosine_schedule, optimizer_step


@dataclass
class BehaviorConfig:
    """Behaviour score models (stage 1a)."""

    arch: str = param("resnet", "score network: the authors' residual MLP or a plain MLP",
                      choices=("resnet", "compact"))
    hidden: int = param(512, "trunk width H of the resnet, or the compact MLP's width")
    blocks: int = param(2, "residual blocks of the resnet")
    compact_layers: int = param(3, "hidden layers of the compact MLP")
    dropout: float = param(0.1, "dropout inside the resnet blocks while training")
    lr: float = param(3e-4, "AdamW learning rate")
    lr_end: float = param(1e-5, "learning rate at the end of the cosine schedule")
    weight_decay: float = param(0.01, "AdamW weight decay")
    batch_size: int = param(512, "transitions per step (each model sees the same rows)")
    steps: int = param(100_000, "optimizer steps (the authors train 2M)")
    t_min: float = param(sde.T_MIN, "training draws t ~ U(t_min, 1)")
    sample_steps: int = param(15, "solver steps per agent when sampling")
    solver: str = param("dpm2", "sampler", choices=sde.SOLVERS)


class BehaviorModel(nn.Module):
    """The behaviour policy mu(a | s) as a stack of score models over one ScoreLayout."""

    def __init__(self, spec: AgentSpec, mode: str, cfg: BehaviorConfig, order=None,
                 vp: sde.VPSDE = sde.VPSDE(), generator: torch.Generator | None = None):
        super().__init__()
        self.spec, self.cfg, self.vp = spec, cfg, vp
        self.layout = ScoreLayout(spec, mode, order)
        lay = self.layout
        self.net = make_score_net(cfg.arch, lay.models, lay.x_dim, lay.cond_dim, lay.in_mask(),
                                  hidden=cfg.hidden, blocks=cfg.blocks, dropout=cfg.dropout,
                                  compact_layers=cfg.compact_layers, generator=generator)
        self.register_buffer("x_mask", lay.x_mask().to(torch.float32)[:, None, :])

    @property
    def mode(self) -> str:
        return self.layout.mode

    def loss(self, obs: Tensor, actions: Tensor, generator: torch.Generator | None = None,
             noise: tuple[Tensor, Tensor] | None = None, backend: str | None = None) -> Tensor:
        """Denoising loss, summed over models (each model's own mean over the batch).

        obs [B, n, obs_max], actions [B, n, act_max] (dataset actions); noise: explicit
        (t [m, B], z [m, B, x_dim]), else drawn from generator."""
        x0 = self.layout.targets(actions)
        cond = self.layout.conditions(obs, actions)
        m, batch, d = x0.shape
        t, z = noise if noise is not None else draw_noise(
            m, batch, d, self.cfg.t_min, 1.0, generator, x0)
        x_t, fourier = noise_and_embed(x0.reshape(m * batch, d), z.reshape(m * batch, d),
                                       t.reshape(-1), self.net.freqs.to(x0.dtype),
                                       beta_0=self.vp.beta_0, beta_1=self.vp.beta_1,
                                       backend=backend)
        eps = self.net.forward_embedded(x_t.view(m, batch, d), fourier.view(m, batch, -1), cond)
        err = ((eps - z) ** 2 * self.x_mask.to(eps.dtype)).sum(-1)
        return err.mean(dim=1).sum()

    def epsilon(self, x_t: Tensor, t: Tensor, obs: Tensor, actions: Tensor | None = None,
                backend: str | None = None) -> Tensor:
        """All models' noise predictions at once: x_t [m, B, x_dim], t [m, B] -> [m, B, x_dim].

        Sequential mode conditions model k on actions of agents order[:k] (stage 2 passes the
        current policies' actions): this is the per-agent sequential score evaluation. A compact
        net runs through the fused op scoredec.ops.score_eval_compact (backend: as that op; the
        torch path on CPU tensors; its kernel backends are forward only)."""
        cond = self.layout.conditions(obs, actions)
        if isinstance(self.net, CompactScoreNet):
            return score_eval_compact(self.net, x_t.contiguous(), t.contiguous(), cond.contiguous(),
                                      backend=backend)
        return self.net(x_t, t, cond)

    @torch.no_grad()
    def sample(self, obs: Tensor, steps: int | None = None, solver: str | None = None,
               noise: Tensor | None = None, generator: torch.Generator | None = None,
               spacing: str = "logSNR") -> Tensor:
        """Joint actions a ~ mu(. | s): obs [B, n, obs_max] -> [B, n, act_max] in [-1, 1].

        Sequential mode samples agent order[0] first and conditions each later agent on the
        earlier agents' samples (ancestral sampling along the chain rule). noise: [m, B, x_dim]
        initial noise; drawn from generator when None."""
        steps = self.cfg.sample_steps if steps is None else steps
        solver = self.cfg.solver if solver is None else solver
        lay, batch = self.layout, obs.shape[0]
        shape = (lay.models, batch, lay.x_dim)
        if noise is None:
            noise = torch.randn(shape, generator=generator, dtype=obs.dtype, device=obs.device)
        if tuple(noise.shape) != shape:
            raise ValueError(f"noise must be {list(shape)}, got {list(noise.shape)}")
        mask = self.x_mask.to(obs.dtype)
        with eval_mode(self):
            if lay.mode != "sequential":
                cond = lay.conditions(obs)
                x = integrate(lambda x, t: self.net(x, t, cond), noise, steps, solver, spacing)
                return lay.actions_from(x.clamp(-1.0, 1.0) * mask)
            actions = torch.zeros(batch, self.spec.n_agents, self.spec.act_max,
                                  dtype=obs.dtype, device=obs.device)
            for k, agent in enumerate(lay.order):
                one = slice(k, k + 1)
                cond = lay.conditions(obs, actions)[one]
                x = integrate(lambda x, t: self.net(x, t, cond, one), noise[one], steps, solver,
                              spacing)
                actions[:, agent] = (x.clamp(-1.0, 1.0) * mask[one])[0]
            return actions


def draw_noise(models: int, batch: int, dim: int, t_min: float, t_max: float,
               generator: torch.Generator | None, like: Tensor) -> tuple[Tensor, Tensor]:
    """t ~ U(t_min, t_max): [models, batch]; z ~ N(0, I): [models, batch, dim]."""
    opts = {"dtype": like.dtype, "device": like.device, "generator": generator}
    t = t_min + (t_max - t_min) * torch.rand(models, batch, **opts)
    return t, torch.randn(models, batch, dim, **opts)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Temporarily switch off dropout; restores the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class BehaviorStage(Stage):
    """Stage 1a training: AdamW with a cosine schedule on all score models at once."""

    name = "behavior"

    def __init__(self, model: BehaviorModel, cfg: BehaviorConfig):
        self.model, self.batch_size, self.steps = model, cfg.batch_size, cfg.steps
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.modules = {"behavior": model}
        self.optimizers = {"behavior": opt}
        self.schedulers = {"behavior": cosine_schedule(opt, cfg.steps, cfg.lr_end)}

    def step(self, batch, generator):
        loss = self.model.loss(batch.obs, batch.actions, generator)
        optimizer_step(self.optimizers["behavior"], loss, self.schedulers["behavior"])
        return {"loss": loss.detach()}
