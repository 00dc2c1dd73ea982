"""How many agents a task has, which counts it takes, and what normalizes its scores at each
count (issue 18).

- spread: N agents and N landmarks, 2 <= N <= 6 (default 3). The environment runs up to 10
  (the original's reset defines no layout beyond that), but the scripted expert enumerates all
  N! landmark assignments, and the datasets' medium/expert behaviour and the reference returns
  at N != 3 need it.
- tag, world: exactly 3 learned predators and 1 scripted prey (tag: 2 obstacles; world: 1
  obstacle, 2 food, 2 forests). OMAR's scenarios fix these counts, and the scripted prey is
  calibrated against the published 3-predator random references; no other count.
- MaMuJoCo layouts: the count is in the name (halfcheetah-2x3: 2 agents of 3 joints).
- bandit: 2 agents.

Reference returns: the published ones at the default count (DESIGN.md 1.7); spread at N != 3
measured with the package's own random and scripted-expert policies
(scoredec/envs/mpe/references.py), stored in the dataset and read back from it by every score.
"""

from __future__ import annotations

from scoredec.envs import MAMUJOCO_TASKS, MPE_TASKS
from scoredec.envs.mpe.experts import SPREAD_EXPERT_AGENTS

__all__ = ["MPE_DEFAULT_AGENTS", "SPREAD_AGENTS", "canonical_task", "default_agents",
           "check_agents", "scenario_counts", "dataset_scenario", "env_kwargs",
           "reference_returns", "reference_measurement"]

MPE_DEFAULT_AGENTS = 3
"""Learned agents of spread, tag and world unless asked otherwise (the literature's setting)."""

SPREAD_AGENTS = SPREAD_EXPERT_AGENTS
"""Agent counts spread takes: the scripted expert scores all N! assignments (720 at N = 6)."""

BANDIT_AGENTS = 2


def canonical_task(env_id: str) -> str:
    """'simple_spread' -> 'spread'; other ids unchanged."""
    return env_id.removeprefix("simple_")


def default_agents(env_id: str) -> int | None:
    """The task's agent count when none is asked for; None for an unknown task."""
    task = canonical_task(env_id)
    if task in MPE_TASKS:
        return MPE_DEFAULT_AGENTS
    if task in MAMUJOCO_TASKS:
        return int(task.split("-")[-1].split("x")[0])
    if task == "bandit":
        return BANDIT_AGENTS
    return None


def check_agents(env_id: str, n_agents: int | None) -> int:
    """The agent count to use for ``env_id`` (``n_agents``, or the default when None);
    ValueError in one line saying why a task does not take that count."""
    task = canonical_task(env_id)
    default = default_agents(task)
    if n_agents is None:
        if default is None:
            raise ValueError(f"unknown task {env_id!r}: no default agent count")
        return default
    if isinstance(n_agents, bool) or not isinstance(n_agents, int):
        raise ValueError(f"n_agents must be an integer, got {n_agents!r}")
    if task == "spread":
        lo, hi = SPREAD_AGENTS
        if not lo <= n_agents <= hi:
            raise ValueError(f"spread takes {lo} to {hi} agents, got {n_agents} (the scripted "
                             "expert scores all N! landmark assignments; the medium/expert data "
                             "and the reference returns need it)")
        return n_agents
    if n_agents == default:
        return n_agents
    if task in ("tag", "world"):
        raise ValueError(f"{task} has exactly 3 learned predators and one scripted prey, got "
                         f"{n_agents} agents: OMAR's scenario fixes the counts and the scripted "
                         "prey is calibrated for three predators (only spread takes another count)")
    if task in MAMUJOCO_TASKS:
        raise ValueError(f"{task} has {default} agents by its layout (AxB in the name: A agents), "
                         f"got {n_agents}; choose another layout")
    raise ValueError(f"{task} has {default} agents, got {n_agents}")


def scenario_counts(env_id: str, n_agents: int) -> dict[str, int]:
    """The entity counts a dataset records (attrs["scenario"]): learned agents, and where the
    task has them landmarks, adversaries and scripted good agents."""
    task = canonical_task(env_id)
    if task == "spread":
        return {"n_agents": n_agents, "n_landmarks": n_agents}
    if task == "tag":
        return {"n_agents": n_agents, "n_adversaries": 3, "n_good": 1, "n_landmarks": 2}
    if task == "world":
        return {"n_agents": n_agents, "n_adversaries": 3, "n_good": 1, "n_landmarks": 5,
                "n_obstacles": 1, "n_food": 2, "n_forests": 2}
    return {"n_agents": n_agents}


def dataset_scenario(ds) -> dict[str, int]:
    """A dataset's entity counts: what it recorded (attrs["scenario"]), else its task's counts
    at its agent count (3-agent MPE files record nothing, so that their bytes stay as they
    were), else {"n_agents": n} (a task this package does not know, or a count it does not
    make, such as tag imported with its prey)."""
    if isinstance(ds.attrs.get("scenario"), dict):
        return ds.scenario
    task, n = canonical_task(ds.env_id), ds.n_agents
    if task == "spread" or (task in MPE_TASKS and n == default_agents(task)):
        return scenario_counts(task, n)
    return {"n_agents": n}


def env_kwargs(env_id: str, n_agents: int | None) -> dict:
    """What scoredec.envs.make_env needs to build ``env_id`` with ``n_agents`` learned agents
    (only the MPE tasks take a count; the others have theirs built in)."""
    if n_agents is not None and canonical_task(env_id) in MPE_TASKS:
        return {"n_agents": int(n_agents)}
    return {}


def reference_measurement(env_id: str, n_agents: int) -> dict | None:
    """The measurement behind non-published references (spread at N != 3), else None."""
    if canonical_task(env_id) == "spread" and n_agents != MPE_DEFAULT_AGENTS:
        from scoredec.envs.mpe.references import spread_reference_returns

        return spread_reference_returns(n_agents)[1]
    return None


def reference_returns(env_id: str, n_agents: int | None = None) -> dict[str, float] | None:
    """{"random", "expert"} returns that normalize scores of ``env_id`` with ``n_agents``: the
    published values at the default count, measured ones for spread at another count, None
    where the package has none (MaMuJoCo: the environment's own table)."""
    task = canonical_task(env_id)
    if task not in MPE_TASKS:
        return None
    n = check_agents(task, n_agents)
    if task == "spread" and n != MPE_DEFAULT_AGENTS:
        from scoredec.envs.mpe.references import spread_reference_returns

        return spread_reference_returns(n)[0]
    from scoredec.envs.mpe import REFERENCE_RETURNS

    return dict(REFERENCE_RETURNS[task])
