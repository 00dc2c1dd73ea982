"""Turn a pytest-benchmark JSON file into Markdown rows for benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/results_md.py bench.json

One table per run: device, versions, then a row per (shape, backend) with the median, the
achieved bandwidth (compulsory bytes / median) and the speedup over torch eager of that shape.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def render(path: str) -> str:
    data = json.load(open(path))
    benches = [b for b in data["benchmarks"] if "backend" in b.get("extra_info", {})]
    if not benches:
        return f"_{path}: no benchmark rows_\n"
    info = benches[0]["extra_info"]
    by_shape: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for b in benches:
        e = b["extra_info"]
        by_shape[(e["dtype"], e["B"], e["d"], e["F"])][e["backend"]] = b
    lines = [
        f"Device: {info['device']} | torch {info['torch']} | CUDA {info['cuda']} | triton {info['triton']} | "
        f"torch threads {info['threads']} | {data.get('datetime', '')[:19]}",
        "",
        "| dtype | B | d | F | backend | median (us) | GB/s | speedup vs eager |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for (dtype, B, d, F), rows in sorted(by_shape.items()):
        eager = rows.get("eager")
        for name, b in rows.items():
            median = b["stats"]["median"]
            ratio = f"{eager['stats']['median'] / median:.2f}x" if eager else "-"
            gbs = b["extra_info"]["bytes"] / median / 1e9
            lines.append(f"| {dtype} | {B} | {d} | {F} | {name} | {median * 1e6:.1f} | {gbs:.1f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        sys.stdout.write(render(p))
