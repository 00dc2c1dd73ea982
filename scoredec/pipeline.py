"""`scoredec train`: dataset file -> stage 1 (behaviour, critic) -> stage 2 (actors), in a run dir.

Each stage's finished product is saved as <run>/<name>.safetensors + .json (weights plus the
meta needed to rebuild the module), so later stages, `evaluate` and `sample` load it without
the training code's state. While a stage trains, resumable checkpoints go to
<run>/checkpoints/. The config is seeded before any network is built.

`drive` is the one training driver of every method: the OMSD family's stages here and each
baseline's single stage (scoredec.baselines.common) are StagePlans it runs in a run directory.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from scoredec import distributed
from scoredec.actors import Actors
from scoredec.behavior import BehaviorConfig, BehaviorModel, BehaviorStage, legacy_defaults
from scoredec.captured import CAPTURE_MODES, CapturedStep
from scoredec.checkpoint import CheckpointError, is_complete, load_checkpoint, save_checkpoint
from scoredec.config import (SEED_BOUNDS, FieldError, config_from_dict, config_to_dict, param,
                             validate_config)
from scoredec.critic import CriticConfig, CriticStage, IQLCritic
from scoredec.data.fingerprint import file_sha256
from scoredec.data.hdf5 import read_dataset
from scoredec.data.schema import DatasetError
from scoredec.data.tensors import OfflineData
from scoredec.layout import AgentSpec
from scoredec.periodic_eval import PeriodicEval
from scoredec.registry import family, variant
from scoredec.policy import PolicyConfig, PolicyObjective, PolicyStage
from scoredec.runs import MetricsLogger, RunDir, RunView
from scoredec.training import EVAL_STAGE, Stage, run_stage

log = logging.getLogger(__name__)

STAGES = ("behavior", "critic", "policy")


@dataclass
class RunConfig:
    """Fields every method's run has (TrainConfig and the baselines' configs extend it)."""

    seed: int = param(0, "seed of every generator, set before any network is built",
                      bounds=SEED_BOUNDS)
    device: str = param("auto", "cpu, cuda, or auto (cuda when available)",
                        choices=("auto", "cpu", "cuda"))
    log_every: int = param(1000, "steps between metric records", bounds="[1, inf)")
    checkpoint_every: int = param(10_000, "steps between resumable checkpoints", bounds="[1, inf)")


@dataclass
class TrainConfig(RunConfig):
    """One training run of one OMSD-family method on one dataset."""

    method: str = param("omsd", "stage-2 method (brpo-jal is a centralized oracle)",
                        choices=family())
    order: tuple[int, ...] | None = param(None, "agent order of the sequential decomposition "
                                                "(default 0..n-1)", bounds="[0, inf)")
    capture: str = param("none", "run the behaviour and policy steps eagerly (none), through "
                                 "torch.compile (compile), or as one CUDA graph per step (graph, "
                                 "GPU only); the same noise draws either way",
                         choices=CAPTURE_MODES)
    behavior: BehaviorConfig = param(BehaviorConfig, "behaviour score models (stage 1a)")
    critic: CriticConfig = param(CriticConfig, "IQL critic (stage 1b)")
    policy: PolicyConfig = param(PolicyConfig, "actors (stage 2)")

    def __post_init__(self):
        # Whether the order covers 0..n-1 depends on the data; a repeat is wrong for any data.
        if self.order is not None and len(set(self.order)) != len(self.order):
            raise FieldError("order", f"names an agent twice: {list(self.order)}")


def saved_train_config(saved: dict) -> dict:
    """A TrainConfig dict read from a product's JSON or a run's config.yaml, with the fields that
    configs saved before they existed lack filled with the values they were trained with."""
    out = dict(saved)
    if "behavior" in saved:
        out["behavior"] = legacy_defaults(saved["behavior"])
    if "policy" in saved:
        out["policy"] = {"input_norm": False, **saved["policy"]}
    return out


def _stored_run_config(stored: dict) -> dict:
    """A run's stored config.yaml ({"train": ..., "data": ...}) completed as saved_train_config
    completes its train section (RunDir.complete_stored)."""
    train = stored.get("train")
    return {**stored, "train": saved_train_config(train)} if isinstance(train, dict) else stored


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA device")
    return torch.device(name)


def spec_meta(spec: AgentSpec) -> dict:
    return {"obs_dims": list(spec.obs_dims), "act_dims": list(spec.act_dims)}


def spec_from_meta(meta: dict) -> AgentSpec:
    return AgentSpec(tuple(meta["obs_dims"]), tuple(meta["act_dims"]))


def stages_for(method: str) -> tuple[str, ...]:
    """The stages a method needs: BC has no behaviour model and no critic."""
    return ("policy",) if variant(method).score_mode is None else STAGES


# --------------------------------------------------------------------------- building modules

def build_behavior(spec: AgentSpec, cfg: TrainConfig) -> BehaviorModel:
    return BehaviorModel(spec, variant(cfg.method).score_mode, cfg.behavior, order=cfg.order)


def build_critic(spec: AgentSpec, cfg: TrainConfig) -> IQLCritic:
    return IQLCritic(spec, variant(cfg.method).critic_scope, cfg.critic)


def build_actors(spec: AgentSpec, cfg: TrainConfig) -> Actors:
    return Actors(spec, variant(cfg.method).actor_mode, cfg.policy.hidden, cfg.policy.layers,
                  input_norm=cfg.policy.input_norm)


BUILDERS = {"behavior": build_behavior, "critic": build_critic, "policy": build_actors}


PRODUCT_NAMES = {"behavior": "behavior", "critic": "critic", "policy": "actors"}
"""Stage -> the file stem of its product in the run directory."""


def product_stem(run: Path, stage: str) -> Path:
    return Path(run) / PRODUCT_NAMES[stage]


def save_product(run: Path, stage: str, module: torch.nn.Module, spec: AgentSpec,
                 cfg: TrainConfig, origin: dict) -> None:
    """origin: where the data came from ({"data": path, "env_id": ...}), for evaluate/sample."""
    meta = {"stage": stage, "spec": spec_meta(spec), "config": config_to_dict(cfg), **origin}
    if stage == "policy":
        meta["actors"] = module.describe()
    save_checkpoint(product_stem(run, stage), modules={stage: module}, global_rng=False, meta=meta)


def save_actors(run: Path, actors: Actors, meta: dict) -> None:
    """Final actors of any method (OMSD family or a baseline) as <run>/actors.safetensors +
    .json; meta should hold env_id and data so that `scoredec evaluate RUN` needs nothing else."""
    meta = {**meta, "stage": "policy", "actors": actors.describe()}
    save_checkpoint(product_stem(run, "policy"), modules={"policy": actors}, global_rng=False,
                    meta=meta)


def check_run_path(run: str | Path) -> None:
    """Refuse a run path that names a file: it can be neither read nor created as a run."""
    if Path(run).exists() and not Path(run).is_dir():
        raise ValueError(f"{run}: is a file, not a run directory")


def _product_meta(stem: Path, sections: tuple[str, ...]) -> dict:
    """The meta of a finished product's JSON, with the mappings `sections` it is rebuilt from;
    a damaged JSON is a CheckpointError naming it (load_checkpoint then checks the weights)."""
    path = Path(f"{stem}.json")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e}); the product is damaged") from None
    meta = doc.get("meta") if isinstance(doc, dict) else None
    for name in sections:
        if not isinstance(meta, dict) or not isinstance(meta.get(name), dict):
            raise CheckpointError(f"{path}: its meta has no '{name}' mapping; the product is damaged")
    return meta


def _rebuild(stem: Path, build: Callable[[], object]):
    """build() from a product's stored description; a description that does not build is a
    CheckpointError naming the JSON, not a traceback from deep inside a constructor."""
    try:
        return build()
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{stem}.json: cannot rebuild the module from its description "
                              f"({type(e).__name__}: {e}); the product is damaged") from None


def load_actors(run: Path, device: torch.device | str = "cpu") -> tuple[Actors, dict]:
    """The final actors of any method's run, rebuilt from their description: (actors, meta)."""
    check_run_path(run)
    stem = product_stem(run, "policy")
    if not is_complete(stem):
        raise FileNotFoundError(f"{stem}.json: run {run} has no finished actors")
    meta = _product_meta(stem, ("actors",))
    actors = _rebuild(stem, lambda: Actors.from_description(meta["actors"]))
    load_checkpoint(stem, modules={"policy": actors}, global_rng=False)
    return actors.to(device).eval(), meta


