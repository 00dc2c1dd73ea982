"""Slow, plain single-environment MPE (numpy, float64), written after the original code.

This is the specification the batched environments are tested against. It mirrors the
structure of the OMAR / MADiff ``multiagent-particle-envs`` files (``multiagent/core.py``:
``Entity``/``Agent``/``Landmark``/``World.step`` with per-entity loops;
``multiagent/environment.py``: ``MultiAgentEnv._set_action``/``step``;
``multiagent/scenarios/simple_{spread,tag,world}.py``: ``make_world``/``reset_world``/
``reward``/``observation``), minus rendering, communication noise and benchmark data.
The scripted prey of ``scoredec/envs/mpe/prey.py`` is re-implemented here with plain loops over
the prey's own observation vector.

Test-only (tests/test_mpe.py), so it lives under tests/, not in the package.
Typical use: ``ref = ReferenceEnv("tag")``; ``ref.set_state(pos, vel)`` with one row of
the batched env's state; ``obs, rew = ref.step(actions)``.
"""

from __future__ import annotations

import math

import numpy as np

from scoredec.envs.mpe.prey import PREY_PARAMS, PreyParams


class EntityState:
    def __init__(self):
        self.p_pos = None
        self.p_vel = None


class Entity:
    def __init__(self):
        self.name = ""
        self.size = 0.050
        self.movable = False
        self.collide = True
        self.max_speed = None
        self.accel = None
        self.state = EntityState()
        self.initial_mass = 1.0

    @property
    def mass(self):
        return self.initial_mass


class Landmark(Entity):
    pass


class Agent(Entity):
    def __init__(self):
        super().__init__()
        self.movable = True
        self.silent = True
        self.u_range = 1.0
        self.adversary = False
        self.leader = False
        self.action_u = None
        self.comm = None


class World:
    def __init__(self):
        self.agents: list[Agent] = []
        self.landmarks: list[Landmark] = []
        self.dim_c = 0
        self.dim_p = 2
        self.dt = 0.1
        self.damping = 0.25
        self.contact_force = 1e2
        self.contact_margin = 1e-3

    @property
    def entities(self):
        return self.agents + self.landmarks

    def step(self):
        p_force = [None] * len(self.entities)
        p_force = self.apply_action_force(p_force)
        p_force = self.apply_environment_force(p_force)
        self.integrate_state(p_force)
        for agent in self.agents:
            agent.comm = np.zeros(self.dim_c)  # silent

    def apply_action_force(self, p_force):
        for i, agent in enumerate(self.agents):
            if agent.movable:
                mult = agent.mass * agent.accel if agent.accel is not None else agent.mass
                p_force[i] = mult * agent.action_u
        return p_force

    def apply_environment_force(self, p_force):
        ents = self.entities
        for a, entity_a in enumerate(ents):
            for b, entity_b in enumerate(ents):
                if b <= a:
                    continue
                f_a, f_b = self.get_collision_force(entity_a, entity_b)
                if f_a is not None:
                    p_force[a] = f_a + (0.0 if p_force[a] is None else p_force[a])
                if f_b is not None:
                    p_force[b] = f_b + (0.0 if p_force[b] is None else p_force[b])
        return p_force

    def integrate_state(self, p_force):
        for i, entity in enumerate(self.entities):
            if not entity.movable:
                continue
            entity.state.p_vel = entity.state.p_vel * (1 - self.damping)
            if p_force[i] is not None:
                entity.state.p_vel = entity.state.p_vel + (p_force[i] / entity.mass) * self.dt
            if entity.max_speed is not None:
                speed = math.sqrt(entity.state.p_vel[0] ** 2 + entity.state.p_vel[1] ** 2)
                if speed > entity.max_speed:
                    entity.state.p_vel = entity.state.p_vel / speed * entity.max_speed
            entity.state.p_pos = entity.state.p_pos + entity.state.p_vel * self.dt

    def get_collision_force(self, entity_a, entity_b):
        if (not entity_a.collide) or (not entity_b.collide):
            return None, None
        if (not entity_a.movable) and (not entity_b.movable):
            return None, None
        delta_pos = entity_a.state.p_pos - entity_b.state.p_pos
        dist = math.sqrt(float(np.sum(np.square(delta_pos))))
        dist_min = entity_a.size + entity_b.size
        k = self.contact_margin
        penetration = np.logaddexp(0, -(dist - dist_min) / k) * k
        force = self.contact_force * delta_pos / dist * penetration
        if entity_a.movable and entity_b.movable:
            force_ratio = entity_b.mass / entity_a.mass
            return force_ratio * force, -(1 / force_ratio) * force
        return (+force if entity_a.movable else None), (-force if entity_b.movable else None)


