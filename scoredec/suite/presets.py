"""The suite's presets, in one place: which grid, how big the datasets, how long each method
trains, how it is evaluated.

- smoke: one tiny cell per method on spread/medium (tens of steps; CI runs it).
- cpu: spread, tag, world (and HalfCheetah 2x3 where it installs) at all four qualities,
  3 seeds, every method, sized for about 6 hours of 2-core compute for the whole grid; measured,
  it needs about 9 (results/README.md: the figures, and how it differs from the paper's setting).
- paper: the paper's networks and step counts (configs/paper.yaml) for GPUs.

Method configuration: the OMSD family (omsd, brpo-*, bc) takes a nested TrainConfig dict
(``pipeline``, plus ``beta`` per quality: DESIGN.md 1.5, expert small, random large). A
baseline takes ``method_overrides[name]`` (and ``quality_overrides[name][quality]``) when
the preset has them, else its defaults with the generic ``steps`` key set to ``baseline_steps``
when its config has a ``steps`` field. beta values are fixed from DESIGN.md 1.5 before any run:
nothing here was selected on evaluation seeds.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from scoredec.datagen.factory import DEFAULT_EPISODES, QUALITIES
from scoredec.methods import family, merge, variant
from scoredec.suite.grid import split_task, task_label

__all__ = ["Preset", "PRESETS", "get_preset", "on_user_dataset", "preset_names", "PAPER_CONFIG"]

log = logging.getLogger(__name__)

PAPER_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "paper.yaml"
"""The authors' sizes (a TrainConfig YAML in the source tree)."""

TUNED_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tuned" / "cpu.yaml"
"""Hyperparameters chosen by `scoredec suite tune` (suite/tuning.py) for the cpu presets."""

BETA = {"random": 0.3, "medium-replay": 0.1, "medium": 0.05, "expert": 0.005}
"""OMSD's beta per quality (DESIGN.md 1.5: expert ~0.001-0.005, random ~0.3-0.5; medium in
between, at the paper config's default 0.05). Fixed before any evaluation."""


