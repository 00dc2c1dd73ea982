"""Every bad input is one clean error: a table of damaged dataset files, bad config values and
bad command lines, each run through `scoredec` in-process and required to exit 2 with a message
naming what is wrong, and never to print a traceback.

`python tests/test_bad_inputs.py` tallies the table against the installed code instead of
asserting: how many cases end in a clean error, a traceback, a silent success or a vague error.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import yaml

from scoredec.cli import main
from scoredec.data.hdf5 import write_dataset
from scoredec.envs import bandit

TINY_CONFIG = {"device": "cpu", "log_every": 5, "checkpoint_every": 10,
               "behavior": {"arch": "compact", "hidden": 16, "steps": 10, "batch_size": 16},
               "critic": {"hidden": 8, "steps": 10, "batch_size": 16},
               "policy": {"hidden": 8, "steps": 10, "batch_size": 16}}


def _flags(config: dict, prefix: str = "") -> list[str]:
    out = []
    for key, value in config.items():
        if isinstance(value, dict):
            out += _flags(value, f"{prefix}{key}.")
        else:
            out += [f"--{prefix}{key}", str(value)]
    return out


TINY = _flags(TINY_CONFIG)
ROWS = 64


@dataclass
class World:
    """What the cases share: a valid dataset file and a finished tiny run (both read-only:
    a case that damages one works on its own copy), and the case's own folder."""

    data: Path
    run: Path
    tmp: Path

    def copy_data(self, name: str = "d.h5") -> Path:
        out = self.tmp / name
        shutil.copyfile(self.data, out)
        return out

    def copy_run(self) -> Path:
        out = self.tmp / "run"
        shutil.copytree(self.run, out)
        return out

    def train(self, data: Path, *extra: str) -> list[str]:
        return ["train", "all", "--data", str(data), "--run", str(self.tmp / "r"), *TINY, *extra]


@dataclass(frozen=True)
class Case:
    name: str
    argv: Callable[[World], list[str]]   # makes the case's inputs under world.tmp, returns argv
    message: str                          # must appear in the error


