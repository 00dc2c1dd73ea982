"""MA-CQL: conservative Q-learning (Kumar et al. 2020) per agent, as in OMAR's public code.

OMAR's algorithms/maddpg.py (MATD3 with cql=True) trains, for each agent i, a decentralized
deterministic actor pi_i(o_i) and a twin critic Q_i(o_i, a_i) of its own (independent
learners) and adds CQL's penalty to the TD loss of both heads:

    y_i   = r + gamma (1 - d) min_h Q'_i,h(o'_i, pi'_i(o'_i))          (no target smoothing)
    L_Q   = sum_h mean (Q_i,h(o_i, a_i) - y_i)^2
            + cql_alpha sum_h mean[ T log sum_j exp((Q_i,h(o_i, a^j) - log p(a^j)) / T)
                                    - Q_i,h(o_i, a_i) ]
    L_pi  = -mean Q_i,1(o_i, pi_i(o_i)) + 1e-3 mean pi_i(o_i)^2

with a^j, j = 1..N, uniform on [-1, 1]^{d_i} (log p = -d_i log 2). OMAR's MaMuJoCo branch
also puts N noisy policy actions at o and at o' into the log-sum-exp (`policy_samples`): there
p is the Gaussian noise density; OMAR's code subtracts the density itself, here its log as in
CQL. Both the critic's and the actor's gradients are clipped to norm 0.5 per agent, and all
targets move by Polyak every step. One shared batch serves all agents (OMAR draws one per agent).

Every critic head normalizes its input [o_i, a_i] with a BatchNorm, as OMAR's MLPs do, in
training mode throughout (targets included). This is not cosmetic: the actor's Q is then
computed with the statistics of the batch of its own actions, so moving all actions the same way
gains nothing. Measured without it (spread medium-replay, tuning seed): every actor's tanh
saturated within 20 steps, at lr 0.01 and at 3e-3 alike, and stayed in one corner for every
observation (-26.5 normalized); with it, no saturation and 10.0 after 1000 steps.

Defaults: OMAR main.py for the particle tasks: Adam 0.01, two hidden layers of 64, batch 1024,
discount 0.95, Polyak 0.01, N = 10, T = 1; cql_alpha per dataset in OMAR's table (spread:
random 0.5, medium-replay 1.0, medium 5.0, expert 5.0; tag and world: 0.5-5.0; HalfCheetah:
1.0-5.0), default 1.0 here. For HalfCheetah OMAR uses Adam 3e-4, width 256, batch 256,
discount 0.99, Polyak 0.005 and policy samples. OMAR's actors also normalize their input with a
BatchNorm: `actor_input_norm` (training mode while training, the running estimates when the
saved actors act). Not ported: the small (3e-3) initialization of the actors' last layers
(the actors are the shared scoredec.actors.Actors; with the critics' BatchNorm they did not
saturate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from scoredec import distributed
from scoredec.baselines.common import (ActorCritic, ActorCriticConfig, ActorCriticStage,
                                       agent_rewards, register, step_optimizer, td_target,
                                       twin_td_loss, with_default)
from scoredec.config import param
from scoredec.data.tensors import Batch
from scoredec.layout import AgentSpec


@dataclass
class CQLConfig(ActorCriticConfig):
    """MA-CQL: per-agent CQL critics with TD3-style actors (defaults: OMAR main.py, MPE)."""

    cql_alpha: float = param(1.0, "weight of the CQL penalty (OMAR: 0.5-5.0 by dataset)",
                             bounds="[0, inf)")
    cql_samples: int = param(10, "sampled actions per observation in the log-sum-exp",
                             bounds="[1, inf)")
    lse_temperature: float = param(1.0, "temperature T of the log-sum-exp", bounds="(0, inf)")
    policy_samples: bool = param(False, "also put noisy policy actions at o and o' into the "
                                        "log-sum-exp (OMAR's MaMuJoCo setting)")
    policy_sample_noise: float = param(0.2, "std of the noise on those policy actions",
                                       bounds="[0, inf)")
    critic_input_norm: bool = param(True, "BatchNorm on each critic head's input, as OMAR's "
                                          "networks (without it the actors saturate)")
    actor_input_norm: bool = param(False, "BatchNorm on each actor's input, as OMAR's networks "
                                          "(the evaluated actors use its running estimates)")
    actor_l2: float = param(1e-3, "weight of mean pi(o)^2 in the actor loss", bounds="[0, inf)")
    grad_clip: float = param(0.5, "gradient-norm clip of each agent's critic and actor",
                             bounds="(0, inf)")
    # OMAR main.py's particle-task values where they differ from BaselineConfig's.
    gamma: float = with_default("gamma", 0.95)
    polyak: float = with_default("polyak", 0.01)
    critic_hidden: int = with_default("critic_hidden", 64)
    actor_hidden: int = with_default("actor_hidden", 64)
    critic_lr: float = with_default("critic_lr", 0.01)
    actor_lr: float = with_default("actor_lr", 0.01)
    batch_size: int = with_default("batch_size", 1024)


def repeat_rows(x: Tensor, k: int) -> Tensor:
    """[B, ...] -> [B * k, ...], each row k times in a row."""
    return x.repeat_interleave(k, dim=0)


def cql_penalty(model: ActorCritic, batch: Batch, q_data: Tensor, cfg: CQLConfig,
                generator: torch.Generator) -> Tensor:
    """sum over agents and heads of mean_B [T logsumexp_j((Q(o, a^j) - log p_j) / T) - Q(o, a)].

    q_data: [n, 2, B] twin Q at the dataset actions."""
    spec, obs = model.spec, batch.obs
    batch_size, k = obs.shape[0], cfg.cql_samples
    mask = spec.act_mask().to(obs)
    dims = mask.sum(dim=1)                                                   # [n]
    obs_k = repeat_rows(obs, k)
    shape = (batch_size * k, spec.n_agents, spec.act_max)
    uniform = (distributed.draw_rows(torch.rand, shape, 0, generator=generator, device=obs.device)
               * 2 - 1) * mask
    candidates = [(uniform, (-dims * math.log(2.0))[:, None].expand(-1, batch_size * k))]
    if cfg.policy_samples:
        std = cfg.policy_sample_noise
        for source in (obs, batch.next_obs):
            with torch.no_grad():
                a = repeat_rows(model.actors(source), k)
            noise = distributed.draw_rows(torch.randn, shape, 0, generator=generator,
                                          device=obs.device) * std * mask
            # log N(noise; 0, std^2 I) over the agent's own dims.
            log_p = (-0.5 * (noise / std) ** 2).sum(-1).t() - dims[:, None] * math.log(
                std * math.sqrt(2 * math.pi))
            candidates.append(((a + noise).clamp(-1.0, 1.0), log_p))
    terms = []
    for actions, log_p in candidates:
        q = model.critic(obs_k, actions)                                     # [n, 2, B * k]
        terms.append((q - log_p[:, None]).view(spec.n_agents, 2, batch_size, k))
    t = cfg.lse_temperature
    soft_max = t * torch.logsumexp(torch.cat(terms, dim=-1) / t, dim=-1)     # [n, 2, B]
    return (soft_max - q_data).mean(dim=2).sum()


class CQLStage(ActorCriticStage):
    name = "macql"

    def __init__(self, spec: AgentSpec, cfg: CQLConfig):
        super().__init__(spec, cfg, critic_input_norm=cfg.critic_input_norm,
                         actor_input_norm=cfg.actor_input_norm)

    def critic_step(self, batch: Batch, generator: torch.Generator) -> dict[str, Tensor]:
        cfg, model = self.cfg, self.model
        target = td_target(model, batch, agent_rewards(batch, cfg.reward), cfg.gamma)
        q_data = model.critic(batch.obs, batch.actions)
        td = twin_td_loss(q_data, target)
        penalty = cql_penalty(model, batch, q_data, cfg, generator)
        step_optimizer(self.optimizers["critic"], td + cfg.cql_alpha * penalty,
                       groups=self.spec.n_agents, max_norm=cfg.grad_clip)
        return {"td_loss": td.detach(), "cql_penalty": penalty.detach(), "q": q_data.mean().detach()}

    def actor_objective(self, batch: Batch, pi: Tensor,
                        generator: torch.Generator) -> tuple[Tensor, dict]:
        """-mean Q_1(o, pi(o)) per agent, summed; pi = actors(obs) [B, n, act_max] (OMAR
        overrides this)."""
        q = self.model.critic.q1(batch.obs, pi)
        loss = -q.mean(dim=1).sum()
        return loss, {"actor_q": q.mean().detach()}

    def step(self, batch, generator):
        cfg = self.cfg
        metrics = self.critic_step(batch, generator)
        pi = self.actors(batch.obs)
        loss, more = self.actor_objective(batch, pi, generator)
        mask = self.spec.act_mask().to(pi)
        l2 = ((pi ** 2) * mask).sum(dim=(0, 2)) / (pi.shape[0] * mask.sum(1))
        loss = loss + cfg.actor_l2 * l2.sum()
        step_optimizer(self.optimizers["actors"], loss, groups=self.spec.n_agents,
                       max_norm=cfg.grad_clip)
        self.model.update_targets(cfg.polyak)
        self.model.updates += 1
        return {**metrics, **more, "actor_loss": loss.detach()}


register("macql", CQLConfig, CQLStage,
         "per-agent CQL critics with deterministic actors (Kumar et al. 2020, as in OMAR's code)")
