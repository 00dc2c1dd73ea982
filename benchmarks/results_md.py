"""Turn pytest-benchmark JSON files into Markdown tables (and speed-up plots) for RESULTS.md.

    .venv/bin/python benchmarks/results_md.py bench.json [more.json ...]
        [--roofline roofline.json] [--plots DIR]

One code path for every bench_*.py file. A row is one benchmark; its extra_info names the op
("op"; noise_embed rows of older files say only "backend"), the variant ("variant" or
"backend"), the device and versions (benchutil.versions()), and optionally "flops" and "bytes"
(compulsory work). The other integer/string entries are the shape: those that vary within an op
become columns, those that are constant go into the table's header line. Per op one table: the
median, GFLOP/s and GB/s where given, the roofline fraction (max(flops / matmul rate of the
row's dtype, bytes / copy bandwidth) over the median, from `benchmarks/roofline.py`'s JSON), and
ratios against the per-agent loop, torch eager and torch.compile of the same shape (a ratio
above 1 is faster than that baseline).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

# Device and version entries: never shape columns.
META = ("device", "torch", "cuda", "triton", "threads", "op", "variant", "backend", "flops", "bytes")
# Variants in table order; others follow alphabetically.
VARIANT_ORDER = ("per-agent-loop", "eager", "compile", "compile-reduce-overhead", "cuda-graph", "graph",
                 "triton", "cuda")
BASELINES = (("per-agent-loop", "vs per-agent loop"), ("eager", "vs eager"), ("compile", "vs compile"))
BATCH_KEYS = ("batch", "B", "num_envs")


def load_rows(path: str | Path) -> tuple[list[dict], str]:
    """[{op, variant, median, info, shape}] of one pytest-benchmark JSON file, and its date."""
    data = json.loads(Path(path).read_text())
    stem = Path(path).stem.removeprefix("bench_")
    rows = []
    for b in data.get("benchmarks", []):
        e = dict(b.get("extra_info", {}))
        op = e.get("op") or ("noise_embed" if "backend" in e else stem)
        variant = e.get("variant") or e.get("backend") or "-"
        shape = {k: v for k, v in e.items()
                 if k not in META and isinstance(v, (int, str, bool)) and not isinstance(v, float)}
        if not shape:  # nothing in extra_info: the test's parameters are the shape
            shape = {k: v for k, v in (b.get("params") or {}).items() if isinstance(v, (int, str, bool))}
        rows.append({"op": op, "variant": variant, "median": b["stats"]["median"], "info": e, "shape": shape})
    return rows, data.get("datetime", "")[:19]


def _variant_key(v: str):
    return (VARIANT_ORDER.index(v), "") if v in VARIANT_ORDER else (len(VARIANT_ORDER), v)


def _sort_value(v):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def roofline_seconds(row: dict, roofline: dict | None) -> float | None:
    """The roofline time of a row: max(flops / matmul rate, bytes / copy bandwidth)."""
    if not roofline:
        return None
    e, dtype = row["info"], row["shape"].get("dtype", "float32")
    times = []
    rate = roofline.get("matmul_tflops", {}).get(dtype)
    if e.get("flops") and rate:
        times.append(e["flops"] / (rate * 1e12))
    if e.get("bytes") and roofline.get("copy_gbs"):
        times.append(e["bytes"] / (roofline["copy_gbs"] * 1e9))
    return max(times) if times else None


def split_shape(rows: list[dict]) -> tuple[list[str], dict]:
    """(varying shape keys in first-seen order, constant shape entries) of one op's rows."""
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r["shape"] if k not in keys]
    varying = [k for k in keys if len({repr(r["shape"].get(k)) for r in rows}) > 1]
    const = {k: rows[0]["shape"].get(k) for k in keys if k not in varying}
    return varying, const


