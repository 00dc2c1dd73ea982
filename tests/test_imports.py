"""The package's import structure (issue 15): every module imports alone, the import graph of
scoredec (module-level and function-level imports alike) has no cycle, and the fused ops and
kernels import nothing above them (Nets -> Ops -> Kernels, one way: no model, layout, sampling
or RL module)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
# What scoredec/ops and kernels/ may import from the package: the schedule and themselves.
OPS_MAY_IMPORT = ("scoredec.sde", "scoredec.ops", "scoredec.kernels")
# The compiled extension (no source file to follow).
EXTENSIONS = ("scoredec._C",)


def module_files() -> dict[str, Path]:
    """Module name -> file, for scoredec/ and kernels/ (shipped as scoredec.kernels)."""
    out = {}
    for base, prefix in ((ROOT / "scoredec", "scoredec"), (ROOT / "kernels", "scoredec.kernels")):
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


MODULES = module_files()


def imports_of(name: str, path: Path) -> set[str]:
    """The scoredec modules `name` imports anywhere in its file (functions included), each
    resolved to the most specific module that exists (`from pkg import mod` -> pkg.mod)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target in EXTENSIONS:
                continue
            if target == "scoredec" or target.startswith("scoredec."):
                while target not in MODULES and "." in target:
                    target = target.rpartition(".")[0]
                if target in MODULES and target != name:
                    found.add(target)
    return found


GRAPH = {name: imports_of(name, path) for name, path in MODULES.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one node (Tarjan): each holds a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            comp = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                comp.add(top)
                if top == node:
                    break
            if len(comp) > 1:
                out.append(comp)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_graph_sees_function_level_and_relative_imports():
    assert "scoredec.ops.common" in GRAPH["scoredec.ops.score_compact"]          # from . import common
    assert "scoredec.kernels.score_compact" in GRAPH["scoredec.ops.score_compact"]  # inside a function
    assert "scoredec.ops.score_compact" in GRAPH["scoredec.nets"]


def test_no_import_cycle():
    cycles = [sorted(c) for c in strongly_connected(GRAPH)]
    assert not cycles, f"import cycles: {cycles}"


def test_ops_and_kernels_import_nothing_above_them():
    bad = {name: sorted(t for t in targets if t != "scoredec" and not t.startswith(OPS_MAY_IMPORT))
           for name, targets in GRAPH.items() if name.startswith(("scoredec.ops", "scoredec.kernels"))}
    bad = {name: targets for name, targets in bad.items() if targets}
    assert not bad, f"ops/kernels importing models, layouts, sampling or RL modules: {bad}"


def test_environments_and_the_format_do_not_import_the_generators():
    """datagen -> envs and datagen -> data, never back: the scripted experts stay in envs/mpe
    because the spread references every score reads (envs/mpe/references.py) measure them."""
    bad = {name: sorted(t for t in targets if t.startswith("scoredec.datagen"))
           for name, targets in GRAPH.items() if name.startswith(("scoredec.envs", "scoredec.data"))
           and not name.startswith("scoredec.datagen")}
    bad = {name: targets for name, targets in bad.items() if targets}
    assert not bad, f"environments or the data format importing the generators: {bad}"
    assert "scoredec.envs.mpe.experts" in GRAPH["scoredec.datagen.factory"]


def test_every_module_imports_alone():
    """Each module imported first in a fresh interpreter state: a child forked from a process
    that has imported torch (and triton) but nothing of scoredec, so that the check takes
    seconds. A module that needs an optional dependency that is not installed is reported as
    such and passes."""
    script = textwrap.dedent("""
        import importlib, os, sys, traceback
        import torch  # noqa: F401
        try:
            import triton  # noqa: F401
        except ImportError:
            pass
        failed = []
        for name in sys.argv[1:]:
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    importlib.import_module(name)
                except ModuleNotFoundError as e:
                    if (e.name or "").split(".")[0] == "scoredec":
                        traceback.print_exc()
                        code = 1
                except BaseException:
                    traceback.print_exc()
                    code = 1
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
            _, status = os.waitpid(pid, 0)
            if status != 0:
                failed.append(name)
        print("FAILED", " ".join(failed))
        sys.exit(1 if failed else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script, *sorted(MODULES)], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
