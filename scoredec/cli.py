"""The `scoredec` command. Every option's help comes from the config dataclasses' param() text."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from scoredec import __version__
from scoredec.config import add_config_arguments, apply_arguments, load_config

log = logging.getLogger("scoredec")

STAGE_NAMES = {"all": None, "stage1": ("behavior",), "critic": ("critic",), "stage2": ("policy",)}

EVALUATE_EPISODES = 10
"""`scoredec evaluate`'s episodes and parallel environments when not given (DESIGN.md 1.7)."""
EVALUATE_ENVS = 10


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" only where it says something: not when the help already names its
    default (config-driven flags do) and not for a None default (the value then comes from the
    config or the data)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default is None:
            return text
        return super()._get_help_string(action)


def _formatter(prog):
    return _DefaultsFormatter(prog, max_help_position=40, width=100)


def _int_at_least(low: int):
    """argparse type: an int >= low (a count of 0 would give empty statistics, not an error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


def _output_file(path: str | None, flag: str) -> None:
    """Refuse an output path that is a directory before any work is done."""
    if path is not None and Path(path).is_dir():
        raise ValueError(f"{flag} {path}: is a directory; give a file path in it")


# --------------------------------------------------------------------------- bandit

def cmd_bandit(args) -> int:
    from scoredec.experiments.bandit import BanditConfig, format_table, run_bandit, summarize
    from scoredec.experiments.bandit_plot import plot_bandit
    from scoredec.io import atomic_write_json, atomic_write_text

    cfg = apply_arguments(BanditConfig(), args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    log.info("bandit: %d seeds x %s, beta=%g, %d workers", cfg.seeds, ", ".join(cfg.methods),
             cfg.policy.beta, cfg.workers)
    results = run_bandit(cfg, progress=not args.quiet)
    summary = summarize(results)
    elapsed = time.perf_counter() - start
    table = format_table(results)
    lines = [table, "", "| method | coordinated (a1 a2 > 0.3) | miscoordinated (a1 a2 < 0) | mean reward |",
             "|---|---|---|---|"]
    for method, s in summary["methods"].items():
        lines.append(f"| {method} | {s['coordinated']}/{s['seeds']} | {s['miscoordinated']}/{s['seeds']}"
                     f" | {s['mean_reward']:+.3f} |")
    lines += ["", "| behaviour sampler | joint samples in one mode (both signs equal) |", "|---|---|"]
    for mode, s in summary["samples"].items():
        name = {"sequential": "sequential (OMSD chain)", "marginal": "marginals, independent"}.get(mode, mode)
        lines.append(f"| {name} | {100 * s['same_sign_mean']:.1f}% (worst seed {100 * s['same_sign_min']:.1f}%) |")
    report = "\n".join(lines)
    print(report)
    picture = plot_bandit(results, out / "bandit.png")
    atomic_write_text(out / "bandit.md", report + f"\n\n{elapsed:.0f} s on this machine.\n")
    atomic_write_json(out / "bandit.json", {"summary": summary, "seconds": elapsed,
                                            "results": [{k: v for k, v in r.items() if k != "samples"}
                                                        for r in results]})
    print(f"\n{elapsed:.0f} s. Wrote {picture}, {out / 'bandit.md'}, {out / 'bandit.json'}")
    return 0


# --------------------------------------------------------------------------- train

def cmd_train(args) -> int:
    from scoredec import distributed
    from scoredec.config import config_to_dict
    from scoredec.methods import family, get_method
    from scoredec.periodic_eval import PeriodicEval
    from scoredec.pipeline import TrainConfig, resolve_device, train

    evaluation = (PeriodicEval(args.eval_every, episodes=args.eval_episodes)
                  if args.eval_every else None)
    progress = not args.quiet
    if args.method is not None and args.method not in family():   # a baseline
        entry = get_method(args.method)
        if args.stage != "all":
            raise ValueError(f"--method {args.method} trains one stage (its actors and critics "
                             f"together): use `scoredec train all`, not `train {args.stage}`")
        cfg = apply_arguments(load_config(entry.config, args.config) if args.config
                              else entry.config(), args)
        method, config, stages = args.method, config_to_dict(cfg), None

        def run_training():
            return entry.train(args.data, args.run, seed=cfg.seed, overrides=config,
                               progress=progress, budget=args.budget, resume=args.resume,
                               evaluation=evaluation, allow_data_change=args.allow_data_change)
    else:
        cfg = load_config(TrainConfig, args.config) if args.config else TrainConfig()
        cfg = apply_arguments(cfg, args)
        method, config, stages = cfg.method, config_to_dict(cfg), STAGE_NAMES[args.stage]

        def run_training():
            return train(args.data, cfg, args.run, stages=stages, resume=args.resume,
                         progress=progress, budget=args.budget, evaluation=evaluation,
                         allow_data_change=args.allow_data_change)
    _print_estimate(args, method, config, stages)
    # Under torchrun: one process of a data-parallel training (scoredec/distributed.py); rank 0
    # writes the run, and so its W&B record.
    with distributed.launch(resolve_device(cfg.device)):
        if args.wandb and distributed.is_writer():
            from scoredec.wandb_logger import wandb_run

            with wandb_run(args.run, {"method": method, **config}, args.wandb, args.wandb_project):
                run = run_training()
        else:
            run = run_training()
        if distributed.is_writer():
            print(f"run: {run}")
    return 0


ESTIMATE_WARN_SECONDS = 3600
"""`train` warns when its estimate is over this."""


def _print_estimate(args, method: str, config: dict, stages: tuple[str, ...] | None) -> None:
    """Log how long the run will take here (scoredec.timing's probe); warn over an hour."""
    from scoredec.progress import format_duration
    from scoredec.timing import estimate_run, remaining_steps, stage_steps, worth_probing

    from scoredec.distributed import launched

    if args.no_estimate or launched():   # the probe times one process, not the torchrun group
        return
    remaining = remaining_steps(Path(args.run), stage_steps(method, config, stages))
    if args.budget is not None:   # this sitting runs at most --budget steps, stages in order
        left = args.budget
        for stage, n in remaining.items():
            remaining[stage], left = min(n, left), left - min(n, left)
    from scoredec.interrupt import TrainingInterrupted

    if not worth_probing(remaining):
        return
    log.info("train %s: timing a few steps per stage first, to estimate the run "
             "(--no-estimate skips this)", method)
    try:
        est = estimate_run(method, Path(args.data), config, remaining)
    except TrainingInterrupted:   # stopped in the probe: nothing of the run to resume yet
        raise KeyboardInterrupt from None
    if est is None:
        return
    parts = ", ".join(f"{stage} {remaining[stage]} steps at {rate:.1f}/s"
                      for stage, rate in est["steps_per_s"].items())
    text = f"train {method}: estimated {format_duration(est['total'])} on this machine ({parts})"
    if est["total"] > ESTIMATE_WARN_SECONDS:
        log.warning("%s. That is over an hour: --budget N stops after N steps (--resume "
                    "continues); configs/cpu.yaml is sized for 2 CPU cores.", text)
    else:
        log.info("%s", text)


def _baselines() -> tuple[str, ...]:
    """The registered methods outside the OMSD family (scoredec/baselines)."""
    from scoredec.methods import family, method_names

    return tuple(m for m in method_names() if m not in family())


def _train_baseline(argv: list[str] | None) -> str | None:
    """The baseline that `train --method NAME` in argv names, or None (no train command, no
    --method, or a method of the OMSD family)."""
    from scoredec.methods import family, method_names

    if not argv or "train" not in argv:
        return None
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--method")
    method = pre.parse_known_args(argv[argv.index("train") + 1:])[0].method
    return method if method in method_names() and method not in family() else None


def _widen_method_choices(parser: argparse.ArgumentParser) -> None:
    """`train --method` of the OMSD family's flags also lists the baselines (each is parsed
    with its own config's flags: _train_baseline)."""
    from scoredec.methods import method_names

    (action,) = [a for a in parser._actions if a.dest == "method"]
    action.choices = list(method_names())
    action.metavar = "{" + ",".join(action.choices) + "}"
    action.help = action.help.replace("(default", "; a baseline (" + ", ".join(_baselines())
                                      + ") takes its own config's flags (default", 1)


# --------------------------------------------------------------------------- evaluate

def cmd_evaluate(args) -> int:
    from scoredec.io import atomic_write_json
    from scoredec.pipeline import load_actors, resolve_device
    from scoredec.rollout import evaluate, trained_env

    if args.behaviour:
        if args.env:
            raise ValueError("--behaviour judges the behaviour model on a built-in task; --env "
                             "evaluates the actors on your environment: pass one")
        return cmd_evaluate_behaviour(args)
    if args.data:
        raise ValueError("--data is the behaviour report's dataset: it needs --behaviour")
    _output_file(args.out, "--out")
    if args.env:
        return cmd_evaluate_env(args)
    if args.reference_random is not None or args.reference_expert is not None:
        raise ValueError("--reference-random/--reference-expert go with --env (the built-in tasks "
                         "have their own reference returns)")
    device = resolve_device(args.device)
    actors, meta = load_actors(Path(args.run), device)
    target = trained_env(meta, task=args.task, n_agents=args.agents, where=f"run {args.run}")
    episodes = EVALUATE_EPISODES if args.episodes is None else args.episodes
    envs = EVALUATE_ENVS if args.envs is None else args.envs
    result = evaluate(actors, episodes=episodes, num_envs=envs, seed=args.seed, device=device,
                      **target.evaluate_kwargs())
    method = result["method"] = meta.get("config", {}).get("method", meta.get("method", "?"))
    line = f"{target.label} {method}: return {result['return_mean']:.3f} +- {result['return_std']:.3f}"
    if "normalized_mean" in result:
        line += f", normalized {result['normalized_mean']:.1f} +- {result['normalized_std']:.1f}"
    print(line + f" over {result['episodes']} episodes")
    out = Path(args.out) if args.out else Path(args.run) / "evaluation.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


def cmd_evaluate_env(args) -> int:
    """`evaluate RUN --env MODULE:FACTORY`: decentralized rollout on the user's PettingZoo env."""
    from scoredec.evaluation import describe_result, evaluate_env
    from scoredec.io import atomic_write_json
    from scoredec.pipeline import resolve_device

    if args.task:
        raise ValueError("--task names a built-in environment; --env brings your own: pass one")
    if args.agents is not None:
        raise ValueError("--agents goes with a built-in task; --env brings your own environment "
                         "with its own agents")
    refs = (args.reference_random, args.reference_expert)
    if (refs[0] is None) != (refs[1] is None):
        raise ValueError("pass both --reference-random and --reference-expert (or neither: raw "
                         "returns)")
    reference = None if refs[0] is None else {"random": refs[0], "expert": refs[1]}
    result = evaluate_env(args.run, args.env, episodes=EVALUATE_EPISODES if args.episodes is None
                          else args.episodes, num_envs=1 if args.envs is None else args.envs,
                          seed=args.seed, device=resolve_device(args.device),
                          reference_returns=reference, team_return=args.team_return,
                          max_steps=args.max_steps)
    result["run"] = str(args.run)
    print(describe_result(result, args.env))
    out = Path(args.out) if args.out else Path(args.run) / "evaluation.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")
    return 0


