"""A user's own environment and data (issue 16): the README's example end to end, evaluation
on a PettingZoo ParallelEnv (agent matching, observation padding, Box action mapping, returns),
clear errors when the environment does not fit the run, and the episode recorder."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pettingzoo")
from gymnasium import spaces  # noqa: E402
from pettingzoo import ParallelEnv  # noqa: E402

from scoredec.actors import Actors  # noqa: E402
from scoredec.cli import main  # noqa: E402
from scoredec.data import read_dataset, write_dataset  # noqa: E402
from scoredec.data.recorder import EpisodeRecorder  # noqa: E402
from scoredec.envs.parallel import action_from_env, action_to_env  # noqa: E402
from scoredec.evaluation import evaluate_env  # noqa: E402
from scoredec.layout import AgentSpec  # noqa: E402
from scoredec.pipeline import save_actors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "own_env.py"


# ----------------------------------------------------------------------------- README example

def readme_example() -> str:
    """The python block of the README's own-environment section."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Your own environment and data"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_is_the_example_file():
    assert readme_example() == EXAMPLE.read_text()


def test_readme_example_runs_end_to_end(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    found = re.fullmatch(r"actors: return (-?[\d.]+) \+- ([\d.]+) \(raw\) over 10 episodes; "
                         r"the data's: (-?[\d.]+)", line)
    assert found, line
    assert read_dataset(tmp_path / "own.h5").agent_names == ("rover", "drone")
    # The command line on the same run and environment, with reference returns: normalized.
    run = tmp_path / "runs" / "own"
    assert main(["-q", "evaluate", str(run), "--env", f"{EXAMPLE}:make_env", "--episodes", "4",
                 "--envs", "2", "--reference-random", "-30", "--reference-expert", "-3"]) == 0
    result = json.loads((run / "evaluation.json").read_text())
    assert result["episodes"] == 4 and result["score"] == "normalized"
    assert result["agents"] == ["rover", "drone"]
    want = 100 * (np.array(result["returns"]) + 30) / 27
    assert result["normalized_mean"] == pytest.approx(want.mean())


# ----------------------------------------------------------------------------- a tiny env

class Toy(ParallelEnv):
    """Agents with given observation/action spaces; observation of agent i at step t is
    (i + 1) * 10 + t in every entry; reward of agent i is i + 1; agent i leaves after
    lengths[i] steps (terminated). Records the actions it receives."""

    metadata = {"name": "toy"}

    def __init__(self, agents=("a", "b"), obs=(2, 3), act=None, lengths=(4, 6), forever=False):
        self.possible_agents = list(agents)
        self.agents = []
        act = act or [spaces.Box(-1, 1, (1,), np.float32)] * len(agents)
        self._obs = {a: spaces.Box(-np.inf, np.inf, (d,), np.float32) for a, d in zip(agents, obs)}
        self._act = dict(zip(agents, act))
        self.lengths, self.forever, self.received = dict(zip(agents, lengths)), forever, []

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self):
        return {a: np.full(self._obs[a].shape, (i + 1) * 10 + self.t, np.float32)
                for i, a in enumerate(self.possible_agents) if a in self.agents}

    def reset(self, seed=None, options=None):
        self.t, self.agents = 0, list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def step(self, actions):
        self.received.append(actions)
        self.t += 1
        rewards = {a: float(i + 1) for i, a in enumerate(self.possible_agents) if a in self.agents}
        terms = {a: not self.forever and self.t >= self.lengths[a] for a in self.agents}
        truncs = {a: False for a in self.agents}
        self.agents = [a for a in self.agents if not terms[a]]
        return self._observe(), rewards, terms, truncs, {a: {} for a in terms}


class Recorder:
    """Actors stand-in: returns a fixed action and records what it sees."""

    def __init__(self, value, n, act_max):
        self.value, self.n, self.act_max, self.seen = value, n, act_max, []

    def __call__(self, obs):
        self.seen.append(obs.clone())
        return torch.full((obs.shape[0], self.n, self.act_max), self.value)


