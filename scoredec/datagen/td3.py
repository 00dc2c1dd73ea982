"""Online TD3 that trains the MaMuJoCo behaviour policies the dataset factory replays (issue 4).

    from scoredec.datagen.td3 import train_behaviour_policy
    train_behaviour_policy("halfcheetah-2x3", "~/.cache/scoredec/behaviour/halfcheetah-2x3/train",
                           total_steps=1_000_000, seed=0, budget_steps=50_000)

    python -m scoredec.datagen.td3 halfcheetah-2x3 --out DIR --total-steps 1000000 [--budget-steps N]

Why here (scoredec/datagen/, beside the factory) and not a ``behaviour`` package: these
policies exist only to make datasets, so they belong to the generators; ``scoredec/behavior.py``
is stage 1a (the behaviour *score models* learned offline), and a package one letter away would
be read as part of it.

Algorithm: plain TD3 (Fujimoto et al. 2018, the hyperparameters of its paper, in
:class:`TD3Config`) on the *global* state (the single-agent MuJoCo observation) and the joint
action, whose columns are split into the agents' actions by the env's partition. This is the
simplest learner that reaches the issue's target (expert >= 3000 on HalfCheetah 2x3) on two CPU
cores: MATD3's decentralized actors see only their own 6 joint readings (no body velocity), which
makes the same return slower and less certain to reach. The offline learners never see this
policy, only its data, and the data store each agent's local observation as MaMuJoCo defines it
(plus the global state in the optional ``state`` field), as in the OMAR datasets.

Exact resume: every random number comes from one ``torch.Generator`` (exploration noise, replay
indices, target-policy noise, episode reset seeds), the networks are initialized under a fork of
the global RNG seeded with ``seed``, and a checkpoint (scoredec.checkpoint: safetensors + JSON)
holds networks, targets, optimizers, generators, the filled part of the replay buffer and the
exact MuJoCo state of the running episode. A run stopped anywhere (``budget_steps``) and resumed
gives bitwise the same weights as an uninterrupted one, at the same thread count (``num_threads``,
default 1: CPU matmul results depend on how work is split over threads).

Snapshots: every ``eval_every`` steps the deterministic actor is evaluated on ``eval_episodes``
fixed-seed episodes and saved, with its return, as ``<cache>/<task>/snapshots/step-XXXXXXXX``
(.safetensors + .json), listed in ``<cache>/<task>/index.json``. ``<cache>`` is
``$SCOREDEC_CACHE/behaviour`` or ``~/.cache/scoredec/behaviour``. :func:`behaviour_policies`
picks the expert (best return) and medium (return closest to half of the expert's) from the
index; the factory replays them and, for medium-replay, the whole sequence up to medium.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from scoredec.checkpoint import (
    CheckpointError,
    checkpoint_paths,
    is_complete,
    load_checkpoint,
    save_checkpoint,
)
from scoredec.io import atomic_write_json

__all__ = [
    "TD3Config",
    "JointActionMap",
    "Actor",
    "Critic",
    "cache_dir",
    "train_behaviour_policy",
    "load_snapshot",
    "behaviour_policies",
    "BehaviourPolicies",
    "EXPERT_TARGET",
    "main",
]

log = logging.getLogger(__name__)

EXPERT_TARGET = {"halfcheetah-2x3": 3000.0}
"""Issue 4: expert return at least this much (the published expert is 3568.81)."""
MEDIUM_FRACTION = 0.5
"""Medium = the snapshot whose return is closest to this fraction of the expert's."""
EVAL_SEED = 1_000_003
"""Evaluation episodes start from the same states every time (offset by the run's seed)."""
CHECKPOINT_PREFIX = "td3-"