def cmd_evaluate_behaviour(args) -> int:
    """`evaluate RUN --behaviour`: the stage-1 report of the run's behaviour model."""
    from scoredec.behaviour_report import behaviour_report, render_report
    from scoredec.checkpoint import is_complete
    from scoredec.io import atomic_write_json
    from scoredec.pipeline import load_product, product_stem, resolve_device
    from scoredec.rollout import trained_env

    _output_file(args.out, "--out")
    run = Path(args.run)
    stem = product_stem(run, "behavior")
    if not is_complete(stem):
        raise FileNotFoundError(f"{stem}.json: run {run} has no finished behaviour model (stage 1; "
                                "BC and the baselines train none)")
    device = resolve_device(args.device)
    product = load_product(run, "behavior", device)
    target = trained_env(product.meta, task=args.task, n_agents=args.agents, where=f"run {run}")
    data = args.data or product.meta.get("data")
    if not data:
        raise ValueError(f"{stem}.json does not record its dataset: pass --data")
    report = behaviour_report(product.module, data, target.env_id, episodes=args.episodes,
                              num_envs=args.envs, seed=args.seed, rows=args.rows,
                              samples=args.samples, device=device,
                              env_kwargs=target.env_kwargs,
                              reference_returns=target.reference_returns)
    report["run"], report["data"] = str(run), str(data)
    report["method"] = product.meta.get("config", {}).get("method", "?")
    print(render_report(report))
    out = Path(args.out) if args.out else run / "behaviour_report.json"
    atomic_write_json(out, report)
    print(f"wrote {out}")
    return 0