@dataclass(frozen=True)
class Preset:
    """One grid and how every cell of it is trained and evaluated."""

    name: str
    """smoke, cpu or paper."""
    tasks: tuple[str, ...]
    """Environments (dataset env ids) of the grid."""
    qualities: tuple[str, ...]
    """Dataset qualities of the grid."""
    seeds: tuple[int, ...]
    """Training seeds (the datasets are the same for every seed and method)."""
    episodes: dict[str, int]
    """Dataset size per quality, in episodes (MPE episodes are 25 steps)."""
    data_seed: int = 0
    """Seed of the dataset factory (one dataset per task x quality, shared by all cells)."""
    eval_episodes: int = 100
    """Evaluation episodes per cell, decentralized."""
    eval_envs: int = 100
    """Environments stepped in parallel during evaluation."""
    eval_seed: int = 1_000_000
    """Evaluation episodes use seeds eval_seed + 1000 * seed + round: never a training seed."""
    device: str = "auto"
    """Device of training and evaluation (cpu, cuda, auto)."""
    pipeline: dict = field(default_factory=dict)
    """TrainConfig overrides (nested dict) shared by omsd, brpo-* and bc."""
    beta: dict[str, float] = field(default_factory=lambda: dict(BETA))
    """policy.beta per quality for the methods with a critic term (not bc)."""
    method_overrides: dict[str, dict] = field(default_factory=dict)
    """Per-method config overrides (baselines: their own config dict; OMSD family: merged on
    top of ``pipeline``)."""
    quality_overrides: dict[str, dict[str, dict]] = field(default_factory=dict)
    """method -> quality -> overrides, merged last (e.g. TD3+BC's alpha per quality)."""
    task_overrides: dict[str, dict[str, dict]] = field(default_factory=dict)
    """method -> task -> overrides, merged after ``method_overrides`` and before
    ``quality_overrides`` (e.g. OMAR's MaMuJoCo settings on HalfCheetah)."""
    baseline_steps: int | None = None
    """Generic ``steps`` for a method without overrides here whose config has a ``steps``
    field (None: its own default)."""
    probe_steps: int = 0
    """Steps per stage of the timing probe run before the grid (0: no probe, no estimate)."""
    notes: str = ""
    """One line on what the preset is for."""
    task_episodes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per-task dataset sizes that replace ``episodes`` for that task (a MaMuJoCo episode is
    1000 steps, an MPE one 25)."""
    task_eval_episodes: dict[str, int] = field(default_factory=dict)
    """Per-task evaluation episodes that replace ``eval_episodes`` for that task."""
    share_stages: bool = True
    """Copy a behaviour model or critic that another cell of the OMSD family already trained
    with the same dataset, seed and config instead of training it again (suite/share.py)."""
    datasets: dict[tuple[str, str], str] = field(default_factory=dict)
    """Files that replace the generated dataset of a (task, quality): a user's own dataset
    (`suite --data FILE`, on_user_dataset)."""
    eval_every: int = 0
    """Actor steps between evaluations during training (scoredec.periodic_eval: the return
    curve of the cell JSON and the curves plot; changes no trained number); 0: none."""
    n_agents: int | None = None
    """Learned agents of every task of the grid (spread takes 2..6; tag, world and MaMuJoCo
    only their own count); None: each task's default. Another count than a task's default
    labels its cells and datasets (spread-n4: grid.task_label)."""

    def grid_tasks(self) -> tuple[str, ...]:
        """The task labels of the grid's cells: ``tasks`` with ``n_agents`` applied (ValueError
        naming a task that does not take that count)."""
        if self.n_agents is None:
            return self.tasks
        from scoredec.envs.scenario import check_agents

        labels = []
        for label in self.tasks:
            task, n = split_task(label)
            if n is not None and n != self.n_agents:
                raise ValueError(f"task {label} names {n} agents, the preset asks for "
                                 f"{self.n_agents}")
            labels.append(task_label(task, check_agents(task, self.n_agents)))
        return tuple(labels)

    def episodes_for(self, task: str, quality: str) -> int | None:
        """Dataset size of one task (label) x quality, in episodes (None: a user's file, as
        it is)."""
        if (task, quality) in self.datasets:
            return None
        return self.task_episodes.get(split_task(task)[0], self.episodes)[quality]

    def eval_episodes_for(self, task: str) -> int:
        return self.task_eval_episodes.get(split_task(task)[0], self.eval_episodes)


BASELINES = ("iql", "matd3bc", "macql", "omar")
"""The baselines of scoredec/baselines (all extend its BaselineConfig). A preset sizes them
explicitly, like the OMSD family: the registry entry does not expose their config class."""


def _baselines(*, steps: int, critic_hidden: int, actor_hidden: int, batch_size: int,
               device: str, log_every: int, checkpoint_every: int) -> dict[str, dict]:
    common = {"steps": steps, "critic_hidden": critic_hidden, "actor_hidden": actor_hidden,
              "batch_size": batch_size, "device": device, "log_every": log_every,
              "checkpoint_every": checkpoint_every}
    return {m: dict(common) for m in BASELINES}


# --------------------------------------------------------------------------- smoke

def smoke() -> Preset:
    steps = 30
    return Preset(
        name="smoke", tasks=("spread",), qualities=("medium",), seeds=(0,),
        episodes={q: 20 for q in QUALITIES}, eval_episodes=5, eval_envs=5, device="cpu",
        pipeline={"device": "cpu", "log_every": 10, "checkpoint_every": 1000,
                  "behavior": {"arch": "compact", "hidden": 32, "compact_layers": 2,
                               "batch_size": 64, "steps": steps},
                  "critic": {"hidden": 32, "batch_size": 64, "steps": steps},
                  "policy": {"hidden": 32, "batch_size": 64, "steps": steps}},
        method_overrides=_baselines(steps=steps, critic_hidden=32, actor_hidden=32, batch_size=64,
                                    device="cpu", log_every=10, checkpoint_every=1000),
        baseline_steps=steps,
        notes="one tiny cell per method: checks the harness end to end, not the numbers")


# --------------------------------------------------------------------------- cpu

CPU_STEPS = 4000
"""Optimizer steps of every stage and every baseline in the cpu preset, chosen for a whole grid of
about 6 hours of 2-core compute (two shards of one thread each); measured, it needs about 9
(results/README.md has the figures)."""

CPU_BEHAVIOR_STEPS = 20_000
"""Behaviour-model steps of the OMSD family in the cpu preset, at a constant learning rate (its
weight average smooths the last steps instead). Measured on spread expert, tuning seed 100, the
behaviour model sampled as a policy: 23.7 normalized after 4k steps, 34.7 after 10k and 58.3
after 20k with a cosine schedule; 50.2 after 10k and 80.6 after 20k at a constant rate
(results/README.md, "Making OMSD work"). A diffusion model needs more steps than the regressions
it is compared with."""

CPU_POLICY_STEPS = 16_000
"""Actor steps of the OMSD family (BC included, so that it keeps the same budget as the actors it
is compared with). Measured on spread expert seed 0 from a behaviour model that samples at 84.9:
the OMSD actors score 44.2 after 4k steps, 70.5 after 8k and 89.4 after 16k."""

CPU_LR = {"behavior": 1e-3, "critic": 1e-3, "actor": 3e-3}
"""Learning rates of the cpu preset, the same for every method that takes them (MA-CQL and OMAR
keep their published 0.01). Raised from the paper's 3e-4 because 4k steps are 0.4 % of its
1M: measured on a tuning seed (100, never reported), BC on spread/expert reached 47 normalized
after 5k steps at 1e-3 and 95 after 10k at 3e-3."""

CPU_EPISODES = {"mpe": 2000, "mamujoco": 100}
"""Dataset size per task x quality: 2,000 MPE episodes (50k transitions) and 100 HalfCheetah
episodes (100k transitions)."""

CPU_MAMUJOCO_EVAL_EPISODES = 10
"""HalfCheetah cells evaluate 10 episodes of 1000 steps (DESIGN.md 1.7: the authors evaluate
10), MPE cells 100 of 25."""


def _cpu_tasks() -> tuple[str, ...]:
    """spread, tag, world, and halfcheetah-2x3 when both its environment and a dataset
    generator for it exist here (logged when it is left out)."""
    from scoredec.datagen.factory import MAMUJOCO_TASKS, TASKS

    tasks = ("spread", "tag", "world")
    extra = "halfcheetah-2x3"
    if extra not in TASKS and extra not in MAMUJOCO_TASKS:
        log.info("cpu preset: %s left out: the dataset factory has no generator for it "
                 "(factory.TASKS = %s)", extra, ", ".join(TASKS))
        return tasks
    from scoredec.envs import make_env

    try:
        make_env(extra, 1)
    except ImportError as err:   # optional extra (gymnasium-robotics, mujoco) not installed
        log.info("cpu preset: %s left out: make_env failed: %s", extra, err)
        return tasks
    return (*tasks, extra)


def cpu() -> Preset:
    from scoredec.datagen.factory import MAMUJOCO_TASKS

    tasks = _cpu_tasks()
    steps, lr = CPU_STEPS, CPU_LR
    baselines = _baselines(steps=steps, critic_hidden=128, actor_hidden=64, batch_size=256,
                           device="cpu", log_every=100, checkpoint_every=1000)
    for name in ("iql", "matd3bc"):
        baselines[name].update(critic_lr=lr["critic"], actor_lr=lr["actor"])
    for name in ("macql", "omar"):
        # OMAR's published particle-task width (its lr 0.01 is their config's default too);
        # at 128 an MA-CQL cell cost ~480 CPU-s (~250 at 64), most of it the CQL samples'
        # critic passes.
        baselines[name].update(critic_hidden=64)
    mamujoco = [t for t in tasks if t in MAMUJOCO_TASKS]
    # OMAR main.py's MaMuJoCo settings (discount, Polyak, noisy policy actions in the CQL term,
    # the CEM search with its sizes) at the cpu preset's learning rates (OMAR: 3e-4, as IQL and
    # TD3+BC, which the cpu preset raises) and MA-CQL/OMAR width (OMAR: 256; measured with
    # two other jobs on the 2 cores, 4k steps of an OMAR cell took ~670 s at 64, ~1490 at 128).
    mamujoco_cql = {"gamma": 0.99, "polyak": 0.005, "policy_samples": True,
                    "critic_lr": lr["critic"], "actor_lr": lr["actor"]}
    mamujoco_omar = {**mamujoco_cql, "search": "cem", "omar_iters": 2, "omar_samples": 20,
                     "omar_elites": 5}
    task_overrides = {"macql": {t: dict(mamujoco_cql) for t in mamujoco},
                      "omar": {t: dict(mamujoco_omar) for t in mamujoco}}
    # The behaviour score nets standardize MaMuJoCo observations (joint velocities std 7-10
    # against 0.3-0.5 for the angles; MADiff's and Diffuser's normalizers do the same): +4.6
    # and +6.9 on the OMSD actors of HalfCheetah medium and expert on the tuning seed, within
    # noise on the reported seeds (results/README.md). MPE observations are near unit scale;
    # there it was not measured.
    for method in family():
        if variant(method).score_mode is not None:
            task_overrides[method] = {t: {"behavior": {"obs_norm": True}} for t in mamujoco}
    return Preset(
        name="cpu", tasks=tasks, qualities=QUALITIES, seeds=(0, 1, 2),
        episodes={q: CPU_EPISODES["mpe"] for q in QUALITIES},
        task_episodes={t: {q: CPU_EPISODES["mamujoco"] for q in QUALITIES} for t in mamujoco},
        eval_episodes=100, eval_envs=100,
        task_eval_episodes={t: CPU_MAMUJOCO_EVAL_EPISODES for t in mamujoco}, device="cpu",
        pipeline={"device": "cpu", "log_every": 100, "checkpoint_every": 1000,
                  "behavior": {"arch": "compact", "hidden": 128, "compact_layers": 3,
                               "batch_size": 256, "steps": CPU_BEHAVIOR_STEPS,
                               "lr": lr["behavior"], "lr_end": lr["behavior"]},
                  "critic": {"hidden": 128, "batch_size": 256, "steps": steps, "lr": lr["critic"]},
                  "policy": {"hidden": 64, "batch_size": 256, "steps": CPU_POLICY_STEPS,
                             "lr": lr["actor"]}},
        # Baselines get the same batch and step count as OMSD's critic and actors, and the
        # same widths except MA-CQL's and OMAR's critics (their published 64).
        method_overrides=baselines, task_overrides=task_overrides, baseline_steps=steps,
        probe_steps=200,
        notes="the table a 2-core machine can make: compact score nets, 50k-transition MPE "
              "datasets, 20k behaviour steps, 16k actor steps (OMSD family and BC), 4k steps for "
              "the critics and the baselines")


LONG_FACTOR = 5
"""Step multiplier of the cpu-long preset."""


def cpu_long() -> Preset:
    """The cpu preset with every step count x LONG_FACTOR: the check of what longer training
    does to the cpu table (results/README.md), run on a few cells into its own root."""
    base = cpu()
    steps = CPU_STEPS * LONG_FACTOR
    pipeline = merge(base.pipeline, {"behavior": {"steps": CPU_BEHAVIOR_STEPS * LONG_FACTOR},
                                     "critic": {"steps": steps},
                                     "policy": {"steps": CPU_POLICY_STEPS * LONG_FACTOR},
                                     "checkpoint_every": 5000})
    overrides = {m: {**o, "steps": steps, "checkpoint_every": 5000}
                 for m, o in base.method_overrides.items()}
    return dataclasses.replace(base, name="cpu-long", pipeline=pipeline, method_overrides=overrides,
                               baseline_steps=steps,
                               notes=f"the cpu preset with {LONG_FACTOR}x the steps, for the "
                                     "longer-training check of a few cells")


# --------------------------------------------------------------------------- paper

def paper() -> Preset:
    if not PAPER_CONFIG.is_file():
        raise FileNotFoundError(f"{PAPER_CONFIG}: the paper preset reads the authors' sizes from "
                                "configs/paper.yaml of the source tree")
    cfg = yaml.safe_load(PAPER_CONFIG.read_text(encoding="utf-8"))
    pipeline = {k: v for k, v in cfg.items() if k not in ("method", "seed")}
    return Preset(
        name="paper", tasks=("spread", "tag", "world"), qualities=QUALITIES, seeds=(0, 1, 2, 3, 4),
        episodes=dict(DEFAULT_EPISODES), eval_episodes=100, eval_envs=100, device="auto",
        pipeline=pipeline, baseline_steps=int(cfg["policy"]["steps"]), probe_steps=20,
        notes=f"the authors' sizes ({PAPER_CONFIG.name}) on the full-size datasets, for GPUs")


PRESETS = {"smoke": smoke, "cpu": cpu, "cpu-long": cpu_long, "paper": paper}


def preset_names() -> tuple[str, ...]:
    return tuple(PRESETS)


OMSD_FAMILY = ("omsd", "brpo-ind", "brpo-ctde", "brpo-jal")
"""The score-regularized methods: they share OMSD's tuned beta and weighting."""


