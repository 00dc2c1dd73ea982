"""Stage 1b: the IQL critic on the joint action (DESIGN.md 1.4), or local critics for BRPO-IND.

Joint scope: one critic on S = concat(o_1..o_n), A = concat(a_1..a_n) with the team reward
(agent 0's column). Local scope: n critics, critic i on (o_i, a_i) with agent i's reward.
Each critic has twin Q heads with Polyak target copies and a state value V trained by
expectile regression: L_V = |tau - 1(u < 0)| u^2, u = min(Q1', Q2')(S, A) - V(S);
L_Q = mean over heads of (Q(S, A) - r - gamma (1 - d) V(S'))^2.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scoredec.config import param
from scoredec.layout import AgentSpec, to_models
from scoredec.nets import StackedMLP
from scoredec.training import Stage, optimizer_step

CRITIC_SCOPES = ("joint", "local")


@dataclass
class CriticConfig:
    """IQL critic (stage 1b)."""

    hidden: int = param(256, "width of the Q and V MLPs", bounds="[1, inf)")
    layers: int = param(2, "hidden layers of the Q and V MLPs", bounds="[1, inf)")
    lr: float = param(3e-4, "Adam learning rate for Q and V", bounds="(0, inf)")
    batch_size: int = param(1024, "transitions per step", bounds="[1, inf)")
    gamma: float = param(0.99, "discount", bounds="[0, 1]")
    expectile: float = param(0.7, "IQL expectile tau for V (0.5 = mean; the paper uses 0.5-0.9)",
                             bounds="(0, 1)")
    polyak: float = param(0.005, "target network update rate", bounds="(0, 1]")
    steps: int = param(100_000, "optimizer steps", bounds="[1, inf)")


class IQLCritic(nn.Module):
    """Twin Q, Q targets and V for `critics` independent critics in stacks."""

    def __init__(self, spec: AgentSpec, scope: str, cfg: CriticConfig):
        super().__init__()
        if scope not in CRITIC_SCOPES:
            raise ValueError(f"critic scope must be one of {CRITIC_SCOPES}, got {scope!r}")
        self.spec, self.scope, self.cfg = spec, scope, cfg
        n = spec.n_agents
        obs_mask, act_mask = spec.obs_mask(), spec.act_mask()
        if scope == "joint":
            self.critics = 1
            s_mask, a_mask = obs_mask.reshape(1, -1), act_mask.reshape(1, -1)
        else:
            self.critics = n
            s_mask, a_mask = obs_mask, act_mask
        hidden = (cfg.hidden,) * cfg.layers
        sa_mask = torch.cat([s_mask, a_mask], dim=1)
        # Q stack: model 2c + h is head h of critic c.
        self.q = StackedMLP(2 * self.critics, sa_mask.shape[1], hidden, 1,
                            in_mask=sa_mask.repeat_interleave(2, dim=0))
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.v = StackedMLP(self.critics, s_mask.shape[1], hidden, 1, in_mask=s_mask)

    def _split(self, x: Tensor) -> Tensor:
        """[B, n, w] -> [critics, B, w'] as each critic sees it."""
        return to_models(x, self.scope == "joint", tuple(range(self.spec.n_agents)))

    def _q(self, net: nn.Module, obs: Tensor, actions: Tensor) -> Tensor:
        sa = torch.cat([self._split(obs), self._split(actions)], dim=-1)
        return net(sa.repeat_interleave(2, dim=0))[..., 0].view(self.critics, 2, -1)

    def q_values(self, obs: Tensor, actions: Tensor, target: bool = False) -> Tensor:
        """[critics, 2, B] twin Q values."""
        return self._q(self.q_target if target else self.q, obs, actions)

    def value(self, obs: Tensor) -> Tensor:
        """[critics, B]."""
        return self.v(self._split(obs))[..., 0]

    def rewards(self, rewards: Tensor) -> Tensor:
        """rewards [B, n] -> [critics, B]: the team reward (agent 0) or each agent's own."""
        return rewards[:, 0][None] if self.scope == "joint" else rewards.t()

    def losses(self, obs, actions, rewards, next_obs, terminals) -> tuple[Tensor, Tensor]:
        """(V loss, Q loss), each summed over critics. terminals [B] (bootstrap cut)."""
        with torch.no_grad():
            q_target = self.q_values(obs, actions, target=True).min(dim=1).values
            target = (self.rewards(rewards)
                      + self.cfg.gamma * (1.0 - terminals.to(obs.dtype))[None] * self.value(next_obs))
        u = q_target - self.value(obs)
        weight = torch.abs(self.cfg.expectile - (u < 0).to(u.dtype))
        v_loss = (weight * u ** 2).mean(dim=1).sum()
        q_loss = ((self.q_values(obs, actions) - target[:, None]) ** 2).mean(dim=(1, 2)).sum()
        return v_loss, q_loss

    @torch.no_grad()
    def update_targets(self) -> None:
        torch._foreach_lerp_(list(self.q_target.parameters()), list(self.q.parameters()),
                             self.cfg.polyak)

    def action_gradient(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """d/da of 0.5 (Q1' + Q2')(S, A) at A = actions: [B, n, act_max] (DESIGN.md 1.5 step 2),
        and that Q value [critics, B].

        Joint scope: agent k's slice of the joint gradient; local scope: critic k's gradient
        with respect to its own action. Target networks, no graph kept."""
        with torch.enable_grad():
            a = actions.detach().requires_grad_(True)
            q = self.q_values(obs.detach(), a, target=True).mean(dim=1)
            (grad,) = torch.autograd.grad(q.sum(), a)
        return grad, q.detach()


class CriticStage(Stage):
    """Stage 1b training: one Adam over Q and V (their losses touch disjoint parameters)."""

    name = "critic"

    def __init__(self, critic: IQLCritic, cfg: CriticConfig):
        self.critic, self.batch_size, self.steps = critic, cfg.batch_size, cfg.steps
        params = list(critic.q.parameters()) + list(critic.v.parameters())
        self.modules = {"critic": critic}
        self.optimizers = {"critic": torch.optim.Adam(params, lr=cfg.lr)}
        self.schedulers = {}

    def step(self, batch, generator):
        v_loss, q_loss = self.critic.losses(batch.obs, batch.actions, batch.rewards,
                                            batch.next_obs, batch.terminals)
        optimizer_step(self.optimizers["critic"], v_loss + q_loss)
        self.critic.update_targets()
        return {"v_loss": v_loss.detach(), "q_loss": q_loss.detach()}