# --------------------------------------------------------------------------- export

def cmd_export(args) -> int:
    from scoredec.export import export_run

    doc = export_run(args.run, args.format, args.out)
    for agent in doc["agents"]:
        print(f"agent {agent['index']} {agent['name']}: {Path(args.out) / agent['file']} "
              f"(obs [batch, {agent['input']['shape'][1]}] -> action [batch, "
              f"{agent['output']['shape'][1]}] in [-1, 1])")
    parity = doc["parity"]
    if parity["checked"]:
        print(f"parity with the PyTorch actors: max |difference| {parity['max_abs_error']:.1e} "
              f"on {parity['rows']} random observations (tolerance {parity['tolerance']:g})")
    else:
        print(f"parity not checked: {parity['reason']}")
    print(f"wrote {Path(args.out) / 'actors.json'}")
    return 0


# --------------------------------------------------------------------------- sample

def cmd_sample(args) -> int:
    import numpy as np
    import torch

    from scoredec.data.hdf5 import read_dataset
    from scoredec.data.tensors import draw_rows
    from scoredec.io import atomic_output
    from scoredec.pipeline import load_product, resolve_device

    _output_file(args.out, "--out")
    device = resolve_device(args.device)
    product = load_product(Path(args.run), "behavior", device)
    behavior, spec, cfg = product.module, product.spec, product.config
    data_path = args.data or product.meta.get("data")
    if not data_path:
        raise ValueError("pass --data: the observations to condition on")
    ds = read_dataset(data_path)
    if (tuple(ds.obs_dims), tuple(ds.act_dims)) != (tuple(spec.obs_dims), tuple(spec.act_dims)):
        raise ValueError(f"{data_path}: {ds.n_agents} agents with observation widths "
                         f"{list(ds.obs_dims)}, but the behaviour model of {args.run} takes "
                         f"{spec.n_agents} with {list(spec.obs_dims)}: sample on its own task's data")
    rows = draw_rows(ds.n_transitions, args.count, np.random.default_rng(args.seed))
    obs = torch.as_tensor(ds.observations[rows.numpy()], device=device)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    actions = behavior.sample(obs, steps=args.steps, solver=args.solver, generator=gen).cpu().numpy()
    print(f"{args.count} joint actions from the {behavior.mode} behaviour model "
          f"({args.solver or cfg.behavior.solver}, {args.steps or cfg.behavior.sample_steps} steps)")
    for i in range(spec.n_agents):
        a = actions[:, i, :spec.act_dims[i]]
        print(f"  agent {i}: mean {_rounded(a.mean(0))} std {_rounded(a.std(0))}")
    if spec.n_agents >= 2:
        same = float((np.sign(actions[:, 0, 0]) == np.sign(actions[:, 1, 0])).mean())
        print(f"  agents 0 and 1 first action dims share a sign in {100 * same:.1f}% of samples")
    if args.out:
        with atomic_output(args.out) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, actions, allow_pickle=False)
        print(f"wrote {args.out}: [count, agents, act_max] float32")
    return 0


def _rounded(values, digits: int = 3) -> str:
    """[0.047, -0.512]: a vector as people read it (float32 to float prints 0.04699999839...)."""
    return "[" + ", ".join(f"{float(v):.{digits}f}" for v in values) + "]"


# --------------------------------------------------------------------------- data

def cmd_data_info(args) -> int:
    from scoredec.data.card import format_card, load_or_make_card

    print(format_card(load_or_make_card(args.file)))
    return 0


def cmd_data_import_omar(args) -> int:
    from scoredec.data.card import remove_card, write_card
    from scoredec.data.omar import omar_to_hdf5
    from scoredec.locks import output_lock

    _output_file(args.out, "--out")
    with output_lock(args.out):   # the file and its card of one writer
        ds = omar_to_hdf5(args.directory, args.task, args.out, include_prey=args.include_prey)
        remove_card(args.out)
        paths = write_card(ds, args.out)
    print(f"wrote {args.out} ({ds.n_transitions} transitions, {ds.n_agents} agents) and "
          + ", ".join(str(p) for p in paths))
    return 0


def cmd_data_import_ogmarl(args) -> int:
    from scoredec.data.card import remove_card, write_card
    from scoredec.data.ogmarl import ogmarl_to_hdf5
    from scoredec.locks import output_lock

    _output_file(args.out, "--out")
    with output_lock(args.out):   # the file and its card of one writer
        ds = ogmarl_to_hdf5(args.vault_dir, args.out, env_id=args.env_id, quality=args.quality,
                            action_bounds=args.action_bounds, clip_actions=args.clip_actions)
        remove_card(args.out)
        paths = write_card(ds, args.out)
    print(f"wrote {args.out} ({ds.n_transitions} transitions, {ds.n_agents} agents; "
          f"{ds.attrs['dropped_steps']} steps dropped at cut episode ends) and "
          + ", ".join(str(p) for p in paths))
    return 0


def cmd_data_make(args) -> int:
    from scoredec.data.card import card_paths, episode_returns, normalized_score, return_kind_for
    from scoredec.datagen.factory import make_dataset_file

    _output_file(args.out, "--out")
    start = time.perf_counter()
    ds = make_dataset_file(args.task, args.quality, args.out, episodes=args.episodes,
                           seed=args.seed, progress=not args.quiet, n_agents=args.agents)
    returns = episode_returns(ds, return_kind_for(ds.env_id))
    normalized = ("" if not ds.reference_returns else
                  f"normalized {normalized_score(returns, ds.reference_returns).mean():.1f}, ")
    agents = "" if args.agents is None else f" with {ds.n_agents} agents"
    print(f"wrote {args.out}: {args.task}/{args.quality}{agents}, {returns.size} episodes, "
          f"{ds.n_transitions} transitions, return {returns.mean():.2f} +- {returns.std():.2f}, "
          f"{normalized}{time.perf_counter() - start:.1f} s")
    print("card: " + ", ".join(str(p) for p in card_paths(args.out)))
    return 0