def test_agents_matched_by_name_observations_padded_actions_mapped():
    box = [spaces.Box(0.0, 10.0, (2,), np.float32), spaces.Box(-0.5, 0.5, (1,), np.float32)]
    env = Toy(agents=("b", "a"), obs=(3, 2), act=box, lengths=(6, 4))   # env order b, a
    actors = Recorder(0.5, 2, 2)
    result = evaluate_env(actors, env, episodes=1, obs_dims=(2, 3), act_dims=(1, 2),
                          agent_names=("a", "b"))                       # dataset order a, b
    first = actors.seen[0][0]                                            # [n, obs_max]
    assert first.tolist() == [[20.0, 20.0, 0.0], [10.0, 10.0, 10.0]]   # a (2 wide, padded), b
    sent = env.received[0]
    np.testing.assert_allclose(sent["b"], [7.5, 7.5])                   # 0 + 0.75 * 10
    np.testing.assert_allclose(sent["a"], [0.25])                       # -0.5 + 0.75 * 1
    assert sent["a"].dtype == np.float32 and sent["b"].shape == (2,)
    assert env.received[4].keys() == {"b"}                               # a left after 4 steps
    # a: reward 2 for 4 steps, b: reward 1 for 6 steps; team return = mean of the two sums
    assert result["agents"] == ["a", "b"] and result["agent_return_mean"] == [8.0, 6.0]
    assert result["returns"] == [7.0] and result["score"] == "raw"


def test_returns_over_parallel_copies_and_sum_of_agents():
    made = []

    def factory():
        made.append(Toy())
        return made[-1]

    actors = Recorder(0.0, 2, 1)
    result = evaluate_env(actors, factory, episodes=5, num_envs=2, team_return="sum",
                          obs_dims=(2, 3), act_dims=(1, 1))
    assert len(made) == 2 and result["returns"] == [4 * 1 + 6 * 2] * 5
    assert [obs.shape[0] for obs in actors.seen[:1]] == [2]             # two copies side by side
    listed = evaluate_env(actors, [Toy(), Toy(), Toy()], episodes=3, obs_dims=(2, 3),
                          act_dims=(1, 1), reference_returns={"random": 0.0, "expert": 16.0})
    assert listed["normalized_mean"] == pytest.approx(100 * 8 / 16)


def test_box_action_mapping_round_trip():
    for space in (spaces.Box(-0.2, 0.2, (2,), np.float32), spaces.Box(0, 10, (3,), np.float64),
                  spaces.Box(np.array([-1.0, -np.inf]), np.array([1.0, np.inf]), dtype=np.float64)):
        a = np.linspace(-1, 1, space.shape[0]).astype(np.float32)
        u = action_to_env(a, space)
        assert u.dtype == space.dtype and space.contains(u)
        np.testing.assert_allclose(action_from_env(u, space), a, atol=1e-6)
    unit = spaces.Box(-1, 1, (3,), np.float32)
    a = np.array([0.1, -0.3, 0.7], np.float32)
    assert np.array_equal(action_to_env(a, unit), a)                     # exactly unchanged


# ----------------------------------------------------------------------------- errors

@pytest.fixture
def run(tmp_path):
    """A run of two agents (obs 2 and 3, actions 1 and 1) named a and b."""
    torch.manual_seed(0)
    save_actors(tmp_path / "run", Actors(AgentSpec((2, 3), (1, 1)), hidden=8),
                {"env_id": "toy", "agent_names": ["a", "b"], "method": "test"})
    return tmp_path / "run"


def write_module(tmp_path, body):
    path = tmp_path / "envs_for_test.py"
    path.write_text("import numpy as np\nfrom gymnasium import spaces\n"
                    f"from test_own_env import Toy\n{body}\n")
    return f"{path}:make"


