"""Where do trained actors and behaviour models miss the data? A diagnostic for finished runs.

    python -m scoredec.experiments.imitation_diagnostics --data D.h5 RUN [RUN ...]

For every run with actors: the error |pi(o) - a| against the dataset's actions on a fixed
subsample of rows, split by the size |a| of the data action (an idle agent near its landmark
acts small, an agent crossing the field acts at full thrust), with the actors' own |pi(o)| beside
it. For every run with a behaviour model: the same table for its samples (one sample, and the
mean of several), and its denoising error by noise level t: E||eps(x_t, t | c) - z||^2 (2 per
2-d action = no better than predicting zero) and the error of the implied clean action
(x_t - sigma_t eps) / alpha_t. Numbers only, nothing is trained; results/README.md quotes them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import Tensor

# The denoising table is the stage-1 report's (scoredec/behaviour_report.py), so that both say
# the same thing about one model.
from scoredec.behaviour_report import denoising_by_noise_level

MAGNITUDE_BINS = (0.0, 0.2, 0.6, 1.0, float("inf"))
"""Edges of the |a| bins (per agent, Euclidean over its action dims)."""


def error_by_magnitude(pred: Tensor, data: Tensor, bins=MAGNITUDE_BINS) -> list[dict]:
    """pred, data [B, n, d] -> one row per |data| bin (and one for all rows): count, mean and
    median error |pred - data|, mean |pred| and mean |data|, over every agent-row pair."""
    if pred.shape != data.shape:
        raise ValueError(f"pred {list(pred.shape)} and data {list(data.shape)} differ in shape")
    err = (pred - data).norm(dim=-1).flatten()
    size, data_size = pred.norm(dim=-1).flatten(), data.norm(dim=-1).flatten()
    rows = []
    edges = [(None, None)] + list(zip(bins[:-1], bins[1:]))
    for lo, hi in edges:
        keep = torch.ones_like(err, dtype=torch.bool) if lo is None else (
            (data_size >= lo) & (data_size < hi))
        if not keep.any():
            continue
        rows.append({"bin": "all" if lo is None else f"[{lo:g}, {hi:g})", "count": int(keep.sum()),
                     "error_mean": float(err[keep].mean()), "error_median": float(err[keep].median()),
                     "pred_size": float(size[keep].mean()), "data_size": float(data_size[keep].mean())})
    return rows


def diagnose(data: str | Path, runs: list[str | Path], rows: int = 4000, samples: int = 8,
             seed: int = 0) -> dict:
    """The tables for each run (see the module docstring) on `rows` dataset rows drawn with
    `seed`; the same rows for every run."""
    from scoredec.behavior import eval_mode
    from scoredec.data.hdf5 import read_dataset
    from scoredec.data.tensors import draw_rows
    from scoredec.pipeline import load_actors, load_product, product_stem
    from scoredec.checkpoint import is_complete

    ds = read_dataset(data)
    obs_all, act_all = torch.as_tensor(ds.observations), torch.as_tensor(ds.actions)
    gen = torch.Generator().manual_seed(seed)
    idx = draw_rows(obs_all.shape[0], rows, gen, replace=False)
    obs, act = obs_all[idx].float(), act_all[idx].float()
    out = {"data": str(data), "rows": int(idx.numel()), "seed": seed, "runs": {}}
    for run in map(Path, runs):
        entry = {}
        if is_complete(product_stem(run, "policy")):
            actors, _ = load_actors(run)
            with torch.no_grad():
                entry["actors"] = error_by_magnitude(actors(obs), act)
        if is_complete(product_stem(run, "behavior")):
            behavior = load_product(run, "behavior").module
            with eval_mode(behavior):
                draws = torch.stack([behavior.sample(obs, generator=gen) for _ in range(samples)])
                entry["behaviour_one_sample"] = error_by_magnitude(draws[0], act)
                entry[f"behaviour_mean_of_{samples}"] = error_by_magnitude(draws.mean(0), act)
                entry["behaviour_sample_std"] = float(draws.std(0).mean())
                entry["denoising"] = denoising_by_noise_level(behavior, obs, act, gen)
        if not entry:
            raise FileNotFoundError(f"{run}: no finished actors or behaviour model")
        out["runs"][str(run)] = entry
    return out


def render(result: dict) -> str:
    """Markdown tables of diagnose()'s result."""
    lines = [f"data: {result['data']} ({result['rows']} rows, seed {result['seed']})", ""]
    for run, entry in result["runs"].items():
        lines.append(f"## {run}")
        for key, table in entry.items():
            if key == "denoising":
                lines += ["", "| t | sigma_t | mean sq. error of eps | clean-action error |", "|---|---|---|---|"]
                lines += [f"| {r['t']:g} | {r['sigma']:.3f} | {r['eps_mse']:.3f} | "
                          f"{r['clean_error']:.3f} |" for r in table]
            elif isinstance(table, list):
                lines += ["", f"{key}:", "", "| data action size | rows | error mean | error median | "
                          "mean pred size | mean data size |", "|---|---|---|---|---|---|"]
                lines += [f"| {r['bin']} | {r['count']} | {r['error_mean']:.3f} | "
                          f"{r['error_median']:.3f} | {r['pred_size']:.3f} | {r['data_size']:.3f} |"
                          for r in table]
            else:
                lines += ["", f"{key}: {table:.3f}"]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scoredec.experiments.imitation_diagnostics",
        description="How far finished runs' actors and behaviour samples are from the dataset's "
                    "actions, by the size of the data action; and the behaviour model's "
                    "denoising error by noise level. Trains nothing.")
    parser.add_argument("runs", nargs="+", help="run directories (scoredec train / suite runs/)")
    parser.add_argument("--data", required=True, help="the dataset the runs were trained on (.h5)")
    parser.add_argument("--rows", type=int, default=4000, help="dataset rows to compare on")
    parser.add_argument("--samples", type=int, default=8, help="behaviour samples per row")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rows and the noise")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.samples < 1:
        parser.error(f"--rows and --samples must be >= 1, got {args.rows}, {args.samples}")
    result = diagnose(args.data, args.runs, rows=args.rows, samples=args.samples, seed=args.seed)
    print(render(result))
    if args.json:
        from scoredec.io import atomic_write_json

        atomic_write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