def cmd_data_train_behaviour(args) -> int:
    from scoredec.datagen.td3 import cache_dir, train_behaviour_policy

    out = Path(args.out) if args.out else cache_dir(args.task) / "train"
    train_behaviour_policy(args.task, out, args.total_steps, seed=args.seed,
                           budget_steps=args.budget_steps)
    print(f"checkpoints in {out}; snapshots in {cache_dir(args.task)}")
    return 0


# --------------------------------------------------------------------------- info

def cmd_info(args) -> int:
    import platform

    import numpy as np
    import torch

    from scoredec import ops

    print(f"scoredec {__version__}")
    print(f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}")
    try:
        import triton
        print(f"triton {triton.__version__}")
    except ImportError:
        print("triton: not installed")
    cuda = torch.cuda.is_available()
    print(f"CUDA device: {torch.cuda.get_device_name(0) if cuda else 'none'}"
          f" (torch built with CUDA {torch.version.cuda})")
    try:
        from scoredec import _C
        info = _C.build_info()
        print("_C: " + ", ".join(f"{k}={v}" for k, v in sorted(info.items())))
    except ImportError as err:
        print(f"_C: not built ({err})")
    print("backends:")
    for op, backends in ops.available_backends().items():
        for name, (ok, reason) in backends.items():
            print(f"  {op:<16} {name:<7} {'available' if ok else 'unavailable'}"
                  + ("" if ok else f": {reason}"))
    return 0


# --------------------------------------------------------------------------- suite

def cmd_suite(args) -> int:
    if args.action == "table":
        return cmd_suite_table(args)
    if args.action == "tune":
        if args.agents is not None:
            raise ValueError("--agents applies to `suite run`: the tuning search runs on its "
                             "fixed task (3-agent spread)")
        return cmd_suite_tune(args)
    from scoredec.methods import get_method, method_names
    from scoredec.suite.grid import make_cells, parse_shard, pending, shard
    from scoredec.suite.presets import get_preset, on_user_dataset
    from scoredec.suite.run_cell import estimate_seconds, run_cell

    root = Path(args.root)
    preset = get_preset(args.preset, tasks=tuple(args.tasks) if args.tasks else None,
                        qualities=tuple(args.qualities) if args.qualities else None,
                        seeds=tuple(args.seeds) if args.seeds else None, n_agents=args.agents,
                        eval_every=args.eval_every or None)
    if args.data:
        if args.tasks or args.qualities or args.agents is not None:
            raise ValueError("--data is the grid's one dataset, with its own task and agents: it "
                             "replaces --tasks, --qualities and --agents")
        preset = on_user_dataset(preset, Path(args.data))
    methods = tuple(args.methods) if args.methods else method_names()
    for m in methods:
        get_method(m)  # an unknown name fails here, before any work
    cells = make_cells(methods, preset.grid_tasks(), preset.qualities, preset.seeds)
    if args.shard:
        cells = shard(cells, *parse_shard(args.shard))
    todo = pending(root, cells)
    log.info("suite %s: %d cells (%s%d already done), %d to run, root %s", preset.name, len(cells),
             f"shard {args.shard}, " if args.shard else "", len(cells) - len(todo), len(todo), root)
    if todo and preset.probe_steps and not args.no_estimate:
        est = estimate_seconds(preset, todo)
        log.warning("suite %s: estimated %.2f h for %d cells on this machine (probe: %s steps/s; "
                    "per cell: %s)", preset.name, est["total_seconds"] / 3600, len(todo),
                    {k: round(v, 1) for k, v in est["steps_per_s"].items()},
                    {k: round(v) for k, v in est["per_method_cell_seconds"].items()})
    failures = []
    start = time.perf_counter()
    for i, cell in enumerate(todo, 1):
        t0 = time.perf_counter()
        try:
            rec = run_cell(cell, preset, root, resume=args.resume, progress=not args.quiet)
        except Exception as err:  # one bad cell must not stop the grid; reported below, exit 1
            log.error("[%d/%d] %s FAILED after %.0f s: %s: %s", i, len(todo), cell.key,
                      time.perf_counter() - t0, type(err).__name__, err, exc_info=args.traceback)
            failures.append((cell.key, f"{type(err).__name__}: {err}"))
            continue
        score, behaviour = rec["normalized_mean"], rec.get("behaviour")
        log.info("[%d/%d] %s: normalized %s, return %.1f%s, %.0f s", i, len(todo), cell.key,
                 "n/a" if score is None else f"{score:.1f} ± {rec['normalized_std']:.1f}",
                 rec["return_mean"],
                 "" if behaviour is None or behaviour["normalized_mean"] is None else
                 f" (behaviour model as a policy {behaviour['normalized_mean']:.1f})",
                 rec["seconds"]["total"])
    log.info("suite %s: %d cells run in %.0f s, %d failed", preset.name, len(todo) - len(failures),
             time.perf_counter() - start, len(failures))
    if not args.no_table and (root / "cells").is_dir() and any((root / "cells").glob("*.json")):
        cmd_suite_table(args)
    if failures:
        print(f"{len(failures)} cell(s) failed:", file=sys.stderr)
        for key, why in failures:
            print(f"  {key}: {why}", file=sys.stderr)
        return 1
    return 0