def _dist(a: Entity, b: Entity) -> float:
    return math.sqrt(float(np.sum(np.square(a.state.p_pos - b.state.p_pos))))


def is_collision(a: Entity, b: Entity) -> bool:
    return _dist(a, b) < a.size + b.size


def _bound(x: float) -> float:
    if x < 0.9:
        return 0.0
    if x < 1.0:
        return (x - 0.9) * 10
    return min(math.exp(2 * x - 2), 10)


# --------------------------------------------------------------------------- scenarios
class SpreadScenario:
    def make_world(self, num_agents=3):
        world = World()
        world.dim_c = 2
        world.agents = [Agent() for _ in range(num_agents)]
        for i, agent in enumerate(world.agents):
            agent.name = f"agent {i}"
            agent.size = 0.15
        world.landmarks = [Landmark() for _ in range(num_agents)]
        for i, lm in enumerate(world.landmarks):
            lm.name = f"landmark {i}"
            lm.collide = False
        return world

    def reset_world(self, world, rng):
        n = len(world.agents)
        boundary = 1 if n <= 3 else 2
        for agent in world.agents:
            agent.state.p_pos = rng.uniform(-boundary, boundary, world.dim_p)
            agent.state.p_vel = np.zeros(world.dim_p)
            agent.comm = np.zeros(world.dim_c)
        for lm in world.landmarks:
            lm.state.p_pos = rng.uniform(-boundary, boundary, world.dim_p)
            lm.state.p_vel = np.zeros(world.dim_p)

    def reward(self, agent, world):
        rew = 0.0
        for lm in world.landmarks:
            dists = [_dist(a, lm) for a in world.agents]
            m = min(dists)
            rew += min(1.0 / m if m > 0 else math.inf, 10.0)
        for a in world.agents:
            if is_collision(a, agent) and a.name != agent.name:
                rew -= 5
        return rew

    def observation(self, agent, world):
        entity_pos = [lm.state.p_pos - agent.state.p_pos for lm in world.landmarks]
        comm, other_pos = [], []
        for other in world.agents:
            if other is agent:
                continue
            comm.append(other.comm)
            other_pos.append(other.state.p_pos - agent.state.p_pos)
        return np.concatenate([agent.state.p_vel, agent.state.p_pos] + entity_pos + other_pos
                              + comm)


class TagScenario:
    collide_bonus = 10
    prey_size = 0.05

    def make_world(self):
        world = World()
        world.dim_c = 2
        world.agents = [Agent() for _ in range(4)]
        for i, agent in enumerate(world.agents):
            agent.name = f"agent {i}"
            agent.adversary = i < 3
            agent.size = 0.075 if agent.adversary else self.prey_size
            agent.accel = 3.0 if agent.adversary else 4.0
            agent.max_speed = 1.0 if agent.adversary else 1.3
        world.landmarks = [Landmark() for _ in range(2)]
        for i, lm in enumerate(world.landmarks):
            lm.name = f"landmark {i}"
            lm.size = 0.2
        return world

    def reset_world(self, world, rng):
        for agent in world.agents:
            agent.state.p_pos = rng.uniform(-1, +1, world.dim_p)
            agent.state.p_vel = np.zeros(world.dim_p)
            agent.comm = np.zeros(world.dim_c)
        for lm in world.landmarks:
            lm.state.p_pos = rng.uniform(-0.9, +0.9, world.dim_p)
            lm.state.p_vel = np.zeros(world.dim_p)

    def good_agents(self, world):
        return [a for a in world.agents if not a.adversary]

    def adversaries(self, world):
        return [a for a in world.agents if a.adversary]

    def reward(self, agent, world):
        if agent.adversary:
            return self.adversary_reward(agent, world)
        return self.agent_reward(agent, world)

    def agent_reward(self, agent, world):
        rew = 0.0
        for adv in self.adversaries(world):
            rew += 0.1 * _dist(agent, adv)
        for a in self.adversaries(world):
            if is_collision(a, agent):
                rew -= 10
        for p in range(world.dim_p):
            rew -= _bound(abs(agent.state.p_pos[p]))
        return rew

    def adversary_reward(self, agent, world):
        rew = 0.0
        agents = self.good_agents(world)
        advs = self.adversaries(world)
        for adv in advs:
            rew -= 0.1 * min(_dist(a, adv) for a in agents)
        for ag in agents:
            for adv in advs:
                if is_collision(ag, adv):
                    rew += self.collide_bonus
        return rew

    def observation(self, agent, world):
        entity_pos = [lm.state.p_pos - agent.state.p_pos for lm in world.landmarks]
        other_pos, other_vel = [], []
        for other in world.agents:
            if other is agent:
                continue
            other_pos.append(other.state.p_pos - agent.state.p_pos)
            if not other.adversary:
                other_vel.append(other.state.p_vel)
        return np.concatenate([agent.state.p_vel, agent.state.p_pos] + entity_pos + other_pos
                              + other_vel)

    # where the prey finds things in its own observation
    def prey_view(self, obs):
        vel, pos = obs[0:2], obs[2:4]
        obstacles = [obs[4:6], obs[6:8]]
        preds = [obs[8:10], obs[10:12], obs[12:14]]
        home = -pos
        return pos, vel, preds, obstacles, home