@dataclass(frozen=True)
class TD3Config:
    """TD3 hyperparameters (Fujimoto et al. 2018, Table 3) and the run's bookkeeping."""

    hidden: int = 256
    """Width of the two hidden layers of actor and critics."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """Std of the target-policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target-policy smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor (and target) update."""
    expl_noise: float = 0.1
    """Std of the Gaussian exploration noise on the actor's action."""
    start_steps: int = 10_000
    """Uniform random actions (and no updates) for the first steps."""
    buffer_size: int = 1_000_000
    """Replay capacity (oldest transitions are overwritten)."""
    eval_every: int = 5_000
    """Steps between evaluations (each one saves an actor snapshot; the medium level is picked
    among them, so this is its resolution)."""
    eval_episodes: int = 5
    """Deterministic-policy episodes per evaluation, run as one batch."""
    checkpoint_every: int = 10_000
    """Steps between resumable checkpoints (and one when a budget ends)."""
    episode_length: int = 1000
    """Time limit of training and evaluation episodes."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"TD3Config.{f.name} must be a finite non-negative number, got {v!r}")
        for name in ("hidden", "batch_size", "policy_delay", "buffer_size", "eval_every",
                     "eval_episodes", "checkpoint_every", "episode_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"TD3Config.{name} must be >= 1, got {getattr(self, name)!r}")


# --------------------------------------------------------------------------- networks


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


class Actor(nn.Module):
    """state [B, state_dim] -> joint action [B, sum(act_dims)] in [-1, 1]."""

    def __init__(self, state_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.net = _mlp(state_dim, hidden, act_dim)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(state))


class Critic(nn.Module):
    """Twin Q: (state [B, S], joint action [B, A]) -> (q1 [B], q2 [B])."""

    def __init__(self, state_dim: int, act_dim: int, hidden: int):
        super().__init__()
        self.q1 = _mlp(state_dim + act_dim, hidden, 1)
        self.q2 = _mlp(state_dim + act_dim, hidden, 1)

    def forward(self, state: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([state, action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class _Tensors(nn.Module):
    """A bag of named buffers, so that the checkpoint module machinery stores them."""

    def __init__(self, **tensors: torch.Tensor):
        super().__init__()
        for k, v in tensors.items():
            self.register_buffer(k, v)


# --------------------------------------------------------------------------- helpers


def cache_dir(task: str | None = None) -> Path:
    """``$SCOREDEC_CACHE/behaviour[/task]``, default ``~/.cache/scoredec/behaviour[/task]``."""
    root = os.environ.get("SCOREDEC_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "scoredec"
    base = base / "behaviour"
    return base / task if task else base


class JointActionMap:
    """Joint action [B, sum(d_i)] <-> per-agent padded actions [B, n, act_max]."""

    def __init__(self, act_dims: tuple[int, ...], act_max: int):
        self.act_dims = act_dims
        self.act_max = act_max
        self.joint = sum(act_dims)

    def split(self, joint: torch.Tensor) -> torch.Tensor:
        out = joint.new_zeros(joint.shape[0], len(self.act_dims), self.act_max)
        start = 0
        for i, d in enumerate(self.act_dims):
            out[:, i, :d] = joint[:, start:start + d]
            start += d
        return out

    def join(self, per_agent: torch.Tensor) -> torch.Tensor:
        return torch.cat([per_agent[:, i, :d] for i, d in enumerate(self.act_dims)], dim=-1)


def _make_env(task: str, num_envs: int, episode_length: int):
    from scoredec.envs.mamujoco import MaMuJoCoEnv

    return MaMuJoCoEnv(task, num_envs, episode_length=episode_length)


@torch.no_grad()
def _evaluate(actor: Actor, env, amap: JointActionMap, seed: int) -> np.ndarray:
    """Returns of the deterministic actor over env.num_envs fixed-seed episodes: [E] float64."""
    env.reset(seed=seed)
    state = env.state()
    total = torch.zeros(env.num_envs, dtype=torch.float64)
    while True:
        _, rew, done, info = env.step(amap.split(actor(state)))
        total += rew[:, 0].double()
        state = info["state"]
        if bool(done.all()):
            return total.numpy()


def _latest_checkpoint(out_dir: Path) -> Path | None:
    stems = sorted(p.with_suffix("") for p in out_dir.glob(f"{CHECKPOINT_PREFIX}*.json"))
    complete = [s for s in stems if re.fullmatch(rf"{CHECKPOINT_PREFIX}\d+", s.name) and is_complete(s)]
    return complete[-1] if complete else None


def _read_meta(stem: Path) -> dict:
    _, json_path = checkpoint_paths(stem)
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))["meta"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{json_path}: unreadable checkpoint meta: {e}") from e


# --------------------------------------------------------------------------- training


def train_behaviour_policy(
    task: str,
    out_dir: str | os.PathLike,
    total_steps: int,
    *,
    seed: int = 0,
    budget_steps: int | None = None,
    config: TD3Config | None = None,
    cache: str | os.PathLike | None = None,
    num_threads: int | None = 1,
) -> dict[str, Any]:
    """Train (or resume) TD3 on ``task`` until ``total_steps`` env steps, or until this call
    has run ``budget_steps`` more steps; checkpoint into ``out_dir`` and resume from its latest
    checkpoint. Actor snapshots go to ``cache`` (default :func:`cache_dir` of the task).

    Returns a summary: ``step``, ``finished``, ``evaluations`` (list of {step, return_mean,
    return_std}), ``train_seconds`` (all calls together) and this call's ``steps_per_second``.
    A checkpoint made with another task, seed or config is refused (CheckpointError).
    """
    cfg = config or TD3Config()
    for name, v in (("total_steps", total_steps), ("budget_steps", budget_steps)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    snap_dir = Path(cache).expanduser() if cache is not None else cache_dir(task)
    identity = {"task": task, "seed": int(seed), "config": dataclasses.asdict(cfg)}

    env = _make_env(task, 1, cfg.episode_length)
    eval_env = _make_env(task, cfg.eval_episodes, cfg.episode_length)
    amap = JointActionMap(env.act_dims, env.act_dim)
    S, A = env.state_dim, amap.joint

    # Seed first: the networks are drawn from the run's seed, under a fork of the global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        actor = Actor(S, A, cfg.hidden)
        critic = Critic(S, A, cfg.hidden)
    actor_t = Actor(S, A, cfg.hidden)
    critic_t = Critic(S, A, cfg.hidden)
    actor_t.load_state_dict(actor.state_dict())
    critic_t.load_state_dict(critic.state_dict())
    for p in (*actor_t.parameters(), *critic_t.parameters()):
        p.requires_grad_(False)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=cfg.actor_lr)
    critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    gen = torch.Generator().manual_seed(seed)

    cap = cfg.buffer_size
    buf = {
        "state": torch.zeros(cap, S), "action": torch.zeros(cap, A), "reward": torch.zeros(cap),
        "next_state": torch.zeros(cap, S), "not_done": torch.zeros(cap),
    }
    meta: dict[str, Any] = {**identity, "step": 0, "updates": 0, "replay_size": 0, "replay_ptr": 0,
                            "episodes": 0, "episode_return": 0.0, "episode_returns": [],
                            "evaluations": [], "train_seconds": 0.0}

    stem = _latest_checkpoint(out)
    if stem is not None:
        saved = _read_meta(stem)
        for key, want in identity.items():
            if saved.get(key) != json.loads(json.dumps(want)):
                raise CheckpointError(
                    f"{stem}: made with {key}={saved.get(key)!r}, this run has {key}={want!r}; "
                    "use another out_dir"
                )
        size = int(saved["replay_size"])
        replay = _Tensors(**{k: torch.zeros(size, *v.shape[1:]) for k, v in buf.items()})
        env_bag = _Tensors(**{k: torch.zeros(v.shape, dtype=v.dtype) for k, v in
                              _env_tensors(_dummy_env_state(env)).items()})
        meta = load_checkpoint(
            stem, modules={"actor": actor, "critic": critic, "actor_target": actor_t,
                           "critic_target": critic_t, "replay": replay, "env": env_bag},
            optimizers={"actor": actor_opt, "critic": critic_opt},
            generators={"td3": gen, "env": env.generator}, global_rng=False,
        )
        for k in buf:
            buf[k][:size] = getattr(replay, k)
        env.set_state({k: getattr(env_bag, k).numpy() for k in ("mj", "t", "done", "obs", "state")})
        log.info("%s: resumed from %s at step %d", task, stem.name, meta["step"])
    else:
        env.reset(seed=gen)
    state = env.state()

    step = int(meta["step"])
    stop = total_steps if budget_steps is None else min(total_steps, step + budget_steps)
    start_step, t0 = step, time.perf_counter()
    train_base = float(meta["train_seconds"])

    def save(step: int) -> None:
        size = int(meta["replay_size"])
        meta["train_seconds"] = round(train_base + time.perf_counter() - t0, 3)
        replay = _Tensors(**{k: v[:size] for k, v in buf.items()})
        env_bag = _Tensors(**_env_tensors(env.get_state()))
        new = out / f"{CHECKPOINT_PREFIX}{step:09d}"
        save_checkpoint(
            new, modules={"actor": actor, "critic": critic, "actor_target": actor_t,
                          "critic_target": critic_t, "replay": replay, "env": env_bag},
            optimizers={"actor": actor_opt, "critic": critic_opt},
            generators={"td3": gen, "env": env.generator}, global_rng=False, meta=meta,
        )
        for old in out.glob(f"{CHECKPOINT_PREFIX}*"):  # keep only the newest complete one
            if old.name.split(".")[0] != new.name:
                old.unlink()

    while step < stop:
        if step < cfg.start_steps:
            action = torch.rand(1, A, generator=gen) * 2.0 - 1.0
        else:
            with torch.no_grad():
                action = actor(state) + cfg.expl_noise * torch.randn(1, A, generator=gen)
            action = action.clamp(-1.0, 1.0)
        _, rew, done, info = env.step(amap.split(action))
        next_state = info["state"]
        ptr = int(meta["replay_ptr"])
        buf["state"][ptr] = state[0]
        buf["action"][ptr] = action[0]
        buf["reward"][ptr] = rew[0, 0]
        buf["next_state"][ptr] = next_state[0]
        buf["not_done"][ptr] = 0.0 if bool(info["terminated"][0]) else 1.0  # time limits bootstrap
        meta["replay_ptr"] = (ptr + 1) % cap
        meta["replay_size"] = min(int(meta["replay_size"]) + 1, cap)
        meta["episode_return"] = float(meta["episode_return"]) + float(rew[0, 0])
        step += 1
        meta["step"] = step
        if bool(done[0]):
            meta["episodes"] += 1
            meta["episode_returns"] = (meta["episode_returns"] + [round(meta["episode_return"], 3)])[-100:]
            meta["episode_return"] = 0.0
            env.reset_envs([0], gen)
            next_state = env.state()
        state = next_state

        if step >= cfg.start_steps:
            _update(cfg, meta, buf, gen, actor, critic, actor_t, critic_t, actor_opt, critic_opt)

        if step % cfg.eval_every == 0:
            returns = _evaluate(actor, eval_env, amap, EVAL_SEED + seed)
            record = {"step": step, "return_mean": float(returns.mean()),
                      "return_std": float(returns.std()),
                      "train_seconds": round(train_base + time.perf_counter() - t0, 3)}
            meta["evaluations"] = meta["evaluations"] + [record]
            _save_snapshot(snap_dir, actor, env, identity, record, meta["evaluations"])
            sps = (step - start_step) / max(time.perf_counter() - t0, 1e-9)
            log.info("%s step %d: eval return %.1f +- %.1f, last train episodes %s, %.0f steps/s",
                     task, step, record["return_mean"], record["return_std"],
                     meta["episode_returns"][-3:], sps)
        if step % cfg.checkpoint_every == 0 or step == stop:
            save(step)

    elapsed = time.perf_counter() - t0
    return {"step": step, "finished": step >= total_steps, "evaluations": meta["evaluations"],
            "train_seconds": round(train_base + elapsed, 3),
            "steps_per_second": (step - start_step) / elapsed if step > start_step else 0.0,
            "actor": actor}


def _update(cfg, meta, buf, gen, actor, critic, actor_t, critic_t, actor_opt, critic_opt) -> None:
    """One TD3 gradient step on a uniform minibatch (Fujimoto et al. 2018, Algorithm 1)."""
    size = int(meta["replay_size"])
    idx = torch.randint(0, size, (cfg.batch_size,), generator=gen)
    s, a, r = buf["state"][idx], buf["action"][idx], buf["reward"][idx]
    s2, nd = buf["next_state"][idx], buf["not_done"][idx]
    with torch.no_grad():
        noise = (cfg.policy_noise * torch.randn(a.shape, generator=gen)).clamp(-cfg.noise_clip, cfg.noise_clip)
        a2 = (actor_t(s2) + noise).clamp(-1.0, 1.0)
        q1_t, q2_t = critic_t(s2, a2)
        target = r + cfg.gamma * nd * torch.minimum(q1_t, q2_t)
    q1, q2 = critic(s, a)
    critic_loss = (q1 - target).square().mean() + (q2 - target).square().mean()
    critic_opt.zero_grad(set_to_none=True)
    critic_loss.backward()
    critic_opt.step()
    meta["updates"] = int(meta["updates"]) + 1
    if meta["updates"] % cfg.policy_delay == 0:
        actor_loss = -critic.q1(torch.cat([s, actor(s)], dim=-1)).mean()  # Q1 only (TD3)
        actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_opt.step()
        with torch.no_grad():
            for net, tgt in ((actor, actor_t), (critic, critic_t)):
                for p, pt in zip(net.parameters(), tgt.parameters()):
                    pt.lerp_(p, cfg.tau)


def _env_tensors(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.asarray(state[k])) for k in ("mj", "t", "done", "obs", "state")}


def _dummy_env_state(env) -> dict[str, Any]:
    return {"mj": np.zeros((env.num_envs, env._mj_state_size)), "t": np.zeros(env.num_envs, np.int64),
            "done": np.zeros(env.num_envs, bool),
            "obs": np.zeros((env.num_envs, env.n_agents, env.obs_dim), np.float32),
            "state": np.zeros((env.num_envs, env.state_dim), np.float32)}


# --------------------------------------------------------------------------- snapshots


def _save_snapshot(snap_dir: Path, actor: Actor, env, identity: dict, record: dict,
                   evaluations: list[dict]) -> None:
    index_path = snap_dir / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("run") != json.loads(json.dumps(identity)):
            raise CheckpointError(
                f"{index_path}: belongs to another training run ({index.get('run', {}).get('seed')!r} "
                f"seed); move it away or set SCOREDEC_CACHE"
            )
    name = f"step-{record['step']:09d}"
    meta = {**identity, **record, "state_dim": env.state_dim, "act_dims": list(env.act_dims),
            "act_max": env.act_dim, "obs_dims": list(env.obs_dims), "actor_inputs": "state"}
    save_checkpoint(snap_dir / "snapshots" / name, modules={"actor": actor}, global_rng=False, meta=meta)
    atomic_write_json(index_path, {
        "run": identity,
        "snapshots": [{**e, "stem": f"snapshots/step-{e['step']:09d}"} for e in evaluations],
    })


def load_snapshot(stem: str | os.PathLike) -> tuple[Actor, dict]:
    """An actor snapshot (``.../snapshots/step-XXXXXXXXX``) and its meta."""
    meta = _read_meta(Path(stem))
    hidden = int(meta["config"]["hidden"])
    actor = Actor(int(meta["state_dim"]), int(sum(meta["act_dims"])), hidden)
    load_checkpoint(stem, modules={"actor": actor}, global_rng=False)
    actor.eval()
    return actor, meta


@dataclass(frozen=True)
class BehaviourPolicies:
    """The cached snapshots of one task, with the levels the factory replays."""

    root: Path
    snapshots: tuple[dict, ...]
    """Every evaluation: {step, return_mean, return_std, train_seconds, stem}, by step."""
    expert: dict
    """The snapshot with the highest return."""
    medium: dict
    """The snapshot up to the expert's step whose return is closest to MEDIUM_FRACTION of it."""

    def stem(self, entry: dict) -> Path:
        return self.root / entry["stem"]

    @property
    def replay(self) -> tuple[dict, ...]:
        """The snapshots from the first to medium, in training order (medium-replay)."""
        return tuple(s for s in self.snapshots if s["step"] <= self.medium["step"])