def cmd_suite_tune(args) -> int:
    from scoredec.suite.tuning import TUNE_SEED, TUNE_TASK, choose, jobs, run_tuning

    root = Path(args.root)
    log.info("suite tune: %d jobs on %s, seed %d (shard %s), under %s", len(jobs(args.methods, args.qualities)),
             TUNE_TASK, TUNE_SEED, args.shard or "all", root / "tuning")
    failures = run_tuning(root, methods=args.methods, qualities=args.qualities, shard=args.shard,
                          resume=args.resume, progress=not args.quiet)
    doc = choose(root)
    for method, per_quality in doc["chosen"].items():
        print(f"{method}: " + ", ".join(f"{q} {k}={v:g}" if isinstance(v, float) else f"{q} {k}={v}"
                                        for q, f in per_quality.items() for k, v in f.items()))
    if failures:
        print(f"{len(failures)} tuning job(s) failed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def cmd_suite_table(args) -> int:
    from scoredec.suite.table import write_table

    written = write_table(Path(args.root))
    log.info("wrote %s and %d plots", written["table"], len(written["plots"]))
    return 0


# --------------------------------------------------------------------------- bench

def default_bench_dir() -> Path:
    """benchmarks/ of the source checkout this package runs from (it is not in the wheel)."""
    return Path(__file__).resolve().parent.parent / "benchmarks"


def cmd_bench(args) -> int:
    import importlib.util

    bench_dir = Path(args.bench_dir) if args.bench_dir else default_bench_dir()
    script = bench_dir / "run_all.py"
    if not script.is_file():
        raise FileNotFoundError(f"{script}: no benchmarks here; run from a scoredec source checkout "
                                "or pass --bench-dir")
    spec = importlib.util.spec_from_file_location("scoredec_bench_run_all", script)
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    results = None if args.no_results else Path(args.results or bench_dir / "RESULTS.md")
    return run_all.run(Path(args.out), results, args.only, args.pytest_args, args.quick, bench_dir)


# --------------------------------------------------------------------------- parser

GLOBAL_OPTIONS = (
    (("-q", "--quiet"), {"action": "store_true", "help": "no progress bars, progress lines or info logs"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "debug logs too"}),
    (("--traceback",), {"action": "store_true", "help": "show the full traceback of errors"}),
    (("--progress-every",), {"type": float, "default": 30.0, "metavar": "SECONDS",
                             "help": "off a terminal (pipe, nohup, scheduler): seconds between "
                                     "training progress lines (step, steps/s, ETA, loss) "
                                     "(default: 30)"}),
)
"""Options of every command, accepted before or after the subcommand's name."""


def _add_global_options(parser: argparse.ArgumentParser, top: bool) -> None:
    """The top parser holds the defaults; on a subcommand the same flags default to SUPPRESS,
    so that one given before the subcommand is not reset by the subcommand's default."""
    group = parser.add_argument_group("global options (anywhere on the line)")
    for flags, kw in GLOBAL_OPTIONS:
        group.add_argument(*flags, **(kw if top else {**kw, "default": argparse.SUPPRESS}))


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield sub
                yield from _subparsers(sub)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """argv: the command line about to be parsed; `train --method BASELINE` then gets that
    baseline's config flags instead of the OMSD family's."""
    from scoredec.experiments.bandit import BanditConfig
    from scoredec.methods import get_method, method_names
    from scoredec.periodic_eval import PeriodicEval
    from scoredec.pipeline import TrainConfig
    from scoredec.sde import SOLVERS

    parser = argparse.ArgumentParser(
        prog="scoredec", formatter_class=_formatter,
        description="Offline multi-agent RL by sequential score decomposition (OMSD): behaviour "
                    "diffusion models per agent conditioned on the earlier agents' actions, an IQL "
                    "critic, and score-regularized decentralized actors.")
    parser.add_argument("--version", action="version", version=f"scoredec {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("bandit", formatter_class=_formatter,
                       help="OMSD vs marginal regularization on the two-mode bandit (minutes on CPU)",
                       description="Trains behaviour models, critics and actors of each method on the "
                                   "multimodal bandit over several seeds; prints a per-seed table and "
                                   "writes bandit.png, bandit.md and bandit.json.")
    p.add_argument("--out", default="bandit_out", help="output directory")
    add_config_arguments(p, BanditConfig)
    p.set_defaults(func=cmd_bandit)

    p = sub.add_parser("train", formatter_class=_formatter,
                       help="train stage 1, the critic, stage 2 or all from a dataset file "
                            "(any method: the OMSD family, BC and the baselines)",
                       description="Trains into a run directory (config.yaml, metrics.jsonl, "
                                   "TensorBoard, checkpoints/, run.json with the dataset's "
                                   "SHA-256, versions and hardware, and behavior/critic/actors "
                                   ".safetensors+.json), one process at a time (a second is "
                                   "refused). Flags override the --config YAML. Prints a time "
                                   "estimate first (a short probe run). Ctrl-C or SIGTERM "
                                   "checkpoints and prints the resume command. A baseline "
                                   "(--method " + ", ".join(_baselines()) + ") takes its own "
                                   "config's flags: see `scoredec train all --method iql --help`.")
    p.add_argument("stage", choices=tuple(STAGE_NAMES), help="stage1 = behaviour models, critic = "
                   "IQL critic, stage2 = actors, all = what the method needs (a baseline: all)")
    p.add_argument("--data", required=True, help="dataset file (.h5; the format: docs/dataset_schema.md)")
    p.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="run directory (under torchrun write --run-dir: its own options make "
                        "--run ambiguous)")
    p.add_argument("--config", help="YAML file of the method's config (TrainConfig for the OMSD "
                                    "family and BC; see configs/, e.g. configs/cpu.yaml)")
    p.add_argument("--resume", action="store_true",
                   help="continue stages from their last checkpoint (exactly)")
    p.add_argument("--budget", type=_int_at_least(1),
                   help="stop after this many optimizer steps (resume later)")
    p.add_argument("--allow-data-change", action="store_true",
                   help="reopen a run although its dataset's content (SHA-256, recorded in "
                        "RUN/run.json) changed since it started; without it that is an error")
    p.add_argument("--no-estimate", action="store_true",
                   help="skip the timing probe that estimates the run's duration first")
    p.add_argument("--eval-every", type=_int_at_least(0), default=0, metavar="K",
                   help="evaluate the actors every K actor steps (normalized score to "
                        "TensorBoard eval/ and metrics.jsonl; changes no trained number); 0 = off")
    p.add_argument("--eval-episodes", type=_int_at_least(1), default=PeriodicEval.episodes, metavar="N",
                   help="episodes of each evaluation during training (the same ones each time)")
    p.add_argument("--wandb", nargs="?", const="auto", choices=("auto", "online", "offline"),
                   help="also log to Weights & Biases (optional extra: pip install "
                        "'scoredec[wandb]'): offline writes RUN/wandb/ without network (`wandb "
                        "sync` uploads it later); auto (the flag alone): WANDB_MODE, else online")
    p.add_argument("--wandb-project", default="scoredec", metavar="NAME",
                   help="W&B project of the run (with --wandb)")
    baseline = _train_baseline(argv)
    if baseline is None:
        add_config_arguments(p, TrainConfig)
        _widen_method_choices(p)
    else:
        p.add_argument("--method", required=True, choices=method_names(),
                       help="method to train (a baseline here: its own config's flags below)")
        add_config_arguments(p, get_method(baseline).config)
    p.set_defaults(func=cmd_train)

    from scoredec.behaviour_report import REPORT_ROWS, REPORT_SAMPLES, default_episodes
    p = sub.add_parser("evaluate", formatter_class=_formatter,
                       help="roll out a run's actors decentralized and score them (or, with "
                            "--behaviour, judge its behaviour model as a policy)",
                       description="Each agent acts on its own observation; reports mean +- std "
                                   "return and normalized score, and writes a JSON file. With "
                                   "--behaviour: the stage-1 report instead (the behaviour model "
                                   "sampled as a centralized policy, its clean-action error by "
                                   "noise level, the spread of its samples against the data's, "
                                   "per agent).")
    p.add_argument("run", help="run directory with actors.safetensors (with --behaviour: "
                               "behavior.safetensors)")
    p.add_argument("--behaviour", action="store_true",
                   help="judge the run's behaviour model, not its actors: closed-loop score of "
                        "its samples as a centralized policy, clean-action error by noise level "
                        "t and sample spread vs the data, per agent; writes "
                        "RUN/behaviour_report.json")
    p.add_argument("--task", help="environment id (default: the run's dataset's; another task "
                                  "than the run's is refused)")
    p.add_argument("--agents", type=_int_at_least(1),
                   help="agent count (default: the run's dataset's; another count is refused)")
    from scoredec.evaluation import MAX_STEPS, TEAM_RETURNS
    p.add_argument("--env", metavar="MODULE:FACTORY",
                   help="your own environment instead of a built-in task: a function (in an "
                        "importable module or FILE.py) returning a PettingZoo ParallelEnv or a "
                        "list of them; each agent's actor sees only its own observation, actions "
                        "are mapped onto each agent's Box bounds (docs/own_environment.md)")
    p.add_argument("--reference-random", type=float, metavar="R",
                   help="with --env: the return of a random policy, for a normalized score "
                        "(with --reference-expert; without both, returns are reported raw)")
    p.add_argument("--reference-expert", type=float, metavar="R",
                   help="with --env: the return of an expert policy (normalized score 100)")
    p.add_argument("--team-return", choices=TEAM_RETURNS, default="mean",
                   help="with --env: an episode's return sums over steps the mean (or the sum) "
                        "of the agents' rewards")
    p.add_argument("--max-steps", type=_int_at_least(1), default=MAX_STEPS,
                   help="with --env: an episode still running after this many steps is an error")
    p.add_argument("--episodes", type=_int_at_least(1),
                   help=f"evaluation episodes (when not given: {EVALUATE_EPISODES}; with "
                        f"--behaviour {default_episodes('spread')} on MPE, "
                        f"{default_episodes('halfcheetah-2x3')} on MaMuJoCo)")
    p.add_argument("--envs", type=_int_at_least(1), help=f"environments stepped in parallel (when not given: "
                                            f"{EVALUATE_ENVS}; with --behaviour min(episodes, 100); "
                                            "with --env 1, episodes one after another)")
    p.add_argument("--seed", type=_int_at_least(0), default=0,
                   help="seed of the first round of episodes (with --behaviour also of its rows "
                        "and samples)")
    p.add_argument("--data", help="with --behaviour: the dataset whose rows it is judged on "
                                  "(default: the run's)")
    p.add_argument("--rows", type=_int_at_least(1), default=REPORT_ROWS,
                   help="with --behaviour: dataset rows of the error and spread tables")
    p.add_argument("--samples", type=_int_at_least(2), default=REPORT_SAMPLES,
                   help="with --behaviour: samples per observation for the within-observation "
                        "spread")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")
    p.add_argument("--out", help="JSON output (default RUN/evaluation.json, with --behaviour "
                                 "RUN/behaviour_report.json)")
    p.set_defaults(func=cmd_evaluate)

    from scoredec.export import FORMATS
    p = sub.add_parser("export", formatter_class=_formatter,
                       help="write each agent's actor as an ONNX or TorchScript file",
                       description="One file per agent (obs [batch, obs_dim] float32 -> action "
                                   "[batch, act_dim] in [-1, 1], input normalization included) "
                                   "and actors.json describing them, for decentralized "
                                   "deployment; the files are checked against the PyTorch "
                                   "actors on random observations. ONNX needs "
                                   "scoredec[export].")
    p.add_argument("run", help="run directory with actors.safetensors")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), help="file format")
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sample", formatter_class=_formatter,
                       help="draw joint actions from a run's behaviour model",
                       description="Sequential ancestral sampling a_0 ~ mu_0(.|o_0), a_1 ~ mu_1(.|o_1, a_0)"
                                   ", ... on observations drawn from a dataset.")
    p.add_argument("run", help="run directory with behavior.safetensors")
    p.add_argument("--data", help="dataset whose observations condition the samples (default: the run's)")
    p.add_argument("--count", type=_int_at_least(1), default=1000, help="joint samples")
    p.add_argument("--steps", type=_int_at_least(1),
                   help="solver steps per agent (default: the run's config)")
    p.add_argument("--solver", choices=SOLVERS, help="solver (default: the run's config)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of observations and noise")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="device")
    p.add_argument("--out", help="write the samples as .npy [count, agents, act_max]")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("data", formatter_class=_formatter, help="dataset files: make, inspect, import",
                       description="Make, inspect and import datasets in the scoredec HDF5 format "
                                   "(docs/dataset_schema.md).")
    data = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    q = data.add_parser("info", formatter_class=_formatter, help="print a dataset's card",
                        description="Prints the card next to the file (FILE.card.json), or "
                                    "computes it from the file (validated on read).")
    q.add_argument("file", help="dataset file (.h5)")
    q.set_defaults(func=cmd_data_info)
    from scoredec.data.omar import OMAR_TASKS
    q = data.add_parser("import-omar", formatter_class=_formatter,
                        help="convert an OMAR per-agent .npy dataset folder",
                        description="Reads obs_i/acs_i/rews_i/next_obs_i/dones_i.npy (never with "
                                    "pickle), restores episode boundaries, validates, writes the "
                                    "HDF5 file atomically and its card.")
    q.add_argument("directory", help="folder with the per-agent .npy files")
    q.add_argument("--task", required=True, choices=tuple(OMAR_TASKS), help="task of the data")
    q.add_argument("--out", required=True, help="output dataset file (.h5)")
    q.add_argument("--include-prey", action="store_true",
                   help="tag/world: also import the prey as an agent")
    q.set_defaults(func=cmd_data_import_omar)
    q = data.add_parser("import-ogmarl", formatter_class=_formatter,
                        help="convert an OG-MARL dataset (a flashbax Vault, continuous actions)",
                        description="Reads a flashbax Vault directory (<name>.vlt/<uid>) with "
                                    "tensorstore (pip install 'scoredec[ogmarl]'), refuses "
                                    "discrete-action Vaults, keeps terminal steps (next "
                                    "observation = observation) and drops the last step of an "
                                    "episode cut without a terminal (the step before becomes a "
                                    "timeout), validates, writes the HDF5 file atomically and its "
                                    "card.")
    q.add_argument("vault_dir", help="the Vault directory, holding metadata.json")
    q.add_argument("--out", required=True, help="output dataset file (.h5)")
    q.add_argument("--env-id", help="task name to record (default: the Vault's name without .vlt)")
    q.add_argument("--quality", help="quality label to record (default: the Vault uid)")
    q.add_argument("--action-bounds", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="the environment's action Box when not [-1, 1]: rescale to [-1, 1]")
    q.add_argument("--clip-actions", action="store_true",
                   help="clip actions outside [-1, 1] instead of refusing them")
    q.set_defaults(func=cmd_data_import_ogmarl)
    from scoredec.datagen.factory import DEFAULT_EPISODES, MAMUJOCO_TASKS, QUALITIES, TASKS
    q = data.add_parser("make", formatter_class=_formatter,
                        help="generate a seeded dataset (random, medium-replay, medium, expert)",
                        description="Rolls out the scripted MPE behaviour policies batched, writes "
                                    "the HDF5 file atomically and its card next to it. The same "
                                    "seed and episodes give the same bytes.")
    q.add_argument("task", choices=TASKS + MAMUJOCO_TASKS,
                   help="MPE task, or a MaMuJoCo layout (needs scoredec[mujoco]; medium/expert need "
                        "`scoredec data train-behaviour TASK` first)")
    q.add_argument("quality", choices=QUALITIES, help="behaviour policy level")
    q.add_argument("--out", required=True, help="output dataset file (.h5)")
    q.add_argument("--episodes", type=_int_at_least(1),
                   help="25-step episodes; None = the quality's size (" + ", ".join(
                       f"{k} {v:,}" for k, v in DEFAULT_EPISODES.items()) + ")")
    q.add_argument("--seed", type=_int_at_least(0), default=0, help="seed of every random draw")
    q.add_argument("--agents", type=_int_at_least(1),
                   help="learned agents (when not given: the task's, 3 on MPE). spread takes 2 to "
                        "6 (N agents, N landmarks; the scripted expert scores all N! "
                        "assignments), with reference returns measured at that count; tag and "
                        "world have exactly 3 predators (OMAR's scenario, the calibrated "
                        "scripted prey); MaMuJoCo layouts have their own")
    q.set_defaults(func=cmd_data_make)
    q = data.add_parser("train-behaviour", formatter_class=_formatter,
                        help="train MaMuJoCo behaviour policies online (TD3), resumable",
                        description="Online TD3 on a MaMuJoCo layout; checkpoints and resumes in "
                                    "--out; actor snapshots (for medium/expert data) go to "
                                    "$SCOREDEC_CACHE/behaviour/TASK/ (default ~/.cache/scoredec).")
    q.add_argument("task", choices=MAMUJOCO_TASKS, help="MaMuJoCo layout")
    q.add_argument("--out", help="checkpoint directory (default: the cache's TASK/train)")
    q.add_argument("--total-steps", type=_int_at_least(1), default=1_000_000,
                   help="env steps of the whole run")
    q.add_argument("--budget-steps", type=_int_at_least(1),
                   help="stop this call after N more steps (resume later)")
    q.add_argument("--seed", type=_int_at_least(0), default=0, help="run seed")
    q.set_defaults(func=cmd_data_train_behaviour)

    p = sub.add_parser("bench", formatter_class=_formatter,
                       help="run every benchmarks/bench_*.py and write this device's RESULTS.md section",
                       description="Measures the roofline inputs of this device (large-GEMM matmul "
                                   "TFLOP/s: bf16 and fp32 on a GPU, fp32 on the CPU; device-copy GB/s), "
                                   "runs each benchmarks/bench_*.py file found in its own pytest process "
                                   "(pytest-benchmark JSON and log per file in --out), renders every "
                                   "file's rows through benchmarks/results_md.py (per op: device, "
                                   "versions, shapes, medians, ratios vs eager and torch.compile, "
                                   "roofline fraction) with speed-up-vs-batch plots, and replaces this "
                                   "device's marked section of --results. Exit 1 if a file failed.")
    p.add_argument("--out", default="bench_out", help="directory for JSON, logs, Markdown and plots")
    p.add_argument("--results", help="Markdown file whose section for this device is replaced "
                                     "(when not given: the bench folder's RESULTS.md)")
    p.add_argument("--no-results", action="store_true", help="only write into --out")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="run only bench files whose name contains one of these (e.g. steps sampler)")
    p.add_argument("--quick", action="store_true",
                   help="smaller grids (SCOREDEC_BENCH_QUICK=1, read by the files that support it)")
    p.add_argument("--bench-dir", help="benchmarks folder; when not given, the source checkout's")
    p.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARG",
                   help="passed to every pytest run, after --, e.g. -- -k 'n=3'")
    p.set_defaults(func=cmd_bench)

    from scoredec.suite.presets import preset_names
    p = sub.add_parser("suite", formatter_class=_formatter,
                       help="the results grid method x task x quality x seed, and its table",
                       description="`suite [run]` trains and evaluates every cell of a preset's "
                                   "grid (datasets made as needed) and writes ROOT/cells/<cell>.json; "
                                   "done cells are skipped. `suite table` regenerates ROOT/TABLE.md "
                                   "and ROOT/plots/ from the cells. `suite tune` runs the search "
                                   "of scoredec/suite/tuning.py into ROOT/tuning/ (resumable, "
                                   "--shard splits it) before the cpu grid.")
    p.add_argument("action", nargs="?", default="run", choices=("run", "table", "tune"),
                   help="run the grid; only regenerate the table; or run the fair-tuning search "
                        "(one field per method, 3 values per quality on spread, seed 100; OMSD's beta "
                        "with each score weighting) and write configs/tuned/cpu.yaml, which the "
                        "cpu presets read")
    p.add_argument("--preset", default="smoke", choices=preset_names(),
                   help="grid and sizes: smoke (CI), cpu (2-core table), paper (GPU, paper sizes)")
    p.add_argument("--methods", nargs="+", help="methods (default: every registered method)")
    p.add_argument("--tasks", nargs="+", help="tasks (default: the preset's)")
    p.add_argument("--qualities", nargs="+", help="dataset qualities (default: the preset's)")
    p.add_argument("--seeds", nargs="+", type=_int_at_least(0),
                   help="training seeds (default: the preset's)")
    p.add_argument("--agents", type=_int_at_least(1),
                   help="agent count of every task (default: each task's; spread takes 2-6, the "
                        "others only their own); cells and datasets get a task label like "
                        "spread-n4, which --tasks also accepts")
    p.add_argument("--shard", help="I/N: run only cells whose index %% N == I")
    p.add_argument("--resume", action="store_true",
                   help="continue interrupted cells from their run checkpoints")
    p.add_argument("--root", default="results", help="suite root: data/, runs/, cells/, TABLE.md")
    p.add_argument("--data", metavar="FILE",
                   help="a grid over methods x seeds on this one dataset (.h5, scoredec schema) "
                        "instead of the preset's tasks and qualities; cells are named "
                        "METHOD__ENV__STEM__sSEED (ENV: the dataset's environment, STEM: the "
                        "file's name without .h5), trained with the preset's sizes")
    p.add_argument("--eval-every", type=_int_at_least(0), default=0, metavar="K",
                   help="evaluate each cell's actors every K actor steps during training: the "
                        "cells' eval_curve and the curves plot (score vs steps); 0 = off")
    p.add_argument("--no-estimate", action="store_true", help="skip the timing probe")
    p.add_argument("--no-table", action="store_true", help="do not regenerate TABLE.md at the end")
    p.set_defaults(func=cmd_suite)

    p = sub.add_parser("info", formatter_class=_formatter,
                       help="versions, devices, available backends, how _C was built")
    p.set_defaults(func=cmd_info)
    for p in _subparsers(parser):
        _add_global_options(p, top=False)
    return parser