class WorldScenario(TagScenario):
    collide_bonus = 5
    prey_size = 0.045

    def make_world(self):
        world = World()
        world.dim_c = 4
        world.agents = [Agent() for _ in range(4)]
        for i, agent in enumerate(world.agents):
            agent.name = f"agent {i}"
            agent.leader = True
            agent.adversary = i < 3
            agent.size = 0.075 if agent.adversary else self.prey_size
            agent.accel = 3.0 if agent.adversary else 4.0
            agent.max_speed = 1.0 if agent.adversary else 1.3
        world.landmarks = [Landmark()]
        world.landmarks[0].name = "landmark 0"
        world.landmarks[0].size = 0.2
        world.food = [Landmark() for _ in range(2)]
        for i, lm in enumerate(world.food):
            lm.name = f"food {i}"
            lm.collide = False
            lm.size = 0.03
        world.forests = [Landmark() for _ in range(2)]
        for i, lm in enumerate(world.forests):
            lm.name = f"forest {i}"
            lm.collide = False
            lm.size = 0.3
        world.landmarks += world.food
        world.landmarks += world.forests
        return world

    def reset_world(self, world, rng):
        for agent in world.agents:
            agent.state.p_pos = rng.uniform(-1, +1, world.dim_p)
            agent.state.p_vel = np.zeros(world.dim_p)
            agent.comm = np.zeros(world.dim_c)
        for lm in world.landmarks:
            lm.state.p_pos = rng.uniform(-0.9, +0.9, world.dim_p)
            lm.state.p_vel = np.zeros(world.dim_p)
        for lm in world.food + world.forests:
            lm.state.p_pos = rng.uniform(-0.9, +0.9, world.dim_p)

    def agent_reward(self, agent, world):
        rew = 0.0
        for adv in self.adversaries(world):
            rew += 0.1 * _dist(agent, adv)
        for a in self.adversaries(world):
            if is_collision(a, agent):
                rew -= 5
        for p in range(world.dim_p):
            rew -= 2 * _bound(abs(agent.state.p_pos[p]))
        for food in world.food:
            if is_collision(agent, food):
                rew += 2
        rew += 0.05 * min(_dist(food, agent) for food in world.food)
        return rew

    def observation(self, agent, world):
        entity_pos = [lm.state.p_pos - agent.state.p_pos for lm in world.landmarks]
        in_forest = [np.array([-1.0]), np.array([-1.0])]
        inf1 = is_collision(agent, world.forests[0])
        inf2 = is_collision(agent, world.forests[1])
        if inf1:
            in_forest[0] = np.array([1.0])
        if inf2:
            in_forest[1] = np.array([1.0])
        other_pos, other_vel = [], []
        for other in world.agents:
            if other is agent:
                continue
            oth_f1 = is_collision(other, world.forests[0])
            oth_f2 = is_collision(other, world.forests[1])
            visible = ((inf1 and oth_f1) or (inf2 and oth_f2)
                       or (not inf1 and not oth_f1 and not inf2 and not oth_f2) or agent.leader)
            if visible:
                other_pos.append(other.state.p_pos - agent.state.p_pos)
                if not other.adversary:
                    other_vel.append(other.state.p_vel)
            else:
                other_pos.append(np.zeros(2))
                if not other.adversary:
                    other_vel.append(np.zeros(2))
        return np.concatenate([agent.state.p_vel, agent.state.p_pos] + entity_pos + other_pos
                              + other_vel + in_forest)

    def prey_view(self, obs):
        vel, pos = obs[0:2], obs[2:4]
        obstacles = [obs[4:6]]
        foods = [obs[6:8], obs[8:10]]
        preds = [obs[14:16], obs[16:18], obs[18:20]]
        d0 = math.hypot(*foods[0])
        d1 = math.hypot(*foods[1])
        home = foods[1] if d1 < d0 else foods[0]
        return pos, vel, preds, obstacles, home


