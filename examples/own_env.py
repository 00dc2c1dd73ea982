"""Your own environment, end to end: record a dataset from your episodes, train, evaluate.

Run: python examples/own_env.py  (writes own.h5 and runs/own/ in the working directory;
tiny sizes, seconds on a CPU). Then, from the command line:
    scoredec evaluate runs/own --env examples/own_env.py:make_env --episodes 20
"""

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from scoredec.data import write_dataset
from scoredec.data.recorder import EpisodeRecorder
from scoredec.envs.parallel import action_from_env
from scoredec.evaluation import evaluate_env
from scoredec.pipeline import BehaviorConfig, CriticConfig, PolicyConfig, TrainConfig, train


class Rendezvous(ParallelEnv):
    """Two robots on a plane walk to a shared goal; each sees itself and the goal, the drone
    also sees the rover. Actions: 2-d steps in [-0.2, 0.2]. 20 steps per episode."""

    metadata = {"name": "rendezvous_v0"}

    def __init__(self):
        self.possible_agents = ["rover", "drone"]
        self.agents = []
        obs_sizes = {"rover": 4, "drone": 6}
        self._obs = {a: spaces.Box(-np.inf, np.inf, (obs_sizes[a],), np.float32)
                     for a in self.possible_agents}
        self._act = {a: spaces.Box(-0.2, 0.2, (2,), np.float32) for a in self.possible_agents}

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self):
        rover, drone, goal = self.pos["rover"], self.pos["drone"], self.goal
        return {"rover": np.concatenate([rover, goal]).astype(np.float32),
                "drone": np.concatenate([drone, goal, rover]).astype(np.float32)}

    def reset(self, seed=None, options=None):
        rng = np.random.default_rng(seed)
        self.pos = {a: rng.uniform(-1, 1, 2) for a in self.possible_agents}
        self.goal, self.t = rng.uniform(-1, 1, 2), 0
        self.agents = list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        for a, u in actions.items():
            self.pos[a] = self.pos[a] + np.clip(u, -0.2, 0.2)
        self.t += 1
        rewards = {a: -float(np.linalg.norm(self.pos[a] - self.goal)) for a in self.agents}
        done = self.t >= 20
        agents, obs = self.agents, self._observe()
        if done:
            self.agents = []
        return (obs, rewards, {a: False for a in agents}, {a: done for a in agents},
                {a: {} for a in agents})


def make_env():
    """The factory `scoredec evaluate --env examples/own_env.py:make_env` calls."""
    return Rendezvous()


def scripted_policy(env, agent, obs, rng):
    """Your behaviour policy: head for the goal, with noise."""
    step = np.clip(obs[2:4] - obs[0:2], -0.2, 0.2) + rng.normal(0, 0.05, 2)
    return np.clip(step, -0.2, 0.2).astype(np.float32)


def record(episodes=40, seed=0):
    env, rng = make_env(), np.random.default_rng(seed)
    rec = EpisodeRecorder(env.possible_agents,
                          [env.observation_space(a).shape[0] for a in env.possible_agents],
                          [env.action_space(a).shape[0] for a in env.possible_agents])
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        while env.agents:
            actions = {a: scripted_policy(env, a, obs[a], rng) for a in env.agents}
            nxt, rewards, terms, truncs, _ = env.step(actions)
            # the schema stores actions in [-1, 1]: map each Box action there
            unit = {a: action_from_env(u, env.action_space(a)) for a, u in actions.items()}
            rec.add(obs, unit, rewards, nxt, terms, truncs)
            obs = nxt
    return rec.dataset(env_id="rendezvous", quality="scripted", generator="examples/own_env.py",
                       seed=seed)


if __name__ == "__main__":
    data = record()
    write_dataset("own.h5", data)
    tiny = TrainConfig(device="cpu", log_every=100, checkpoint_every=1000,
                       behavior=BehaviorConfig(arch="compact", hidden=32, compact_layers=2,
                                               steps=300, batch_size=64, lr=3e-3),
                       critic=CriticConfig(hidden=32, steps=300, batch_size=64),
                       policy=PolicyConfig(hidden=32, steps=300, batch_size=64, lr=3e-3))
    train("own.h5", tiny, "runs/own", progress=False)
    result = evaluate_env("runs/own", env=make_env, episodes=10)
    behaviour = data.rewards.mean(axis=1).reshape(-1, 20).sum(axis=1).mean()
    print(f"actors: return {result['return_mean']:.2f} +- {result['return_std']:.2f} "
          f"({result['score']}) over {result['episodes']} episodes; the data's: {behaviour:.2f}")
