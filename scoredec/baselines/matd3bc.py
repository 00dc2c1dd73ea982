"""MA-TD3+BC: TD3+BC (Fujimoto and Gu 2021) per agent, as the OMAR paper's "MA-" baselines.

Each agent i has a decentralized actor pi_i(o_i) and its own twin critic Q_i(o_i, a_i) trained
on the team reward (independent learners, as OMAR's code trains its MA-TD3 critics on each
agent's own observation and action). Per step:

    critic:  y_i = r + gamma (1 - d) min_h Q'_i,h(o'_i, clip(pi'_i(o'_i) + clip(eps, -c, c)))
             L_Q = sum_i sum_h mean (Q_i,h(o_i, a_i) - y_i)^2,  eps ~ N(0, policy_noise^2)
    every policy_delay steps, actor and then all targets (Polyak):
             lambda_i = alpha / mean |Q_i,1(o_i, pi_i(o_i))|   (no gradient)
             L_pi = sum_i [ -lambda_i mean Q_i,1(o_i, pi_i(o_i)) + mean (pi_i(o_i) - a_i)^2 ]

Defaults: CORL algorithms/offline/td3_bc.py (the paper's): alpha 2.5, policy noise 0.2 clipped
at 0.5, policy delay 2, discount 0.99, Polyak 0.005, Adam 3e-4, batch 256, two hidden layers of
256. Not ported: CORL's observation normalization (observations are used as stored).
"""

from __future__ import annotations

from dataclasses import dataclass

from scoredec import distributed
from scoredec.baselines.common import (ActorCriticConfig, ActorCriticStage, action_mse,
                                       agent_rewards, register, td_target, twin_td_loss)
from scoredec.config import param
from scoredec.training import optimizer_step


@dataclass
class TD3BCConfig(ActorCriticConfig):
    """MA-TD3+BC: per-agent TD3+BC (defaults: CORL td3_bc.py, BaselineConfig's). `steps`
    counts critic steps: the actors step every policy_delay of them."""

    alpha: float = param(2.5, "Q-term scale: lambda = alpha / mean|Q| (larger = less BC)",
                         bounds="[0, inf)")
    policy_noise: float = param(0.2, "std of the target policy smoothing noise", bounds="[0, inf)")
    noise_clip: float = param(0.5, "clip of the target policy smoothing noise", bounds="[0, inf)")
    policy_delay: int = param(2, "critic steps per actor and target update", bounds="[1, inf)")


class TD3BCStage(ActorCriticStage):
    name = "matd3bc"

    def actor_loss(self, obs, actions):
        pi = self.actors(obs)
        q = self.model.critic.q1(obs, pi)                                   # [n, B]
        lam = self.cfg.alpha / distributed.rows_mean(q.abs(), dim=1)   # the whole batch's
        bc = action_mse(pi, actions, self.spec)
        return (-lam * q.mean(dim=1) + bc).sum(), bc.sum()

    def step(self, batch, generator):
        cfg, model = self.cfg, self.model
        target = td_target(model, batch, agent_rewards(batch, cfg.reward), cfg.gamma,
                           noise_std=cfg.policy_noise, noise_clip=cfg.noise_clip,
                           generator=generator)
        q_loss = twin_td_loss(model.critic(batch.obs, batch.actions), target)
        optimizer_step(self.optimizers["critic"], q_loss)
        model.updates += 1
        metrics = {"q_loss": q_loss.detach(), "q_target": target.mean()}
        if int(model.updates) % cfg.policy_delay == 0:
            actor_loss, bc = self.actor_loss(batch.obs, batch.actions)
            optimizer_step(self.optimizers["actors"], actor_loss)
            model.update_targets(cfg.polyak)
            metrics.update(actor_loss=actor_loss.detach(), bc=bc.detach())
        return metrics


register("matd3bc", TD3BCConfig, TD3BCStage,
         "per-agent TD3+BC with independent critics (Fujimoto and Gu 2021)")
