"""Stage 2: score-regularized actors: OMSD, the BRPO ablations and behaviour cloning (DESIGN.md 1.5).

Per step (batch of observations o):
  a_cur = pi(o) without gradient, all agents;
  for each agent k:  a = pi_k(o_k);  x_t = alpha_t a + sigma_t z,  t ~ p(t) on [t_min, t_max]
      e = stopgrad (eps_k(x_t, t | c_k) - z)  c_k = [o_k, a_cur_<k] for OMSD
      g = stopgrad d/da_k 0.5 (Q1' + Q2')(S, a_cur with slot k := a)
      loss_k = mean( w(t) / (p(t) (t_max - t_min)) <e, a> - beta <g, a> )
p(t) is proportional to each row's pull w(t) alpha_t / sigma_t (importance sampling, the
default) or uniform; the control variate - z is on by default (scoredec/estimator.py: why).
The DESIGN loop over k takes one optimizer step per actor. Here all k are one batched step:
loss_k depends only on pi_k's parameters (a_cur is fixed for the whole step and a equals
a_cur_k before pi_k's update), and Adam acts elementwise, so the summed loss gives every actor
exactly its own update (tests check this against a literal per-agent float64 loop). For the
same reason g_k is the k-th slice of one gradient of Q at a_cur.

One batch's walk: the reader's arrays, agent-major [B, n, width] and zero-padded
(data.tensors.OfflineData.sample), are laid out once into the actors' stack o
(Actors.layout.inputs); the actors run once on o, their masked output stack y is both x0 and
a_cur of the behaviour models' conditions (ScoreLayout.*_from_models); only the critic, whose
joint input is the agents' concatenation, reads the agent-major batch and actions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scoredec import sde
from scoredec.actors import Actors, squared_error
from scoredec.behavior import BehaviorModel
from scoredec.config import FieldError, param
from scoredec.critic import IQLCritic
from scoredec.estimator import T_DRAWS, WEIGHTINGS, TimeDraw, score_weight
from scoredec.registry import variant
from scoredec.training import Stage, cosine_schedule, optimizer_step


__all__ = ["WEIGHTINGS", "PolicyConfig", "PolicyObjective",
           "PolicyStage", "score_weight", "critic_action_gradient"]


@dataclass
class PolicyConfig:
    """Actors (stage 2)."""

    beta: float = param(0.05, "weight of the critic's action gradient; small = strong behaviour "
                              "regularization (expert data ~0.001-0.005, random data ~0.3-0.5)",
                        bounds="[0, inf)")
    weighting: str = param("score", "w(t) of the score term: score = alpha_t/sigma_t (mode-seeking),"
                                    " vds = sigma_t^2 (SRPO), stable = 1", choices=WEIGHTINGS)
    t_min: float = param(0.02, "the score term draws t in [t_min, t_max]", bounds="(0, 1)")
    t_max: float = param(0.98, "the score term draws t in [t_min, t_max]", bounds="(0, 1]")
    t_draw: str = param("importance", "how t is drawn: importance = in proportion to each row's "
                                      "pull w(t) alpha_t/sigma_t, reweighted (the same objective, "
                                      "equal row weights); uniform = U(t_min, t_max), weight w(t)",
                        choices=T_DRAWS)
    subtract_noise: bool = param(True, "use eps - z in the score term (SRPO's control variate: "
                                       "same expectation, far less variance)")
    normalize_guidance: bool = param(False, "divide each agent's Q gradient by its RMS")
    hidden: int = param(256, "actor MLP width", bounds="[1, inf)")
    layers: int = param(2, "actor MLP hidden layers", bounds="[1, inf)")
    input_norm: bool = param(False, "a BatchNorm on each actor's input (OMAR's networks have one; "
                                    "batch moments while training, running ones when acting)")
    lr: float = param(3e-4, "Adam learning rate", bounds="(0, inf)")
    lr_end: float = param(0.0, "learning rate at the end of the cosine schedule", bounds="[0, inf)")
    batch_size: int = param(512, "observations per step", bounds="[1, inf)")
    steps: int = param(100_000, "optimizer steps", bounds="[1, inf)")

    def __post_init__(self):
        if self.t_min >= self.t_max:
            raise FieldError("t_min", f"must be below t_max = {self.t_max}, got {self.t_min}")


def critic_action_gradient(critic: IQLCritic, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    """IQLCritic.action_gradient through torch.func.grad: d/da 0.5 (Q1' + Q2')(S, a) at
    a = actions [B, n, act_max], and that Q value [critics, B]. The same operations and numbers
    as the autograd version, but torch.compile traces torch.func.grad into one graph where
    torch.autograd.grad is a graph break (scoredec/captured.py compiles the whole stage-2 step)."""
    def q_sum(a: Tensor) -> tuple[Tensor, Tensor]:
        q = critic.q_values(obs, a, target=True).mean(dim=1)
        return q.sum(), q

    grad, q = torch.func.grad(q_sum, has_aux=True)(actions.detach())
    return grad, q.detach()


class PolicyObjective:
    """The stage-2 loss of one method, over frozen stage-1 models."""

    def __init__(self, method: str, actors: Actors, cfg: PolicyConfig,
                 behavior: BehaviorModel | None = None, critic: IQLCritic | None = None,
                 vp: sde.VPSDE = sde.VPSDE()):
        spec = variant(method)
        if spec.score_mode is not None:
            if behavior is None or behavior.mode != spec.score_mode:
                raise ValueError(f"{method} needs a '{spec.score_mode}' behaviour model, got "
                                 f"{None if behavior is None else behavior.mode!r}")
            if critic is None or critic.scope != spec.critic_scope:
                raise ValueError(f"{method} needs a '{spec.critic_scope}' critic, got "
                                 f"{None if critic is None else critic.scope!r}")
            if (behavior.mode == "joint") != (actors.layout.mode == "joint"):
                # The loss hands the actors' stacks to the behaviour model as they are.
                raise ValueError(f"{method}: a {behavior.mode!r} behaviour model needs "
                                 f"{'joint' if behavior.mode == 'joint' else 'decentralized'} "
                                 f"actors, got {actors.layout.mode!r}")
            behavior.requires_grad_(False).eval()
            critic.requires_grad_(False)
        self.method, self.actors, self.cfg, self.vp = method, actors, cfg, vp
        self.behavior, self.critic = behavior, critic
        self.time_draw = TimeDraw(cfg.weighting, cfg.t_min, cfg.t_max, cfg.t_draw, vp)

    def draw_noise(self, batch: int, like: Tensor,
                   generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """(t [m, B], z [m, B, x_dim]) of the score term, drawn from generator (not for BC)."""
        lay = self.behavior.layout
        return self.time_draw.sample(lay.models, batch, lay.x_dim, generator, like)

    def loss(self, obs: Tensor, data_actions: Tensor, generator: torch.Generator | None = None,
             noise: tuple[Tensor, Tensor] | None = None,
             backend: str | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """obs [B, n, obs_max]; data_actions [B, n, act_max] (used by BC only); noise: explicit
        (t [m, B], z [m, B, x_dim]) of the score term, else drawn from generator.

        The batch is laid out once: o, the actors' stack of observations, is what the actors and
        the behaviour models read; the actors' output stack y is the score term's x0 (zero on the
        padding, the one mask) and the earlier agents' actions of the conditions. The agent-major
        actions `a` are for the critic's joint view and the guidance term."""
        o = self.actors.layout.inputs(obs)                         # [m_a, B, in_dim]
        y = self.actors.forward_models(o)                          # [m_a, B, out_dim]
        a = self.actors.layout.actions_from(y)                     # [B, n, act_max]
        if self.behavior is None:
            err = squared_error(a, data_actions, self.actors.act_mask.to(obs.dtype)).sum(-1)
            loss = err.mean(0).sum()
            return loss, {"bc": loss.detach()}
        # One actor pass: y (and `a`) carry the gradient; their values are the current joint
        # action at which the frozen behaviour models and critic are evaluated.
        cfg, lay = self.cfg, self.behavior.layout
        x0 = lay.targets_from_models(y)                            # [m, B, x_dim]
        t, z = noise if noise is not None else self.draw_noise(x0.shape[1], obs, generator)
        with torch.no_grad():
            alpha, sigma = self.vp.alpha_sigma(t)
            x_t = alpha[..., None] * x0.detach() + sigma[..., None] * z
            # The per-agent sequential score evaluation: all n models in one stacked call.
            e = self.behavior.epsilon_from_models(x_t, t, o, y.detach(), backend=backend)
            if cfg.subtract_noise:
                e = e - z
            w = self.time_draw.row_weight(alpha, sigma)
            g, q = critic_action_gradient(self.critic, obs, a.detach())
            if cfg.normalize_guidance:
                mask = self.actors.act_mask.to(g.dtype)
                rms = ((g ** 2).sum(-1) / mask.sum(-1)).sqrt().clamp(min=1e-8)
                g = g / rms[..., None]
        score_term = (w[..., None] * e * x0).sum(-1).mean(dim=1).sum()
        guidance = (g * a).sum(-1).mean(dim=0).sum()
        loss = score_term - cfg.beta * guidance
        return loss, {"score_term": score_term.detach(), "guidance": guidance.detach(),
                      "q": q.mean()}