def reference_prey_action(pos, vel, preds, obstacles, home, params: PreyParams = PREY_PARAMS):
    """prey.py's rule with plain loops. Returns a 2-vector in [-1, 1]."""
    push = np.zeros(2)
    sensed = False
    for rel in preds:
        d = math.hypot(rel[0], rel[1])
        if d < params.sense_radius:
            sensed = True
            w = params.flee_gain / max(d, params.d_floor) ** 2
            push = push - w * rel / max(d, 1e-12)
    for ax in range(2):
        excess = abs(pos[ax]) - params.wall_start
        if excess > 0:
            push[ax] -= params.wall_gain * excess * np.sign(pos[ax])
    for rel in obstacles:
        d = math.hypot(rel[0], rel[1])
        gap = d - params.obstacle_radius
        if gap < params.obstacle_clearance:
            push = push - params.obstacle_gain * (params.obstacle_clearance - gap) * rel / max(d, 1e-12)
    push = push + params.home_gain * np.asarray(home) - params.damping_gain * np.asarray(vel)
    mag = math.hypot(push[0], push[1])
    if mag > 1.0:
        push = push / mag
    if sensed:
        push = params.flee_thrust * push
    return np.clip(push, -1.0, 1.0)


# --------------------------------------------------------------------------- environment
class ReferenceEnv:
    """One MPE world, stepped like ``MultiAgentEnv.step`` (the scripted prey acts first)."""

    def __init__(self, name: str, n_agents: int = 3, action_layout: str = "box2",
                 prey_params: PreyParams = PREY_PARAMS):
        if name == "spread":
            self.scenario = SpreadScenario()
            self.world = self.scenario.make_world(n_agents)
            self.n_learned = n_agents
        elif name == "tag":
            self.scenario = TagScenario()
            self.world = self.scenario.make_world()
            self.n_learned = 3
        elif name == "world":
            self.scenario = WorldScenario()
            self.world = self.scenario.make_world()
            self.n_learned = 3
        else:
            raise ValueError(f"unknown task {name!r}")
        self.name = name
        self.action_layout = action_layout
        self.prey_params = prey_params
        self.last_prey_action = None

    def reset(self, rng: np.random.Generator):
        self.scenario.reset_world(self.world, rng)
        return self.observations()

    def set_state(self, pos, vel):
        """pos, vel: [E, 2] in ``world.entities`` order."""
        for i, ent in enumerate(self.world.entities):
            ent.state.p_pos = np.array(pos[i], dtype=np.float64)
            ent.state.p_vel = np.array(vel[i], dtype=np.float64)
        for agent in self.world.agents:
            agent.comm = np.zeros(self.world.dim_c)

    def get_state(self):
        pos = np.stack([e.state.p_pos for e in self.world.entities])
        vel = np.stack([e.state.p_vel for e in self.world.entities])
        return pos, vel

    def observations(self):
        return [self.scenario.observation(a, self.world) for a in self.world.agents]

    def _set_action(self, action, agent):
        action = np.array(action, dtype=np.float64)
        if self.action_layout == "onehot5":
            u = np.zeros(2)
            u[0] += action[1] - action[2]
            u[1] += action[3] - action[4]
        else:
            u = action
        sensitivity = 5.0 if agent.accel is None else agent.accel
        agent.action_u = u * sensitivity

    def step(self, actions):
        """actions: one array per learned agent. Returns (obs of all agents, rewards of all)."""
        agents = self.world.agents
        if len(agents) > self.n_learned:
            prey = agents[self.n_learned]
            view = self.scenario.prey_view(self.scenario.observation(prey, self.world))
            self.last_prey_action = reference_prey_action(*view, params=self.prey_params)
            # the prey's own action space is the 2-d box whatever the learners' layout
            prey.action_u = self.last_prey_action * prey.accel
        for i in range(self.n_learned):
            self._set_action(actions[i], agents[i])
        self.world.step()
        obs = self.observations()
        rew = [self.scenario.reward(a, self.world) for a in agents]
        return obs, rew
