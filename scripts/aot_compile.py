"""Compile every Triton kernel of scoredec.kernels, in every configuration its module declares,
ahead of time for sm_90 (H100/H200) without a GPU, and report resources.

    .venv/bin/python scripts/aot_compile.py [--arch 90] [--json out.json]

Prints one row per (kernel, configuration): shared memory (Triton's metadata), registers and
spills (Triton's bundled ptxas -v on the generated PTX). Exits non-zero if any configuration
fails to compile or needs more shared memory than one block may use on sm_90.
Runs without TRITON_INTERPRET: kernels decorated under the interpreter cannot be compiled.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Must happen before triton.jit decorates the kernels (i.e. before importing scoredec.kernels).
os.environ.pop("TRITON_INTERPRET", None)

import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

# Largest dynamic shared memory one block may use on sm_90 (cudaDevAttrMaxSharedMemoryPerBlockOptin).
SM90_MAX_SHARED_BYTES = 232448
WARP_SIZE = 32


def ptxas_path() -> Path:
    path = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not path.exists():
        raise FileNotFoundError(f"Triton's bundled ptxas is missing at {path}")
    return path


def ptxas_resources(ptx: str, arch: str) -> tuple[int, int, int]:
    """(registers, spill store bytes, spill load bytes) from `ptxas -v`."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "kernel.ptx"
        src.write_text(ptx)
        proc = subprocess.run([str(ptxas_path()), "--gpu-name", arch, "-v", str(src), "-o", str(Path(tmp) / "k.cubin")],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{proc.stderr}")
    info = proc.stderr + proc.stdout
    regs = re.search(r"Used (\d+) registers", info)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
    if regs is None or spill is None:
        raise RuntimeError(f"could not parse ptxas -v output:\n{info}")
    return int(regs.group(1)), int(spill.group(1)), int(spill.group(2))


def ptx_arch(ptx: str) -> str:
    """The PTX's .target (sm_90a for Triton on Hopper)."""
    m = re.search(r"^\.target\s+(sm_\w+)", ptx, re.MULTILINE)
    return m.group(1) if m else "sm_90a"


def kernel_modules(kernels) -> list[str]:
    """scoredec.kernels.KERNEL_MODULES, then every other module of the package that declares
    KERNELS, so a new kernel file is compiled without registering it twice."""
    names = list(kernels.KERNEL_MODULES)
    for info in pkgutil.iter_modules(kernels.__path__):
        if info.name not in names and hasattr(importlib.import_module(f"scoredec.kernels.{info.name}"), "KERNELS"):
            names.append(info.name)
    return names


def compile_all(arch: int) -> list[dict]:
    kernels = importlib.import_module("scoredec.kernels")
    target = GPUTarget("cuda", arch, WARP_SIZE)
    rows = []
    for module_name in kernel_modules(kernels):
        module = importlib.import_module(f"scoredec.kernels.{module_name}")
        for kernel_name, fn, configs in module.KERNELS:
            for cfg in configs:
                row = {"kernel": f"{module_name}.{kernel_name}", "config": cfg["name"], "ok": False}
                start = time.perf_counter()
                try:
                    src = ASTSource(fn, signature=cfg["signature"], constexprs=cfg["constexprs"])
                    options = {"num_warps": cfg.get("num_warps", 4), "num_stages": cfg.get("num_stages", 3)}
                    compiled = triton.compile(src, target=target, options=options)
                    ptx = compiled.asm["ptx"]
                    regs, spill_st, spill_ld = ptxas_resources(ptx, ptx_arch(ptx))
                    shared = int(compiled.metadata.shared)
                    row.update(shared=shared, registers=regs, spill_stores=spill_st, spill_loads=spill_ld,
                               ok=shared <= SM90_MAX_SHARED_BYTES)
                    if shared > SM90_MAX_SHARED_BYTES:
                        row["error"] = f"shared memory {shared} B > {SM90_MAX_SHARED_BYTES} B"
                except Exception as exc:  # reported in the table and in the exit status
                    print(f"--- {row['kernel']} [{row['config']}] failed:\n{exc}", file=sys.stderr)
                    row["error"] = type(exc).__name__
                row["seconds"] = round(time.perf_counter() - start, 2)
                rows.append(row)
    return rows


def print_table(rows: list[dict], arch: int) -> None:
    print(f"Triton {triton.__version__} AOT compile for sm_{arch} (shared-memory limit {SM90_MAX_SHARED_BYTES} B/block)")
    header = ("kernel", "config", "shared B", "regs", "spill st/ld B", "s", "status")
    lines = []
    for r in rows:
        if "shared" in r:
            cells = (r["kernel"], r["config"], str(r["shared"]), str(r["registers"]),
                     f"{r['spill_stores']}/{r['spill_loads']}", f"{r['seconds']:.1f}", "ok" if r["ok"] else r["error"])
        else:
            cells = (r["kernel"], r["config"], "-", "-", "-", f"{r['seconds']:.1f}", "FAILED: " + r["error"])
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    print(fmt.format(*header))
    print("-+-".join("-" * w for w in widths))
    for cells in lines:
        print(fmt.format(*cells))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 90 for sm_90")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = compile_all(args.arch)
    print_table(rows, args.arch)
    if args.json:
        args.json.write_text(json.dumps({"triton": triton.__version__, "arch": args.arch, "rows": rows}, indent=2))
    failed = [r for r in rows if not r["ok"]]
    if failed:
        print(f"{len(failed)} of {len(rows)} configurations failed", file=sys.stderr)
        return 1
    print(f"all {len(rows)} configurations compiled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