def apply_tuned(preset: Preset, path: Path = TUNED_CONFIG) -> Preset:
    """The preset with the values `scoredec suite tune` chose (if that file exists): OMSD's
    beta (and weighting) per quality for the whole OMSD family, and each baseline's searched
    field."""
    if not Path(path).is_file():
        log.info("%s: no tuned values yet; preset %s uses its defaults", path, preset.name)
        return preset
    chosen = (yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}).get("chosen", {})
    beta = dict(preset.beta)
    quality_overrides = {m: dict(v) for m, v in preset.quality_overrides.items()}
    for quality, fields in chosen.get("omsd", {}).items():
        beta[quality] = float(fields["policy.beta"])
        if "policy.weighting" in fields:   # the OMSD family regularizes with one weighting
            for method in OMSD_FAMILY:
                quality_overrides.setdefault(method, {})[quality] = merge(
                    quality_overrides.get(method, {}).get(quality, {}),
                    {"policy": {"weighting": fields["policy.weighting"]}})
    for method, per_quality in chosen.items():
        if method.startswith("brpo-") or method == "omsd":
            continue
        for quality, fields in per_quality.items():
            quality_overrides.setdefault(method, {})[quality] = dict(fields)
    return dataclasses.replace(preset, beta=beta, quality_overrides=quality_overrides)