def behaviour_policies(task: str, cache: str | os.PathLike | None = None) -> BehaviourPolicies:
    """Read ``<cache>/<task>/index.json``; FileNotFoundError telling how to train if absent."""
    root = Path(cache).expanduser() if cache is not None else cache_dir(task)
    index_path = root / "index.json"
    if not index_path.is_file():
        raise FileNotFoundError(
            f"no behaviour policies for {task!r} in {root}: train them first with "
            f"`scoredec data train-behaviour {task}` (resumable; --budget-steps N splits it into "
            "sittings; SCOREDEC_CACHE moves the cache)"
        )
    index = json.loads(index_path.read_text(encoding="utf-8"))
    snaps = tuple(sorted(index["snapshots"], key=lambda e: e["step"]))
    if not snaps:
        raise FileNotFoundError(f"{index_path}: lists no snapshots yet; train longer")
    expert = max(snaps, key=lambda e: (e["return_mean"], -e["step"]))
    goal = MEDIUM_FRACTION * expert["return_mean"]
    medium = min((s for s in snaps if s["step"] <= expert["step"]),
                 key=lambda e: (abs(e["return_mean"] - goal), e["step"]))
    return BehaviourPolicies(root, snaps, expert, medium)


# --------------------------------------------------------------------------- command


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scoredec.datagen.td3",
                                description="Train (or resume) a MaMuJoCo behaviour policy with TD3.")
    p.add_argument("task", help="MaMuJoCo task, e.g. halfcheetah-2x3")
    p.add_argument("--out", required=True, help="checkpoint directory (resumes from it)")
    p.add_argument("--total-steps", type=int, default=1_000_000, help="env steps of the whole run")
    p.add_argument("--budget-steps", type=int, default=None, help="stop this call after N more steps")
    p.add_argument("--seed", type=int, default=0, help="run seed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    summary = train_behaviour_policy(args.task, args.out, args.total_steps, seed=args.seed,
                                     budget_steps=args.budget_steps)
    last = (summary["evaluations"] or [None])[-1]
    log.info("%s: step %d (finished: %s), %.1f steps/s in this call, %.0f s in all; last eval %s",
             args.task, summary["step"], summary["finished"], summary["steps_per_second"],
             summary["train_seconds"], last)


if __name__ == "__main__":
    main()