@dataclass
class Product:
    """A finished stage loaded from a run: the module, the agents' widths, the run's config and
    the stored meta (which also records the data file and env_id)."""

    module: torch.nn.Module
    spec: AgentSpec
    config: TrainConfig
    meta: dict


def load_product(run: Path, stage: str, device: torch.device | str = "cpu") -> Product:
    """Rebuild and load a finished stage's module from <run>/<name>.safetensors + .json."""
    check_run_path(run)
    stem = product_stem(run, stage)
    if not is_complete(stem):
        raise FileNotFoundError(f"{stem}.json: stage '{stage}' has not finished in run {run}")
    meta = _product_meta(stem, ("config", "spec"))
    cfg = config_from_dict(TrainConfig, saved_train_config(meta["config"]), where=f"{stem}.json")
    spec = _rebuild(stem, lambda: spec_from_meta(meta["spec"]))
    module = _rebuild(stem, lambda: BUILDERS[stage](spec, cfg))
    load_checkpoint(stem, modules={stage: module}, global_rng=False)
    return Product(module.to(device), spec, cfg, meta)


# --------------------------------------------------------------------------- training

@dataclass
class OpenRun:
    """A run directory opened on its dataset: where every method's training starts. Holds the
    run's lock until close() (a context manager: `with open_run(...) as opened:`)."""

    path: Path
    run: RunDir
    data: OfflineData
    origin: dict          # data_origin() (data file, env_id, agent names, scenario, references)
                          # and "data_sha256"; saved with the products
                          # saved with the products
    device: torch.device
    data_changed_from: str | None = None   # the hash run.json held, when allowed to differ

    def record_session(self) -> None:
        """Write this process into run.json (called when it starts to train in the run)."""
        self.run.record_session(self.origin["data"], self.origin["data_sha256"], str(self.device),
                                data_changed_from=self.data_changed_from,
                                processes=distributed.describe())

    def close(self) -> None:
        self.run.close()

    def __enter__(self) -> OpenRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run(data_path: str | Path, run_path: str | Path, config: dict, device: str,
             batch_sizes: dict[str, int] | None = None, *,
             allow_data_change: bool = False) -> OpenRun:
    """Read and validate the dataset, then open (or reopen, same config and same dataset
    content only) the run dir under its lock, clearing what a killed writer left there.

    batch_sizes: {dotted config key: batch size} of the stages to run; a dataset with fewer
    rows than one of them is refused (every minibatch would repeat rows).

    Under torchrun (scoredec.distributed) every process reads the dataset (the same content on
    every node), rank 0 alone opens the run directory, the others a read-only view of it."""
    device = distributed.place(resolve_device(device))
    with distributed.together("reading the dataset"):   # one process's error stops them all
        check_run_path(run_path)
        dataset = read_dataset(data_path)  # before the run directory: a bad file leaves nothing behind
        for key, size in (batch_sizes or {}).items():
            if dataset.n_transitions < size:
                raise DatasetError(str(data_path), None,
                                   f"{dataset.n_transitions} row(s), fewer than {key} = {size} (every "
                                   f"minibatch would repeat rows: use more data or a smaller {key})")
        distributed.check_divisible(batch_sizes or {}, distributed.world())
        sha256 = file_sha256(data_path)
    distributed.same_everywhere(sha256, f"the content (sha256) of {data_path}")
    data_abs = str(Path(data_path).resolve())
    with distributed.together("opening the run directory"):   # the others wait for rank 0's
        run = (RunDir(run_path, {**config, "data": data_abs}, resume=True,
                      complete_stored=_stored_run_config)
               if distributed.is_writer() else None)
    if run is None:
        run = RunView(run_path)
    try:
        changed_from = None
        if distributed.is_writer():
            changed_from = run.check_data(data_abs, sha256, allow_change=allow_data_change)
            run.remove_leftovers(PRODUCT_NAMES.values())
        data = OfflineData.from_dataset(dataset, device=device)
    except BaseException:
        run.close()
        raise
    origin = {**data_origin(dataset, data_abs), "data_sha256": sha256}
    return OpenRun(Path(run_path), run, data, origin, device, changed_from)