def run_cli(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of `scoredec -q ARGV` in this process; an exception escaping main()
    propagates (it would be a traceback on the command line)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(["-q", *argv])
        except SystemExit as e:   # argparse's own errors
            code = e.code
    return code, err.getvalue()


# --------------------------------------------------------------------------- dataset files

def _edited(world: World, edit: Callable[[h5py.File, World], None]) -> Path:
    path = world.copy_data()
    with h5py.File(path, "r+") as f:
        edit(f, world)
    return path


def _replace(f: h5py.File, name: str, data=None, **kwargs) -> None:
    del f[name]
    if data is not None or kwargs:
        f.create_dataset(name, data=data, **kwargs)


def _other_file(world: World, name: str, array: np.ndarray) -> Path:
    other = world.tmp / "other.h5"
    with h5py.File(other, "w") as g:
        g.create_dataset(name, data=array)
    return other


def external_link(f, world):
    other = _other_file(world, "rewards", f["rewards"][()])
    del f["rewards"]
    f["rewards"] = h5py.ExternalLink(str(other), "/rewards")


def external_link_missing_file(f, world):
    del f["rewards"]
    f["rewards"] = h5py.ExternalLink(str(world.tmp / "nowhere.h5"), "/rewards")


def external_storage(f, world):
    rewards = f["rewards"][()]
    raw = world.tmp / "rewards.raw"
    raw.write_bytes(rewards.tobytes())
    _replace(f, "rewards", shape=rewards.shape, dtype=np.float32,
             external=[(str(raw), 0, rewards.nbytes)])


def virtual_dataset(f, world):
    rewards = f["rewards"][()]
    other = _other_file(world, "rewards", rewards)
    layout = h5py.VirtualLayout(shape=rewards.shape, dtype=np.float32)
    layout[...] = h5py.VirtualSource(str(other), "rewards", shape=rewards.shape)
    del f["rewards"]
    f.create_virtual_dataset("rewards", layout)


def virtual_same_file(f, world):
    obs = f["observations"]
    layout = h5py.VirtualLayout(shape=obs.shape, dtype=np.float32)
    layout[...] = h5py.VirtualSource(".", "observations", shape=obs.shape)
    del f["next_observations"]
    f.create_virtual_dataset("next_observations", layout)


def soft_link_in_file(f, world):
    del f["next_observations"]
    f["next_observations"] = h5py.SoftLink("/observations")


def soft_link_dangling(f, world):
    del f["rewards"]
    f["rewards"] = h5py.SoftLink("/nowhere/rewards")


def external_link_state(f, world):
    rows = f["observations"].shape[0]
    other = _other_file(world, "state", np.zeros((rows, 3), np.float32))
    f["state"] = h5py.ExternalLink(str(other), "/state")
    f.create_dataset("next_state", data=np.zeros((rows, 3), np.float32))


def _set_value(name: str, index: tuple, value: float):
    def edit(f, world):
        f[name][index] = value
    return edit


def huge_state(f, world):
    rows = f["observations"].shape[0]
    f.create_dataset("state", data=np.full((rows, 3), 1e9, np.float32))
    f.create_dataset("next_state", data=np.zeros((rows, 3), np.float32))


def _rows(count: int):
    def edit(f, world):
        for name in list(f):
            data = f[name][:count]
            _replace(f, name, data)
        f.attrs["n_transitions"] = np.int64(count)
    return edit


def _attr(name: str, value):
    def edit(f, world):
        if value is None:
            del f.attrs[name]
        else:
            f.attrs[name] = value
    return edit


def _dataset(name: str, data):
    def edit(f, world):
        if name in f:
            del f[name]
        if data is not None:
            f.create_dataset(name, data=data)
    return edit


def string_rewards(f, world):
    _replace(f, "rewards", np.array([b"x"] * ROWS))


def compound_rewards(f, world):
    _replace(f, "rewards", np.zeros(ROWS, dtype=[("a", "<f4"), ("b", "<f4")]))


def group_rewards(f, world):
    del f["rewards"]
    f.create_group("rewards")


def _file_bytes(make: Callable[[World], bytes]):
    def argv_for(world: World) -> Path:
        path = world.tmp / "d.h5"
        path.write_bytes(make(world))
        return path
    return argv_for


DATA_EDITS: list[tuple[str, Callable, str]] = [
    # (name, edit(h5py.File, World), message)
    ("external-link", external_link, "external link"),
    ("external-link-missing-file", external_link_missing_file, "external link"),
    ("external-link-state", external_link_state, "external link"),
    ("external-storage", external_storage, "external storage"),
    ("virtual-dataset", virtual_dataset, "virtual dataset"),
    ("virtual-dataset-same-file", virtual_same_file, "virtual dataset"),
    ("soft-link-in-file", soft_link_in_file, "soft link"),
    ("soft-link-dangling", soft_link_dangling, "soft link"),
    ("huge-observation", _set_value("observations", (3, 0, 1), 1e30), "field 'observations'"),
    ("huge-reward", _set_value("rewards", (5, 1), 3e38), "field 'rewards'"),
    ("huge-next-observation", _set_value("next_observations", (0, 1, 0), -2e6),
     "field 'next_observations'"),
    ("huge-state", huge_state, "field 'state'"),
    ("nan-observation", _set_value("observations", (1, 0, 0), np.nan), "non-finite"),
    ("inf-reward", _set_value("rewards", (1, 0), np.inf), "non-finite"),
    ("action-out-of-range", _set_value("actions", (2, 1, 0), 3.0), "outside [-1, 1]"),
    ("zero-rows", _rows(0), "no rows"),
    ("rows-mismatch", _dataset("rewards", np.zeros((ROWS - 1, 2), np.float32)), "rows"),
    ("rewards-3d", _dataset("rewards", np.zeros((ROWS, 2, 1), np.float32)), "dimensions"),
    ("rewards-float64", _dataset("rewards", np.zeros((ROWS, 2))), "float64"),
    ("observations-int", _dataset("observations", np.zeros((ROWS, 2, 5), np.int32)), "int32"),
    ("rewards-strings", string_rewards, "unsupported HDF5 type"),
    ("rewards-compound", compound_rewards, "unsupported HDF5 type"),
    ("rewards-group", group_rewards, "expected an array"),
    ("missing-actions", _dataset("actions", None), "field 'actions': missing"),
    ("extra-dataset", _dataset("extra", np.zeros(3)), "unknown dataset"),
    ("n-transitions-wrong", _attr("n_transitions", np.int64(7)), "n_transitions"),
    ("format-other", _attr("format", "other"), "not a scoredec dataset"),
    ("schema-version-2", _attr("schema_version", 2), "unknown schema version 2"),
    ("env-id-missing", _attr("env_id", None), "field 'env_id': missing attribute"),
    ("env-id-int", _attr("env_id", 5), "field 'env_id'"),
    ("obs-dims-broken-json", _attr("obs_dims", "[5, 5"), "not valid JSON"),
    ("obs-dims-strings", _attr("obs_dims", '["a", "b"]'), "field 'obs_dims'"),
    ("obs-dims-too-wide", _attr("obs_dims", "[5, 9]"), "field 'obs_dims'"),
    ("agent-names-duplicate", _attr("agent_names", '["a", "a"]'), "not unique"),
    ("seed-string", _attr("seed", "zero"), "field 'seed'"),
    ("reference-returns-bad", _attr("reference_returns", '{"random": 1}'), "reference_returns"),
    ("attrs-not-a-dict", _attr("attrs", "[1, 2]"), "field 'attrs'"),
    ("unknown-attribute", _attr("colour", "red"), "unknown attribute"),
]

DATA_FILES: list[tuple[str, Callable[[World], Path], str]] = [
    ("truncated", _file_bytes(lambda w: w.data.read_bytes()[:3000]), "cannot read HDF5"),
    ("garbage", _file_bytes(lambda w: bytes(range(256)) * 16), "cannot read HDF5"),
    ("empty-file", _file_bytes(lambda w: b""), "cannot read HDF5"),
    ("missing", lambda w: w.tmp / "missing.h5", "no such file"),
    ("directory", lambda w: w.tmp, "is a directory"),
]
# Cases that `data info` and `train` both see the same way: checked through both commands.
BOTH = {"external-link", "external-storage", "virtual-dataset", "soft-link-in-file",
        "huge-observation", "huge-reward", "zero-rows", "truncated", "directory"}


def _data_cases() -> list[Case]:
    cases = []
    for name, edit, message in DATA_EDITS:
        make = (lambda edit: lambda w: _edited(w, edit))(edit)
        cases.append(Case(f"data-info-{name}", lambda w, make=make: ["data", "info", str(make(w))],
                          message))
        if name in BOTH:
            cases.append(Case(f"train-data-{name}", lambda w, make=make: w.train(make(w)), message))
    for name, make, message in DATA_FILES:
        cases.append(Case(f"data-info-{name}", lambda w, make=make: ["data", "info", str(make(w))],
                          message))
        if name in BOTH:
            cases.append(Case(f"train-data-{name}", lambda w, make=make: w.train(make(w)), message))
    cases.append(Case("train-data-one-row", lambda w: w.train(_edited(w, _rows(1))),
                      "behavior.batch_size"))
    cases.append(Case("train-data-fewer-rows-than-batch",
                      lambda w: w.train(w.data, "--critic.batch_size", str(ROWS + 1)),
                      "critic.batch_size"))
    return cases


# --------------------------------------------------------------------------- config values

CONFIG_VALUES: list[tuple[str, str, str]] = [
    # (dotted key, YAML value, message)
    ("behavior.steps", "-5", "behavior.steps"),
    ("critic.steps", "-1", "critic.steps"),
    ("policy.steps", "0", "policy.steps"),
    ("log_every", "0", "log_every"),
    ("checkpoint_every", "0", "checkpoint_every"),
    ("checkpoint_every", "-10", "checkpoint_every"),
    ("seed", "-1", "seed"),
    ("behavior.hidden", "0", "behavior.hidden"),
    ("behavior.blocks", "0", "behavior.blocks"),
    ("behavior.compact_layers", "0", "behavior.compact_layers"),
    ("behavior.dropout", "1.0", "behavior.dropout"),
    ("behavior.sigma_data", "0", "behavior.sigma_data"),
    ("behavior.fourier_scale", "-1", "behavior.fourier_scale"),
    ("behavior.ema", "1.0", "behavior.ema"),
    ("behavior.lr", "0", "behavior.lr"),
    ("behavior.lr_end", "-1e-5", "behavior.lr_end"),
    ("behavior.weight_decay", "-0.1", "behavior.weight_decay"),
    ("behavior.batch_size", "0", "behavior.batch_size"),
    ("behavior.t_min", "0", "behavior.t_min"),
    ("behavior.cond_noise", "-0.2", "behavior.cond_noise"),
    ("behavior.sample_steps", "0", "behavior.sample_steps"),
    ("critic.hidden", "-8", "critic.hidden"),
    ("critic.layers", "-1", "critic.layers"),
    ("critic.lr", ".nan", "critic.lr"),
    ("critic.batch_size", "-4", "critic.batch_size"),
    ("critic.gamma", "1.5", "critic.gamma"),
    ("critic.expectile", "1.0", "critic.expectile"),
    ("critic.polyak", "0", "critic.polyak"),
    ("policy.beta", ".nan", "policy.beta"),
    ("policy.beta", ".inf", "policy.beta"),
    ("policy.beta", "-0.5", "policy.beta"),
    ("policy.t_min", "0", "policy.t_min"),
    ("policy.t_max", "1.5", "policy.t_max"),
    ("policy.hidden", "0", "policy.hidden"),
    ("policy.layers", "0", "policy.layers"),
    ("policy.lr", "-0.001", "policy.lr"),
    ("policy.lr_end", ".inf", "policy.lr_end"),
    ("policy.batch_size", "0", "policy.batch_size"),
]


def _yaml_config(key: str, value: str) -> Callable[[World], list[str]]:
    """`train` with a config file: the tiny sizes with `key: value` (a YAML literal) in them."""
    def argv(world: World) -> list[str]:
        config = yaml.safe_load(yaml.safe_dump(TINY_CONFIG))
        *sections, leaf = key.split(".")
        node = config
        for s in sections:
            node = node.setdefault(s, {})
        node[leaf] = "@VALUE@"
        path = world.tmp / "bad.yaml"
        path.write_text(yaml.safe_dump(config).replace("'@VALUE@'", value))
        return ["train", "all", "--data", str(world.data), "--run", str(world.tmp / "r"),
                "--config", str(path)]
    return argv


def _config_cases() -> list[Case]:
    cases = []
    seen: dict[str, int] = {}
    for key, value, message in CONFIG_VALUES:
        seen[key] = seen.get(key, 0) + 1
        name = key if seen[key] == 1 else f"{key}-{seen[key]}"
        # The YAML error names the file and the key; the same value as a flag names the key.
        cases.append(Case(f"config-{name}", _yaml_config(key, value), f"bad.yaml: key '{message}'"))
    cases += [
        Case("config-t-min-above-t-max", _yaml_config(
            "policy", "{t_min: 0.9, t_max: 0.5, hidden: 8, steps: 10, batch_size: 16}"),
             "policy.t_min"),
        Case("config-order-duplicate", _yaml_config("order", "[0, 0]"), "bad.yaml: key 'order'"),
        Case("config-order-out-of-range", lambda w: w.train(w.data, "--order", "0", "5"), "order"),
        Case("config-missing-file", lambda w: w.train(w.data, "--config", str(w.tmp / "no.yaml")),
             "cannot read config"),
        Case("config-is-a-directory", lambda w: w.train(w.data, "--config", str(w.tmp)),
             "cannot read config"),
        Case("config-invalid-yaml",
             lambda w: w.train(w.data, "--config", str(_write(w, "bad.yaml", "policy: [1,\n"))),
             "not valid YAML"),
        Case("config-unknown-key",
             lambda w: w.train(w.data, "--config", str(_write(w, "bad.yaml", "policy:\n  betta: 1\n"))),
             "unknown key 'policy.betta'"),
        Case("config-a-list",
             lambda w: w.train(w.data, "--config", str(_write(w, "bad.yaml", "- 1\n- 2\n"))),
             "expected a mapping"),
        Case("flag-behavior-steps", lambda w: w.train(w.data, "--behavior.steps", "-5"),
             "command line: key 'behavior.steps'"),
        Case("flag-log-every", lambda w: w.train(w.data, "--log_every", "0"),
             "command line: key 'log_every'"),
        Case("flag-policy-beta-nan", lambda w: w.train(w.data, "--policy.beta", "nan"),
             "command line: key 'policy.beta'"),
        Case("flag-critic-gamma", lambda w: w.train(w.data, "--critic.gamma", "-0.1"),
             "command line: key 'critic.gamma'"),
        Case("flag-budget-negative", lambda w: w.train(w.data, "--budget", "-5"), "--budget"),
        Case("flag-budget-zero", lambda w: w.train(w.data, "--budget", "0"), "--budget"),
    ]
    return cases


def _write(world: World, name: str, text: str) -> Path:
    path = world.tmp / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- command lines

def _tampered(name: str, edit: Callable[[dict], object]) -> Callable[[World], Path]:
    """A copy of the run with <name>.json rewritten by edit(parsed JSON) (a str is raw text)."""
    def make(world: World) -> Path:
        run = world.copy_run()
        path = run / f"{name}.json"
        new = edit(json.loads(path.read_text()))
        path.write_text(new if isinstance(new, str) else json.dumps(new))
        return run
    return make


def _drop_meta_key(key: str):
    def edit(doc: dict) -> dict:
        del doc["meta"][key]
        return doc
    return edit


def _bad_config(doc: dict) -> dict:
    doc["meta"]["config"]["behavior"]["steps"] = -5
    return doc


def _truncated_weights(name: str) -> Callable[[World], Path]:
    def make(world: World) -> Path:
        run = world.copy_run()
        path = run / f"{name}.safetensors"
        path.write_bytes(path.read_bytes()[:100])
        return run
    return make


def _cli_cases() -> list[Case]:
    return [
        Case("sample-count-zero", lambda w: ["sample", str(w.run), "--count", "0"], "--count"),
        Case("sample-count-negative", lambda w: ["sample", str(w.run), "--count", "-3"], "--count"),
        Case("sample-steps-zero", lambda w: ["sample", str(w.run), "--steps", "0"], "--steps"),
        Case("sample-run-is-a-file", lambda w: ["sample", str(w.data)], "d.h5"),
        Case("sample-data-broken", lambda w: ["sample", str(w.run), "--data",
                                              str(_file_bytes(lambda _: b"junk")(w))],
             "cannot read HDF5"),
        Case("sample-behavior-json-invalid",
             lambda w: ["sample", str(_tampered("behavior", lambda d: "{not json")(w))],
             "behavior.json"),
        Case("sample-behavior-json-bad-config",
             lambda w: ["sample", str(_tampered("behavior", _bad_config)(w))], "behavior.steps"),
        Case("sample-behavior-weights-truncated",
             lambda w: ["sample", str(_truncated_weights("behavior")(w))], "behavior.safetensors"),
        Case("train-run-is-a-file", lambda w: ["train", "all", "--data", str(w.data), "--run",
                                               str(w.data), *TINY], "is a file, not a run directory"),
        Case("evaluate-run-is-a-file", lambda w: ["evaluate", str(w.data)], "d.h5"),
        Case("evaluate-episodes-zero", lambda w: ["evaluate", str(w.run), "--episodes", "0"],
             "--episodes"),
        Case("evaluate-episodes-negative", lambda w: ["evaluate", str(w.run), "--episodes", "-1"],
             "--episodes"),
        Case("evaluate-envs-zero", lambda w: ["evaluate", str(w.run), "--envs", "0"], "--envs"),
        Case("evaluate-agents-zero", lambda w: ["evaluate", str(w.run), "--agents", "0"],
             "--agents"),
        Case("suite-seed-negative", lambda w: ["suite", "--seeds", "-1", "--root", str(w.tmp)],
             "--seeds"),
        Case("suite-agents-zero", lambda w: ["suite", "--agents", "0", "--root", str(w.tmp)],
             "--agents"),
        Case("data-make-agents-zero", lambda w: ["data", "make", "spread", "expert", "--agents",
                                                 "0", "--out", str(w.tmp / "z.h5")], "--agents"),
        Case("evaluate-unknown-task", lambda w: ["evaluate", str(w.run), "--task", "mpe/nowhere"],
             "mpe/nowhere"),
        Case("evaluate-behaviour-rows-zero",
             lambda w: ["evaluate", str(w.run), "--behaviour", "--rows", "0"], "--rows"),
        Case("evaluate-actors-json-invalid",
             lambda w: ["evaluate", str(_tampered("actors", lambda d: "{not json")(w))],
             "actors.json"),
        Case("evaluate-actors-json-a-list",
             lambda w: ["evaluate", str(_tampered("actors", lambda d: [1, 2])(w))], "actors.json"),
        Case("evaluate-actors-json-no-description",
             lambda w: ["evaluate", str(_tampered("actors", _drop_meta_key("actors"))(w))],
             "actors.json"),
        Case("evaluate-actors-weights-truncated",
             lambda w: ["evaluate", str(_truncated_weights("actors")(w))], "actors.safetensors"),
        Case("data-make-out-is-a-directory",
             lambda w: ["data", "make", "spread", "random", "--episodes", "2", "--out", str(w.tmp)],
             "--out"),
        Case("data-make-episodes-zero",
             lambda w: ["data", "make", "spread", "random", "--episodes", "0", "--out",
                        str(w.tmp / "d.h5")], "--episodes"),
        Case("data-make-episodes-negative",
             lambda w: ["data", "make", "spread", "random", "--episodes", "-5", "--out",
                        str(w.tmp / "d.h5")], "--episodes"),
        Case("data-import-omar-missing-folder",
             lambda w: ["data", "import-omar", str(w.tmp / "none"), "--task", "spread", "--out",
                        str(w.tmp / "d.h5")], "none"),
        Case("data-import-ogmarl-missing-vault",
             lambda w: ["data", "import-ogmarl", str(w.tmp / "none.vlt" / "Good"), "--out",
                        str(w.tmp / "d.h5")], "none.vlt/Good: no such directory"),
    ]


CASES = _data_cases() + _config_cases() + _cli_cases()


# --------------------------------------------------------------------------- the world

def make_world_files(root: Path) -> tuple[Path, Path]:
    """A valid tiny bandit dataset and a finished tiny run on it."""
    data = root / "d.h5"
    write_dataset(data, bandit.make_dataset(ROWS, seed=1))
    run = root / "run"
    code, err = run_cli(["train", "all", "--data", str(data), "--run", str(run), *TINY])
    assert code == 0, err
    return data, run


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return make_world_files(tmp_path_factory.mktemp("world"))


def test_the_table_is_large_and_names_are_unique():
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_one_clean_error(case, shared, tmp_path):
    world = World(*shared, tmp_path)
    code, err = run_cli(case.argv(world))
    assert "Traceback" not in err
    assert code == 2, f"exit {code}; stderr: {err}"
    assert case.message in err, err
    assert err.count("error:") == 1, err


@pytest.mark.parametrize("method, overrides, message", [
    ("iql", {"steps": -5}, "key 'steps': must be >= 1, got -5"),
    ("iql", {"max_weight": 0.0}, "key 'max_weight': must be > 0"),
    ("matd3bc", {"policy_delay": 0}, "key 'policy_delay': must be >= 1"),
    ("macql", {"grad_clip": float("nan")}, "key 'grad_clip': must be > 0, got nan"),
    ("omar", {"coe": 1.5}, "key 'coe': must be in [0, 1], got 1.5"),
    ("omar", {"search": "cem", "omar_samples": 4, "omar_elites": 5}, "key 'omar_elites': must be in"),
    ("omar", {"batch_size": ROWS + 1}, f"{ROWS} row(s), fewer than batch_size = {ROWS + 1}"),
], ids=lambda v: v if isinstance(v, str) and " " not in v else None)
def test_bad_baseline_settings_are_one_clean_error(method, overrides, message, shared, tmp_path):
    """The baselines have no `train` flags; their settings come as method overrides (the
    suite's presets) and meet the same checks before anything is built."""
    from scoredec.methods import get_method

    with pytest.raises(ValueError) as info:
        get_method(method).train(shared[0], tmp_path / "run", seed=0, progress=False,
                                 overrides={"device": "cpu", **overrides})
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- tally

def tally() -> dict[str, list[str]]:
    """Each case's outcome on the installed code: clean (exit 2, one error line with the
    message), vague (exit 2 without the message), traceback (an exception escaped), silent
    (exit 0) or other (any other exit code)."""
    import tempfile

    outcomes: dict[str, list[str]] = {"clean": [], "vague": [], "traceback": [], "silent": [],
                                      "other": []}
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        data, run = make_world_files(root)
        for i, case in enumerate(CASES):
            tmp = root / f"case{i}"
            tmp.mkdir()
            try:
                code, err = run_cli(case.argv(World(data, run, tmp)))
            except Exception:  # noqa: BLE001 - the point is to count them
                outcomes["traceback"].append(f"{case.name}: " + traceback.format_exc(limit=0).strip())
                continue
            if code == 0:
                kind = "silent"
            elif code != 2:
                kind = "other"
            else:
                kind = "clean" if case.message in err and "Traceback" not in err else "vague"
            last = err.strip().splitlines()[-1] if err.strip() else ""
            outcomes[kind].append(f"{case.name}: {last}")
    return outcomes


if __name__ == "__main__":
    result = tally()
    for kind, lines in result.items():
        print(f"\n## {kind}: {len(lines)}")
        for line in lines:
            print("  " + line[:300])
    print("\n" + ", ".join(f"{k} {len(v)}" for k, v in result.items()) + f" of {len(CASES)} cases")
    sys.exit(0)