@pytest.mark.parametrize("body,message", [
    ("def make(): return Toy(agents=('a', 'b', 'c'), obs=(2, 3, 1), lengths=(1, 1, 1))",
     "the environment has 3 agents ['a', 'b', 'c'], but the run was trained on 2 ['a', 'b']"),
    ("def make(): return Toy(obs=(2, 4))",
     "agent 'b': observation size 4, but the run's dataset has 3 for agent 1"),
    ("def make(): return Toy(act=[spaces.Box(-1, 1, (1,)), spaces.Box(-1, 1, (2,))])",
     "agent 'b': action size 2, but the run's dataset has 1 for agent 1"),
    ("def make(): return Toy(act=[spaces.Discrete(3), spaces.Box(-1, 1, (1,))])",
     "agent 'a': action space Discrete(3) is not a Box"),
    ("def make(): return Toy(forever=True)", "an episode did not end within 30 steps"),
    ("make = 3", "has no callable 'make'"),
    ("class Old(Toy):\n    def reset(self, seed=None, options=None):\n"
     "        return Toy.reset(self)[0]\ndef make(): return Old()",
     "reset(seed=...) must return (observations, infos)"),
])
def test_an_env_that_does_not_fit_the_run_is_one_line(run, tmp_path, capsys, monkeypatch, body,
                                                       message):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    spec = write_module(tmp_path, body)
    assert main(["evaluate", str(run), "--env", spec, "--episodes", "1", "--max-steps", "30"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scoredec evaluate: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["--env", "no_colon"], "expected MODULE:FACTORY or FILE.py:FACTORY"),
    (["--env", "surely_not_a_module_xyz:make"], "cannot import 'surely_not_a_module_xyz'"),
    (["--env", "missing.py:make"], "no such file missing.py"),
    (["--env", "x:y", "--task", "spread"], "--task names a built-in environment"),
    (["--env", "x:y", "--reference-random", "1"], "pass both --reference-random and"),
    (["--reference-expert", "1"], "go with --env"),
])
def test_bad_env_flags(run, capsys, args, message):
    assert main(["evaluate", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


# ----------------------------------------------------------------------------- the recorder

def test_recorder_writes_a_dataset_with_padding_and_episode_ends(tmp_path):
    env = Toy(obs=(2, 3), lengths=(2, 3))
    rec = EpisodeRecorder(env.possible_agents, (2, 3), (1, 1))
    obs, _ = env.reset()
    while env.agents:
        actions = {a: np.array([0.5], np.float32) for a in env.agents}
        nxt, rew, terms, truncs, _ = env.step(actions)
        rec.add(obs, actions, rew, nxt, terms, truncs)
        obs = nxt
    write_dataset(tmp_path / "toy.h5", rec.dataset("toy", "test", "test_own_env.py", 0))
    ds = read_dataset(tmp_path / "toy.h5")
    assert ds.observations.shape == (3, 2, 3) and ds.obs_dims == (2, 3)
    assert ds.observations[0].tolist() == [[10, 10, 0], [20, 20, 20]]
    assert ds.observations[2, 0].tolist() == [0, 0, 0]                  # a has left
    assert ds.rewards.tolist() == [[1, 2], [1, 2], [0, 2]]
    assert ds.terminals.tolist() == [False, False, True] and not ds.timeouts.any()
    with pytest.raises(ValueError, match="observation of agent 'b' has 2 values, expected 3"):
        rec.add({"b": [1, 2]}, {}, {}, {}, {}, {})


def test_schema_doc_example_runs(tmp_path, monkeypatch):
    """The Python example of docs/dataset_schema.md writes and reads back its dataset."""
    text = (ROOT / "docs" / "dataset_schema.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "dataset_schema.md", "exec"), {})
    assert read_dataset(tmp_path / "my-robots.h5").agent_names == ("arm", "gripper")
