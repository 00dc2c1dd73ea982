"""What every baseline shares: its config fields, its run, per-agent twin critics, stacked updates.

A baseline is one Stage (scoredec.training) that owns decentralized Actors plus whatever it
trains beside them (critics, target copies). `train_baseline` hands it to pipeline.drive, the
driver of every method: it seeds before any network is built, runs the stage through run_stage
with RunDir checkpoints (so a stopped run resumes bit-exactly), and saves the final actors with
pipeline.save_actors.

All n agents' networks are stacks (scoredec.nets.StackedMLP): one launch per layer for all
agents. Per-agent losses are summed before one Adam step; Adam acts elementwise and each
agent's loss touches only its own slice of the stack, so this is exactly n separate updates.
Gradient-norm clipping is the one place where a stack would couple agents: it is done per
model group (`clip_grad_norm_per_model`), as the public code clips each agent's network.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

from scoredec import distributed
from scoredec.actors import Actors, squared_error
from scoredec.config import config_to_dict, param
from scoredec.data.tensors import Batch
from scoredec.layout import AgentSpec, to_models
from scoredec.registry import MethodEntry, config_with, register_method
from scoredec.nets import StackedBatchNorm, StackedMLP
from scoredec.periodic_eval import PeriodicEval
from scoredec.pipeline import RunConfig, StagePlan, drive, open_run, save_actors
from scoredec.training import Stage

REWARDS = ("team", "own")


@dataclass
class BaselineConfig(RunConfig):
    """Fields every baseline run has (each method's config extends this). The defaults are
    CORL's (TD3+BC, IQL); a method with other published defaults sets them with `with_default`."""

    critic_hidden: int = param(256, "critic MLP width", bounds="[1, inf)")
    critic_layers: int = param(2, "critic MLP hidden layers", bounds="[1, inf)")
    actor_hidden: int = param(256, "actor MLP width", bounds="[1, inf)")
    actor_layers: int = param(2, "actor MLP hidden layers", bounds="[1, inf)")
    critic_lr: float = param(3e-4, "Adam learning rate of the critics", bounds="(0, inf)")
    actor_lr: float = param(3e-4, "Adam learning rate of the actors", bounds="(0, inf)")
    batch_size: int = param(256, "transitions per step", bounds="[1, inf)")
    steps: int = param(100_000, "training steps: critic steps, each with its actor step unless "
                                "the method delays them", bounds="[1, inf)")
    gamma: float = param(0.99, "discount", bounds="[0, 1]")
    polyak: float = param(0.005, "target network update rate", bounds="(0, 1]")


def with_default(name: str, value, cls: type = BaselineConfig):
    """Field `name` of config class cls (its type and help) with another default: for a
    method whose published default differs, or a field that mirrors another config's."""
    base = {f.name: f for f in dataclasses.fields(cls)}[name]
    return dataclasses.field(default=value, metadata=base.metadata)


@dataclass
class ActorCriticConfig(BaselineConfig):
    """Baselines with per-agent twin critics (ActorCritic): MA-TD3+BC, MA-CQL, OMAR."""

    reward: str = param("team", "reward of every agent's critic: team (agent 0's column) or own",
                        choices=REWARDS)


# --------------------------------------------------------------------------- run skeleton

def train_baseline(method: str, cfg: BaselineConfig, data_path: str | Path, run_dir: str | Path,
                   make_stage: Callable[[AgentSpec, BaselineConfig], Stage], *,
                   progress: bool = True, budget: int | None = None,
                   resume: bool = False, evaluation: PeriodicEval | None = None,
                   allow_data_change: bool = False) -> Path:
    """Train one baseline into run_dir and leave its actors as <run>/actors.*.

    make_stage(spec, cfg) builds the stage (on the CPU; it is moved to the device here); the
    stage exposes `.actors` (scoredec.actors.Actors). Run by pipeline.drive as one stage seeded
    with cfg.seed: a finished run is skipped; a run with checkpoints needs resume=True.
    budget: at most that many steps in this call; evaluation: the actors' score every K steps;
    allow_data_change: reopen the run on a dataset whose content changed."""
    with open_run(data_path, run_dir, {"method": method, "train": config_to_dict(cfg)},
                  cfg.device, batch_sizes={"batch_size": cfg.batch_size},
                  allow_data_change=allow_data_change) as opened:

        def build() -> tuple[Stage, Callable[[], None]]:
            stage = make_stage(opened.data.spec, cfg)
            for module in stage.modules.values():
                module.to(opened.device)
            meta = {**opened.origin, "method": method, "config": config_to_dict(cfg)}
            return stage, lambda: save_actors(opened.path, stage.actors, meta)

        return drive(opened, cfg, [StagePlan("policy", cfg.seed, build)], resume=resume,
                     progress=progress, budget=budget, desc=method, evaluation=evaluation)


def register(name: str, config_cls: type, make_stage, description: str) -> MethodEntry:
    """Register a decentralized baseline under `name` with the suite's train interface."""
    def train(data_path, run_dir, *, seed, overrides, progress=True, budget=None, resume=False,
              evaluation=None, allow_data_change=False):
        cfg = config_with(config_cls, overrides, seed=seed)
        return train_baseline(name, cfg, data_path, run_dir, make_stage, progress=progress,
                              budget=budget, resume=resume, evaluation=evaluation,
                              allow_data_change=allow_data_change)
    return register_method(MethodEntry(name, train, centralized=False, description=description,
                                       config=config_cls))


# --------------------------------------------------------------------------- networks

class AgentTwinQ(nn.Module):
    """n per-agent critics, each twin Q heads on (o_i, a_i), in one stack of 2n MLPs.

    Model 2i + h is head h of agent i (agent-major, so a gradient's leading dim reshapes to
    [n, -1] per agent). input_norm: a BatchNorm on each head's input (OMAR's critics). In
    training mode it normalizes with the statistics of the batch it is called on, so an actor
    that moves every action of a batch the same way gains nothing from it."""

    def __init__(self, spec: AgentSpec, hidden: int, layers: int, input_norm: bool = False):
        super().__init__()
        self.n = spec.n_agents
        width = spec.obs_max + spec.act_max
        mask = torch.cat([spec.obs_mask(), spec.act_mask()], dim=1).repeat_interleave(2, dim=0)
        self.norm = StackedBatchNorm(2 * self.n, width) if input_norm else None
        self.q = StackedMLP(2 * self.n, width, (hidden,) * layers, 1, in_mask=mask)

    def _inputs(self, obs: Tensor, actions: Tensor) -> Tensor:
        order = tuple(range(self.n))
        return torch.cat([to_models(obs, False, order), to_models(actions, False, order)], dim=-1)

    def _q(self, x: Tensor, models: slice = slice(None)) -> Tensor:
        if self.norm is not None:
            x = self.norm(x, models)
        return self.q(x, models=models)[..., 0]

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """obs [B, n, obs_max], actions [B, n, act_max] -> twin Q [n, 2, B]."""
        x = self._inputs(obs, actions).repeat_interleave(2, dim=0)
        return self._q(x).view(self.n, 2, -1)

    def q1(self, obs: Tensor, actions: Tensor) -> Tensor:
        """The first head only (what the public TD3/OMAR actors maximize): [n, B]."""
        return self._q(self._inputs(obs, actions), models=slice(0, None, 2))


class ActorCritic(nn.Module):
    """Decentralized actors, per-agent twin critics and their Polyak target copies, plus an
    update counter (checkpointed with the weights, so delayed updates resume exactly)."""

    def __init__(self, spec: AgentSpec, actor_hidden: int, actor_layers: int,
                 critic_hidden: int, critic_layers: int, critic_input_norm: bool = False,
                 actor_input_norm: bool = False):
        super().__init__()
        self.spec = spec
        self.actors = Actors(spec, "decentralized", actor_hidden, actor_layers,
                             input_norm=actor_input_norm)
        self.critic = AgentTwinQ(spec, critic_hidden, critic_layers, input_norm=critic_input_norm)
        self.actors_target = copy.deepcopy(self.actors).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))

    @torch.no_grad()
    def update_targets(self, polyak: float, actors: bool = True) -> None:
        pairs = [(self.critic_target, self.critic)]
        if actors:
            pairs.append((self.actors_target, self.actors))
        for target, source in pairs:
            torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), polyak)