def data_origin(dataset, data_abs: str) -> dict:
    """What a run's products record of their dataset so that `evaluate`, `sample` and the suite
    rebuild the environment it came from and score against its references: the file, env_id,
    the agent names, the entity counts ({"n_agents": n, "n_landmarks": n, ...}) and the
    reference returns."""
    from scoredec.envs.scenario import dataset_scenario

    return {"data": data_abs, "env_id": dataset.env_id, "agent_names": list(dataset.agent_names),
            "scenario": dataset_scenario(dataset), "reference_returns": dataset.reference_returns}


def refuse_silent_restart(opened: OpenRun, stage: str, resume: bool) -> None:
    """A stage with checkpoints continues only when asked to (--resume)."""
    if opened.run.latest(f"{stage}-") is not None and not resume:
        raise RuntimeError(f"{opened.path}: stage '{stage}' has checkpoints; pass --resume to "
                           "continue it, or choose a new --run directory")


@dataclass(frozen=True)
class StagePlan:
    """One stage of a run as `drive` runs it.

    product: the stage's product (behavior | critic | policy: product_stem names its files);
    seed: torch.manual_seed and the batch generator's seed, set just before build();
    build(): the stage on the run's device, and the function that saves its product."""

    product: str
    seed: int
    build: Callable[[], tuple[Stage, Callable[[], None]]]