def on_user_dataset(preset: Preset, path: Path) -> Preset:
    """The preset's methods, seeds, sizes and evaluation on one user dataset file: one task (the
    dataset's environment) and one "quality" (the file's stem), so cells are named
    METHOD__ENV__STEM__sSEED. The per-quality values (beta, tuned fields) of the preset do not
    apply: the OMSD family keeps its pipeline's policy.beta."""
    from scoredec.data.hdf5 import read_dataset

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file (--data)")
    env_id = read_dataset(path).env_id   # validated on read: a bad file stops here
    for what, name in (("file name", path.stem), ("environment id", env_id)):
        if not name or "__" in name or "/" in name:
            raise ValueError(f"{path}: the {what} {name!r} names the suite's cells and may not be "
                             "empty or contain '__' or '/'; rename it")
    return dataclasses.replace(preset, tasks=(env_id,), qualities=(path.stem,),
                               datasets={(env_id, path.stem): str(path.resolve())})


def get_preset(name: str, tuned: bool = True, **changes) -> Preset:
    """The named preset, with fields replaced by ``changes`` (e.g. tasks=..., seeds=...).
    tuned: apply configs/tuned/cpu.yaml to the cpu presets."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    preset = PRESETS[name]()
    if tuned and name in ("cpu", "cpu-long"):
        preset = apply_tuned(preset)
    return dataclasses.replace(preset, **{k: v for k, v in changes.items() if v is not None})