class ActorCriticStage(Stage):
    """A baseline stage over an ActorCritic (MA-TD3+BC, MA-CQL, OMAR): one Adam for the
    critics, one for the actors, no schedule. model_options: ActorCritic's input norms."""

    def __init__(self, spec: AgentSpec, cfg: ActorCriticConfig, **model_options):
        self.cfg, self.spec = cfg, spec
        self.model = ActorCritic(spec, cfg.actor_hidden, cfg.actor_layers, cfg.critic_hidden,
                                 cfg.critic_layers, **model_options)
        self.actors = self.model.actors
        self.batch_size, self.steps = cfg.batch_size, cfg.steps
        self.modules = {"model": self.model}
        self.optimizers = {
            "critic": torch.optim.Adam(self.model.critic.parameters(), lr=cfg.critic_lr),
            "actors": torch.optim.Adam(self.actors.parameters(), lr=cfg.actor_lr)}
        self.schedulers = {}


# --------------------------------------------------------------------------- shared pieces

def agent_rewards(batch: Batch, which: str) -> Tensor:
    """[n, B]: the team reward (agent 0's column, as the joint critic uses) for every agent,
    or each agent's own column."""
    if which == "team":
        return batch.rewards[:, :1].t().expand(batch.rewards.shape[1], -1)
    if which == "own":
        return batch.rewards.t()
    raise ValueError(f"reward must be one of {REWARDS}, got {which!r}")