class PolicyStage(Stage):
    """Stage 2 training: Adam with a cosine schedule on all actors at once."""

    name = "policy"

    def __init__(self, objective: PolicyObjective):
        cfg = objective.cfg
        self.objective, self.batch_size, self.steps = objective, cfg.batch_size, cfg.steps
        self.actors = objective.actors   # what evaluation during training rolls out
        opt = torch.optim.Adam(objective.actors.parameters(), lr=cfg.lr)
        self.modules = {"actors": objective.actors}
        self.optimizers = {"actors": opt}
        self.schedulers = {"actors": cosine_schedule(opt, cfg.steps, cfg.lr_end)}

    def draw_noise(self, batch, generator):
        """(t [m, B], z [m, B, x_dim]) of the score term as PolicyObjective.loss would draw
        them; () for BC, which draws nothing."""
        obj = self.objective
        if obj.behavior is None:
            return ()
        return obj.draw_noise(batch.obs.shape[0], batch.obs, generator)

    def loss(self, batch, noise):
        return self.objective.loss(batch.obs, batch.actions, noise=tuple(noise) or None)

    def step(self, batch, generator):
        loss, metrics = self.loss(batch, self.draw_noise(batch, generator))
        optimizer_step(self.optimizers["actors"], loss, self.schedulers["actors"])
        return {"loss": loss.detach(), **metrics}
