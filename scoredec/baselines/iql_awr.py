"""IQL baseline: the joint IQL critic with advantage-weighted per-agent actors ("iql").

Implicit Q-learning (Kostrikov, Nair, Levine 2021), multi-agent as issue 6 asks: one
centralized critic on S = concat(o), A = concat(a) with the team reward (scoredec.critic,
scope "joint": twin Q, expectile V), and decentralized actors pi_i(o_i) trained by
advantage-weighted regression onto their own dataset actions with the joint advantage:

    A = min_h Q'_h(S, A_data) - V(S)          (target Q, V before this step's update)
    w = min(exp(beta A), max_weight)
    L_pi = sum_i mean_B  w * || pi_i(o_i) - a_i ||^2

Critic, actors and target copies all update every step, in CORL's order (V, Q, actor, target).

Simplification: the actors are deterministic tanh MLPs (scoredec.actors.Actors) and the
regression is the squared error, i.e. CORL's `iql_deterministic=True` variant; the paper's
Gaussian actor's log-likelihood becomes the squared error of its mean at a fixed variance.
The evaluated actors are the same deterministic Actors every method saves.

Defaults: CORL algorithms/offline/iql.py (MuJoCo locomotion): beta 3.0, expectile 0.7,
exp-advantage clip 100, lr 3e-4 for Q, V and the actor, cosine decay of the actor's lr over
training, batch 256, two hidden layers of 256, discount 0.99, Polyak 0.005. Not ported: CORL's
reward normalization for locomotion datasets (rewards are used as stored).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scoredec.baselines.common import BaselineConfig, register, with_default
from scoredec.actors import Actors, squared_error
from scoredec.config import param
from scoredec.critic import CriticConfig, IQLCritic
from scoredec.layout import AgentSpec
from scoredec.training import Stage, cosine_schedule, optimizer_step


@dataclass
class IQLConfig(BaselineConfig):
    """IQL with advantage-weighted decentralized actors (defaults: CORL iql.py, BaselineConfig's;
    the actors' learning rate decays to 0 on a cosine)."""

    inverse_temperature: float = param(3.0, "beta in exp(beta A): larger = greedier (the IQL "
                                            "paper's 'temperature', 3.0 on MuJoCo, 10 on AntMaze)",
                                       bounds="[0, inf)")
    max_weight: float = param(100.0, "clip of the advantage weight exp(beta A) (CORL EXP_ADV_MAX)",
                              bounds="(0, inf)")
    expectile: float = with_default("expectile", 0.7, CriticConfig)

    def critic_config(self) -> CriticConfig:
        """The joint IQL critic's config (scoredec.critic) from these fields."""
        return CriticConfig(hidden=self.critic_hidden, layers=self.critic_layers,
                            lr=self.critic_lr, batch_size=self.batch_size, gamma=self.gamma,
                            expectile=self.expectile, polyak=self.polyak, steps=self.steps)


class IQLModel(torch.nn.Module):
    def __init__(self, spec: AgentSpec, cfg: IQLConfig):
        super().__init__()
        self.critic = IQLCritic(spec, "joint", cfg.critic_config())
        self.actors = Actors(spec, "decentralized", cfg.actor_hidden, cfg.actor_layers)


class IQLStage(Stage):
    name = "iql"

    def __init__(self, spec: AgentSpec, cfg: IQLConfig):
        self.cfg, self.spec = cfg, spec
        self.model = IQLModel(spec, cfg)
        self.actors = self.model.actors
        critic = self.model.critic
        self.batch_size, self.steps = cfg.batch_size, cfg.steps
        actor_opt = torch.optim.Adam(self.actors.parameters(), lr=cfg.actor_lr)
        # One Adam over Q and V: their losses touch disjoint parameters, so this is CORL's two.
        critic_opt = torch.optim.Adam(list(critic.q.parameters()) + list(critic.v.parameters()),
                                      lr=cfg.critic_lr)
        self.modules = {"model": self.model}
        self.optimizers = {"critic": critic_opt, "actors": actor_opt}
        self.schedulers = {"actors": cosine_schedule(actor_opt, cfg.steps, 0.0)}

    def advantage(self, obs, actions):
        """A(S, A_data) = min_h Q'_h - V: [B]."""
        with torch.no_grad():
            critic = self.model.critic
            q = critic.q_values(obs, actions, target=True).min(dim=1).values[0]
            return q - critic.value(obs)[0]

    def actor_loss(self, obs, actions, adv):
        weight = torch.exp(self.cfg.inverse_temperature * adv).clamp(max=self.cfg.max_weight)
        err = squared_error(self.actors(obs), actions, self.actors.act_mask).sum(-1)  # [B, n]
        return (weight[:, None] * err).mean(dim=0).sum(), weight

    def step(self, batch, generator):
        critic = self.model.critic
        adv = self.advantage(batch.obs, batch.actions)
        v_loss, q_loss = critic.losses(batch.obs, batch.actions, batch.rewards, batch.next_obs,
                                       batch.terminals)
        optimizer_step(self.optimizers["critic"], v_loss + q_loss)
        actor_loss, weight = self.actor_loss(batch.obs, batch.actions, adv)
        optimizer_step(self.optimizers["actors"], actor_loss, self.schedulers["actors"])
        critic.update_targets()
        return {"v_loss": v_loss.detach(), "q_loss": q_loss.detach(),
                "actor_loss": actor_loss.detach(), "adv": adv.mean(), "weight": weight.mean()}


register("iql", IQLConfig, IQLStage,
         "joint IQL critic + advantage-weighted decentralized actors (Kostrikov et al. 2021)")