def render_op(op: str, rows: list[dict], date: str = "", roofline: dict | None = None) -> str:
    """One Markdown table for the rows of one op."""
    varying, const = split_shape(rows)
    info = rows[0]["info"]
    head = [f"Device: {info.get('device', '?')}", f"torch {info.get('torch', '?')}",
            f"CUDA {info.get('cuda', '-')}", f"triton {info.get('triton', '-')}",
            f"torch threads {info.get('threads', '?')}"]
    if date:
        head.append(date)
    head += [f"{k} {v}" for k, v in const.items()]
    has_flops = any(r["info"].get("flops") for r in rows)
    has_bytes = any(r["info"].get("bytes") for r in rows)
    has_roof = any(roofline_seconds(r, roofline) for r in rows)
    variants = {r["variant"] for r in rows}
    baselines = [(v, label) for v, label in BASELINES if v in variants]
    cols = varying + ["variant", "median (us)"]
    cols += ["GFLOP/s"] if has_flops else []
    cols += ["GB/s"] if has_bytes else []
    cols += ["roofline"] if has_roof else []
    cols += [label for _, label in baselines]
    text_cols = {"variant"} | {k for k in varying if all(isinstance(r["shape"].get(k), str) for r in rows)}
    lines = [f"#### {op}", "", " | ".join(head), "", "| " + " | ".join(cols) + " |",
             "| " + " | ".join("---" if c in text_cols else "---:" for c in cols) + " |"]
    by_shape: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_shape[tuple(r["shape"].get(k) for k in varying)][r["variant"]] = r
    for shape in sorted(by_shape, key=lambda s: tuple(_sort_value(v) for v in s)):
        group = by_shape[shape]
        for variant in sorted(group, key=_variant_key):
            r = group[variant]
            med = r["median"]
            cells = [str(v) for v in shape] + [variant, f"{med * 1e6:.1f}"]
            if has_flops:
                cells.append(f"{r['info']['flops'] / med / 1e9:.1f}" if r["info"].get("flops") else "-")
            if has_bytes:
                cells.append(f"{r['info']['bytes'] / med / 1e9:.1f}" if r["info"].get("bytes") else "-")
            if has_roof:
                roof = roofline_seconds(r, roofline)
                cells.append(f"{100 * roof / med:.1f}%" if roof else "-")
            for base, _ in baselines:
                cells.append(f"{group[base]['median'] / med:.2f}x" if base in group else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def group_ops(paths) -> list[tuple[str, list[dict], str]]:
    """[(op, rows, date)] over the files, ops in first-seen order."""
    ops: dict[str, list[dict]] = {}
    dates: dict[str, str] = {}
    for path in paths:
        rows, date = load_rows(path)
        for r in rows:
            ops.setdefault(r["op"], []).append(r)
            dates.setdefault(r["op"], date)
    return [(op, rows, dates[op]) for op, rows in ops.items()]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "device"


def plot_speedup(op: str, rows: list[dict], path: Path) -> Path | None:
    """Speed-up over eager against the batch size, a line per variant and other shape; None when
    the op has no eager rows or no varying batch key."""
    varying, _ = split_shape(rows)
    batch_key = next((k for k in BATCH_KEYS if k in varying), None)
    if batch_key is None or not any(r["variant"] == "eager" for r in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [k for k in varying if k != batch_key]
    eager = {tuple(r["shape"].get(k) for k in varying): r["median"] for r in rows if r["variant"] == "eager"}
    lines: dict[tuple, list[tuple]] = defaultdict(list)
    for r in rows:
        key = tuple(r["shape"].get(k) for k in varying)
        if r["variant"] == "eager" or key not in eager:
            continue
        label = (r["variant"],) + tuple(f"{k}={r['shape'].get(k)}" for k in others)
        lines[label].append((r["shape"][batch_key], eager[key] / r["median"]))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, pts in sorted(lines.items(), key=lambda kv: (_variant_key(kv[0][0]), kv[0])):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=" ".join(label))
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter, ScalarFormatter

    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%gx"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%gx"))
    ax.set_xlabel(batch_key)
    ax.set_ylabel("speed-up over eager (median)")
    ax.set_title(f"{op}: {rows[0]['info'].get('device', '?')}")
    ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def render_files(paths, roofline: dict | None = None, plot_dir: Path | None = None,
                 link_base: Path | None = None) -> str:
    """Markdown of all ops in the files; with plot_dir, a speed-up plot per op linked relative to
    link_base (default plot_dir's parent)."""
    out = []
    for op, rows, date in group_ops(paths):
        out.append(render_op(op, rows, date, roofline))
        if plot_dir is not None:
            png = plot_speedup(op, rows, Path(plot_dir) / f"{slug(op)}-{slug(rows[0]['info'].get('device', ''))}.png")
            if png is not None:
                base = Path(link_base) if link_base is not None else Path(plot_dir).parent
                try:
                    rel = png.resolve().relative_to(base.resolve())
                except ValueError:
                    rel = png
                out.append(f"\n![{op} speed-up over eager]({rel.as_posix()})\n")
        out.append("")
    return "\n".join(out) if out else "_no benchmark rows_\n"


def render(path: str) -> str:
    """Markdown tables of one pytest-benchmark JSON file (no roofline, no plots)."""
    return render_files([path])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", nargs="+", help="pytest-benchmark JSON files (--benchmark-json)")
    p.add_argument("--roofline", help="JSON of benchmarks/roofline.py (matmul TFLOP/s, copy GB/s)")
    p.add_argument("--plots", help="directory for the speed-up plots (PNG)")
    args = p.parse_args(argv)
    roofline = json.loads(Path(args.roofline).read_text()) if args.roofline else None
    sys.stdout.write(render_files(args.files, roofline, Path(args.plots) if args.plots else None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