def refuse_launcher(command: str) -> None:
    """Only `train` splits its work over the processes torchrun starts; any other command would
    run once per process on the same files (the suite has --shard I/N for a job array)."""
    from scoredec.distributed import launched

    if command != "train" and launched():
        raise ValueError(f"`scoredec {command}` runs in one process; under torchrun only `train` "
                         "does (for the suite use --shard I/N, one job per shard)")


# Errors that are the user's input or the file system's answer, not a bug: one line, no
# traceback (unless --traceback). OSError covers a path that is a directory, a full disk, a
# permission; its message names the path.
USER_ERRORS = (ValueError, OSError, RuntimeError, KeyError)

EXIT_INTERRUPTED = 130
"""128 + SIGINT, what shells report for a job stopped by Ctrl-C."""
EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE, what a Unix tool's exit looks like when its reader (`| head`) went away."""


def resume_command(argv: list[str]) -> str:
    """The command line that continues this one: the same arguments plus --resume."""
    import shlex

    from scoredec.distributed import launched

    prog = sys.argv[0] if Path(sys.argv[0]).name == "scoredec" else "scoredec"
    args = list(argv) + ([] if "--resume" in argv else ["--resume"])
    if launched():   # the torchrun command line is the launcher's, not known here
        return "torchrun [the same options] -m scoredec " + shlex.join(args)
    return shlex.join([prog, *args])


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return _main(sys.argv[1:] if argv is None else list(argv))
        finally:
            sys.stdout.flush()   # a closed pipe fails here, inside the handler below
    except BrokenPipeError:
        # The reader of our stdout is gone (`scoredec ... | head`): end quietly, as Unix tools
        # do. Python flushes stdout again at exit and would fail once more, so point it at
        # /dev/null first (the Python docs' recipe, "Note on SIGPIPE").
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: list[str]) -> int:
    import signal

    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from scoredec.interrupt import TrainingInterrupted
    from scoredec.progress import set_log_interval

    # SIGTERM (a scheduler's stop, `kill`) ends a command as Ctrl-C does: training checkpoints
    # (scoredec/interrupt.py), and nothing prints a traceback.
    previous_term = signal.getsignal(signal.SIGTERM)
    catch_term = previous_term is not signal.SIG_IGN   # a job started to ignore it still does
    if catch_term:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        set_log_interval(args.progress_every)
        refuse_launcher(args.command)
        return args.func(args)
    except BrokenPipeError:   # an OSError, but no user error: main() ends quietly
        raise
    except USER_ERRORS as err:
        if args.traceback:
            raise
        print(f"scoredec {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(f"interrupted at {stop.stage} step {stop.step}: resume with: "
              f"{resume_command(argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        resumable = args.command in ("train", "suite")
        print(f"scoredec {args.command}: interrupted"
              + (f"; resume with: {resume_command(argv)}" if resumable else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if catch_term:
            signal.signal(signal.SIGTERM, previous_term if previous_term is not None
                          else signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main())