def td_target(model: ActorCritic, batch: Batch, rewards: Tensor, gamma: float, *,
              noise_std: float = 0.0, noise_clip: float = 0.0,
              generator: torch.Generator | None = None) -> Tensor:
    """r + gamma (1 - d) min_h Q'_h(o'_i, pi'_i(o'_i) + clipped noise): [n, B], no graph.

    noise_std > 0 is TD3's target policy smoothing."""
    with torch.no_grad():
        a_next = model.actors_target(batch.next_obs)
        if noise_std > 0:
            noise = distributed.draw_rows(torch.randn, a_next.shape, 0, generator=generator,
                                          device=a_next.device)
            noise = (noise * noise_std).clamp(-noise_clip, noise_clip)
            a_next = (a_next + noise).clamp(-1.0, 1.0) * model.actors.out_mask.transpose(0, 1)
        q_next = model.critic_target(batch.next_obs, a_next).min(dim=1).values
        return rewards + gamma * (1.0 - batch.terminals)[None] * q_next


def twin_td_loss(q: Tensor, target: Tensor) -> Tensor:
    """q [n, 2, B], target [n, B] -> sum over agents of (MSE head 1 + MSE head 2)."""
    return ((q - target[:, None]) ** 2).mean(dim=2).sum()


def action_mse(actions: Tensor, targets: Tensor, spec: AgentSpec) -> Tensor:
    """Per-agent mean squared error over the batch and the agent's own action dims: [n]
    (F.mse_loss of each agent, padding excluded)."""
    mask = spec.act_mask().to(actions)
    return squared_error(actions, targets, mask).sum(dim=(0, 2)) / (actions.shape[0] * mask.sum(1))


@torch.no_grad()
def clip_grad_norm_per_model(params, groups: int, max_norm: float) -> Tensor:
    """clip_grad_norm_ applied to each of `groups` model groups of stacked parameters (leading
    dim divisible by groups, agent-major): the public code clips each agent's network alone.
    Returns the per-group norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    sq = sum(g.reshape(groups, -1).pow(2).sum(dim=1) for g in grads)
    norms = sq.sqrt()
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)  # torch.nn.utils.clip_grad_norm_'s rule
    for g in grads:
        g.view(groups, -1).mul_(scale[:, None])
    return norms


def step_optimizer(optimizer: torch.optim.Optimizer, loss: Tensor, *, groups: int = 1,
                   max_norm: float | None = None, scheduler=None) -> None:
    """zero_grad, backward, optional per-model gradient clipping, step (several processes:
    the gradients are averaged before they are clipped)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    distributed.average_gradients(optimizer)
    if max_norm is not None:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        clip_grad_norm_per_model(params, groups, max_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