def stage_actors(stage: Stage) -> torch.nn.Module | None:
    """The actors a stage trains (a policy stage's, a baseline's), or None."""
    if isinstance(stage, CapturedStep):
        stage = stage.stage
    return getattr(stage, "actors", None)


def drive(opened: OpenRun, cfg: RunConfig, plans: Sequence[StagePlan], *, resume: bool = False,
          progress: bool = True, budget: int | None = None, desc: str | None = None,
          evaluation: PeriodicEval | None = None) -> Path:
    """The training driver of every method: runs `plans` in order into the opened run.

    A stage whose product exists is skipped; a stage with checkpoints but no product needs
    resume=True (then run_stage continues it exactly). budget: at most that many optimizer
    steps in this call, over all stages (a time-limited sitting: it checkpoints where it stops;
    resume=True continues). desc: the progress bar's and the log's name (default: the stage's).
    evaluation: evaluate the actors every evaluation.every steps of the stage that trains them
    (the return curve; it changes no trained number)."""
    if evaluation is not None:
        evaluation.check(opened.origin["env_id"])
    logger: MetricsLogger | None = None   # opened when a stage runs: a finished run stays as is
    try:
        for plan in plans:
            label = desc or f"stage {plan.product}"
            if is_complete(product_stem(opened.path, plan.product)):
                log.info("%s: already finished in %s, skipped", label, opened.path)
                continue
            torch.manual_seed(plan.seed)
            # Nothing draws from the Python and numpy global generators, but checkpoints store
            # their states (to resume exactly code that would): seeded, two identical runs
            # write identical checkpoint files instead of states drawn from the OS at start.
            random.seed(plan.seed)
            np.random.seed(plan.seed % 2**32)
            generator = torch.Generator(device=opened.device).manual_seed(plan.seed)
            stage, save = plan.build()
            refuse_silent_restart(opened, stage.name, resume)
            if logger is None and distributed.is_writer():   # the first stage this process trains
                opened.record_session()
                logger = MetricsLogger(opened.path)
            # Records a killed process logged after the checkpoint the stage resumes from (or,
            # with none, since it began): run_stage logs those steps again.
            if logger is not None:
                logger.truncate_after(stage.name, opened.run.latest_step(f"{stage.name}-"))
            actors = stage_actors(stage)
            # Several processes: rank 0 evaluates (it forks the RNGs, so the others' stay equal).
            evaluate = (evaluation.evaluator(actors, opened.origin["env_id"], opened.device)
                        if evaluation is not None and evaluation.every and actors is not None
                        and distributed.is_writer() else None)
            if evaluate is not None:   # and the evaluations it made then
                logger.truncate_after(EVAL_STAGE, opened.run.latest_step(f"{stage.name}-"))
            result = run_stage(stage, opened.data, generator, run=opened.run, logger=logger,
                               log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                               budget=budget, progress=progress and distributed.is_writer(),
                               desc=desc, evaluate=evaluate,
                               eval_every=evaluation.every if evaluate else 0)
            if not result.finished:
                log.info("%s: stopped at step %d of %d (budget); resume to continue", label,
                         result.step, stage.steps)
                return opened.path
            if distributed.is_writer():
                save()
            distributed.barrier()   # the next stage (stage 2 loads stage 1's products) reads it
            if budget is not None:
                budget -= result.steps_run
    finally:
        if logger is not None:
            logger.close()
    return opened.path


