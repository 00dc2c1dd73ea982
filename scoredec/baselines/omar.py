"""OMAR: offline multi-agent RL with actor rectification (Pan et al. 2022).

Critics exactly as MA-CQL (scoredec.baselines.macql: per-agent CQL twin critics, OMAR turns
CQL on whenever it runs). The actor of agent i adds to the policy gradient a regression onto
the best action a zeroth-order search of its own critic finds (OMAR's algorithms/maddpg.py,
particle-task branch):

    mu = omar_mu, sigma = omar_sigma                                   (per observation)
    repeat omar_iters times:
        a^j ~ N(mu, sigma^2), clipped to [-1, 1], j = 1..omar_samples
        w_j = softmax_j Q_i,1(o_i, a^j)
        mu = sum_j w_j a^j;   sigma = sqrt(mean_j (a^j - mu)^2)
    a_hat = argmax over {pi_i(o_i)} and the last iteration's samples of Q_i,1(o_i, .)
    L_pi = coe mean (pi_i(o_i) - a_hat)^2 - (1 - coe) mean Q_i,1(o_i, pi_i(o_i))
           + 1e-3 mean pi_i(o_i)^2

The search uses the current critic's first head, with no gradient. OMAR's MaMuJoCo branch
(``search="cem"``) replaces the softmax update by an elite-based CEM:

    repeat omar_iters times:
        a^j ~ N(mu, sigma^2), clipped, j = 1..omar_samples; from the second iteration on the
        previous iteration's elites (and their Q) join the candidates
        elites = the omar_elites candidates of highest Q_i,1;  mu, sigma = their mean and std
    a_hat = argmax over {pi_i(o_i)} and the last iteration's candidates of Q_i,1(o_i, .)

Defaults: OMAR main.py: omar_iters 3, omar_samples 10, mu 0, sigma 2.0 (HalfCheetah: CEM with
omar_iters 2, omar_samples 20, omar_elites 5); coe per dataset in
OMAR's table (spread: 1.0 at every quality; tag: 0.7-0.9; world: 0.1-1.0; HalfCheetah:
0.5-1.0), default 1.0 here. Critic and training defaults: see macql.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scoredec import distributed
from scoredec.baselines.common import action_mse, register
from scoredec.baselines.macql import CQLConfig, CQLStage, repeat_rows
from scoredec.config import FieldError, param
from scoredec.data.tensors import Batch


SEARCHES = ("softmax", "cem")


@dataclass
class OMARConfig(CQLConfig):
    """OMAR: MA-CQL critics + actor rectification by zeroth-order search (defaults: OMAR
    main.py, MPE)."""

    coe: float = param(1.0, "weight of the regression onto the searched action (1 - coe: the "
                            "policy-gradient term; OMAR: 0.1-1.0 by dataset)", bounds="[0, 1]")
    omar_iters: int = param(3, "iterations of the sampling search", bounds="[1, inf)")
    omar_samples: int = param(10, "actions sampled per observation and iteration",
                              bounds="[1, inf)")
    omar_mu: float = param(0.0, "initial mean of the search distribution", bounds="(-inf, inf)")
    omar_sigma: float = param(2.0, "initial std of the search distribution", bounds="(0, inf)")
    search: str = param("softmax", "search update: softmax (OMAR's particle tasks) or cem "
                                   "(its MaMuJoCo branch: elites' mean and std)",
                        choices=SEARCHES)
    omar_elites: int = param(5, "elites kept per iteration by the cem search", bounds="[1, inf)")

    def __post_init__(self):
        if self.search == "cem" and not 1 <= self.omar_elites <= self.omar_samples:
            raise FieldError("omar_elites", f"must be in [1, omar_samples = {self.omar_samples}] "
                                            f"for search='cem', got {self.omar_elites}")


def search_actions(critic_q1, obs: Tensor, act_mask: Tensor, cfg: OMARConfig,
                   generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Softmax-weighted sampling search of each agent's Q_1 for every observation.

    critic_q1(obs [B', n, obs_max], actions [B', n, act_max]) -> [n, B'];
    returns the best sample of the last iteration [B, n, act_max] and its Q value [n, B]."""
    batch, n, act_max = obs.shape[0], act_mask.shape[0], act_mask.shape[1]
    k = cfg.omar_samples
    mask = act_mask.to(obs)
    mu = torch.full((batch, n, act_max), cfg.omar_mu, dtype=obs.dtype, device=obs.device)
    sigma = torch.full_like(mu, cfg.omar_sigma)
    obs_k = repeat_rows(obs, k)
    elites = elite_q = None
    with torch.no_grad():
        for _ in range(cfg.omar_iters):
            z = distributed.draw_rows(torch.randn, (batch, k, n, act_max), 0, generator=generator,
                                      device=obs.device)
            samples = ((mu[:, None] + sigma[:, None] * z).clamp(-1.0, 1.0)) * mask
            q = critic_q1(obs_k, samples.reshape(batch * k, n, act_max))  # [n, B * k]
            q = q.view(n, batch, k).permute(1, 2, 0)                          # [B, k, n]
            if cfg.search == "softmax":
                w = torch.softmax(q, dim=1)
                mu = (w[..., None] * samples).sum(dim=1)
                sigma = ((samples - mu[:, None]) ** 2).mean(dim=1).sqrt()
                continue
            if elites is not None:   # last iteration's elites compete again
                samples, q = torch.cat([samples, elites], 1), torch.cat([q, elite_q], 1)
            elite_q, top = q.topk(cfg.omar_elites, dim=1)                     # [B, e, n]
            elites = samples.gather(1, top[..., None].expand(-1, -1, -1, act_max))
            mu, sigma = elites.mean(dim=1), elites.std(dim=1)     # unbiased, as OMAR's torch.std
        best_q, best = q.max(dim=1)                                           # [B, n]
        index = best[:, None, :, None].expand(batch, 1, n, act_max)
        best_actions = samples.gather(1, index)[:, 0]
    return best_actions, best_q.t()


class OMARStage(CQLStage):
    name = "omar"

    def actor_objective(self, batch: Batch, pi: Tensor, generator: torch.Generator):
        cfg, critic = self.cfg, self.model.critic
        q_pi = critic.q1(batch.obs, pi)                                       # [n, B]
        searched, q_searched = search_actions(critic.q1, batch.obs, self.spec.act_mask(), cfg,
                                              generator)
        # OMAR keeps the policy's own action when it is at least as good (torch.max picks the
        # first of equal candidates, and the policy's comes first).
        keep = (q_pi.detach() >= q_searched).t()[..., None]                   # [B, n, 1]
        target = torch.where(keep, pi.detach(), searched)
        mimic = action_mse(pi, target, self.spec)
        loss = (cfg.coe * mimic - (1.0 - cfg.coe) * q_pi.mean(dim=1)).sum()
        return loss, {"actor_q": q_pi.mean().detach(), "mimic": mimic.sum().detach(),
                      "searched_q": q_searched.mean(), "kept": keep.float().mean()}


register("omar", OMARConfig, OMARStage,
         "MA-CQL critics + actor rectification by sampling search (Pan et al. 2022)")