def train(data_path: str | Path, cfg: TrainConfig, run_path: str | Path,
          stages: tuple[str, ...] | None = None, resume: bool = False, progress: bool = True,
          budget: int | None = None, evaluation: PeriodicEval | None = None,
          allow_data_change: bool = False) -> Path:
    """Train the given stages (default: all the method needs) into run_path.

    Finished stages are skipped; a stage with checkpoints but no product needs resume=True.
    budget: at most that many optimizer steps in this call, over all stages (a time-limited
    sitting: it checkpoints where it stops; resume=True continues). A run is tied to its
    dataset's content: reopening it on changed data raises unless allow_data_change.
    evaluation: the actors' score every K steps of stage 2 (scoredec.periodic_eval; changes no
    trained number)."""
    validate_config(cfg)   # a config built in code gets the checks a YAML file gets
    if cfg.capture != "none" and distributed.current() is not None:
        # A captured step runs its own backward and update, without the gradient average.
        raise FieldError("capture", f"must be 'none' when training on several processes "
                                    f"(torchrun), got {cfg.capture!r}")
    wanted = stages_for(cfg.method) if stages is None else stages
    for stage in wanted:
        if stage not in stages_for(cfg.method):
            raise ValueError(f"method {cfg.method} has no stage {stage!r}; it needs "
                             f"{stages_for(cfg.method)}")
    with open_run(data_path, run_path, {"train": config_to_dict(cfg)}, cfg.device,
                  batch_sizes={f"{s}.batch_size": getattr(cfg, s).batch_size for s in wanted},
                  allow_data_change=allow_data_change) as opened:
        # Every stage has its own seed so that running stages separately or together, stopped
        # or not, gives the same networks.
        plans = [StagePlan(stage, cfg.seed * 1000 + i,
                           lambda stage=stage: build_stage(opened, cfg, stage))
                 for i, stage in enumerate(STAGES) if stage in wanted]
        return drive(opened, cfg, plans, resume=resume, progress=progress, budget=budget,
                     evaluation=evaluation)


def build_stage(opened: OpenRun, cfg: TrainConfig, stage: str) -> tuple[Stage, Callable[[], None]]:
    """One OMSD-family stage on the run's device, and the function that saves its product."""
    module = BUILDERS[stage](opened.data.spec, cfg).to(opened.device)
    if stage == "behavior":
        module.fit_observations(opened.data.obs)   # all rows, so every rank fits the same
    trainer = make_stage(stage, module, opened.path, cfg, opened.device)
    if cfg.capture != "none" and stage != "critic":
        trainer = CapturedStep(trainer, cfg.capture)
    return trainer, lambda: save_product(opened.path, stage, module, opened.data.spec, cfg,
                                         opened.origin)


def make_stage(stage: str, module, run_path: Path, cfg: TrainConfig, device):
    if stage == "behavior":
        return BehaviorStage(module, cfg.behavior)
    if stage == "critic":
        return CriticStage(module, cfg.critic)
    behavior = critic = None
    if variant(cfg.method).score_mode is not None:
        behavior = load_product(run_path, "behavior", device).module
        critic = load_product(run_path, "critic", device).module
    return PolicyStage(PolicyObjective(cfg.method, module, cfg.policy, behavior, critic))
