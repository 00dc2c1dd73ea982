"""`scoredec export RUN --format onnx|torchscript --out DIR`: each agent's actor as its own file
for decentralized deployment, plus actors.json describing the files, checked against the
PyTorch actors.

The training actors (scoredec.actors.Actors) run every agent in one stacked batch over padded
observations [B, n, obs_max]. An exported agent takes only its own observation: obs
[B, obs_dim] float32 -> action [B, act_dim] float32 in [-1, 1]. What the stack does to an
agent's input is inside the file: the padding needs nothing (the padded columns have zero
weight, so the first layer keeps only the agent's own obs_dim columns), and the input
BatchNorm of the methods that have one (MA-CQL, OMAR) is applied with its running statistics.
The weights are copied into plain Linear layers (the stacked nets' `models: slice` argument
is what torch.jit.script cannot compile), so the training nets are untouched.

Parity: the files are loaded back (onnxruntime, torch.jit.load) and compared with the PyTorch
actors on random observations; the largest difference is recorded in actors.json.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from scoredec import __version__
from scoredec.actors import Actors
from scoredec.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "AgentActor", "agent_actors", "export_run", "PARITY_TOLERANCE"]

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
PARITY_TOLERANCE = 1e-5
"""Largest allowed |exported - PyTorch| on an action in [-1, 1]: float32 round-off of a
differently ordered sum, far below any effect on an environment."""
PARITY_ROWS = 256
INSTALL_HINT = "pip install 'scoredec[export]' (onnx, onnxscript, onnxruntime)"


class AgentActor(nn.Module):
    """Agent k of a decentralized Actors stack alone: obs [B, obs_dim] -> action [B, act_dim]."""

    def __init__(self, actors: Actors, k: int):
        super().__init__()
        if actors.layout.mode != "decentralized":
            raise ValueError("these actors are one joint actor over all agents (BRPO-JAL, a "
                             "centralized oracle): there is no per-agent actor to export")
        if actors.mlp.activation_name != "relu":
            raise ValueError(f"export supports ReLU actors, got {actors.mlp.activation_name!r}")
        spec = actors.spec
        d, a = spec.obs_dims[k], spec.act_dims[k]
        self.obs_dim, self.act_dim = d, a
        norm = actors.norm
        self.has_norm = norm is not None
        self.eps = float(norm.eps) if norm is not None else 0.0
        for name, default in (("running_mean", 0.0), ("running_var", 1.0), ("weight", 1.0),
                              ("bias", 0.0)):
            value = (getattr(norm, name)[k, 0, :d] if norm is not None
                     else torch.full((d,), default))
            self.register_buffer(f"norm_{name}", value.detach().clone().float())
        layers: list[nn.Module] = []
        stack = actors.mlp.layers
        for i, lin in enumerate(stack):
            w = lin.effective_weight()[k].detach()            # [in, out]
            b = lin.bias[k, 0].detach()
            if i == 0:
                w = w[:d]                                      # the agent's own columns
            if i == len(stack) - 1:
                w, b = w[:, :a], b[:a]                         # the agent's own action dims
            layer = nn.Linear(w.shape[0], w.shape[1])
            with torch.no_grad():
                layer.weight.copy_(w.t())
                layer.bias.copy_(b)
            layers.append(layer)
            if i < len(stack) - 1:
                layers.append(nn.ReLU())
        self.mlp = nn.Sequential(*layers)
        self.eval()

    def forward(self, obs: Tensor) -> Tensor:
        x = obs
        if self.has_norm:
            x = ((x - self.norm_running_mean) / torch.sqrt(self.norm_running_var + self.eps)
                 * self.norm_weight + self.norm_bias)
        return torch.tanh(self.mlp(x))


def agent_actors(actors: Actors) -> list[AgentActor]:
    """One AgentActor per agent, on the CPU, in float32."""
    cpu = actors.to("cpu").float().eval()
    return [AgentActor(cpu, k) for k in range(cpu.spec.n_agents)]


# ------------------------------------------------------------------------ writers

@contextlib.contextmanager
def _torchscript_quietly():
    # torch 2.9+ marks TorchScript deprecated; the format still loads in C++ (libtorch) and
    # Python, which is what this export is for.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..*deprecated")
        yield


def _torchscript_bytes(module: AgentActor) -> bytes:
    buf = io.BytesIO()
    with _torchscript_quietly():
        torch.jit.save(torch.jit.script(module), buf)
    return buf.getvalue()


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's own chatter off: its optimizer passes log at INFO (which `scoredec` shows),
    its op registry warns about torchvision ops, and torch's pytree raises a FutureWarning
    about its own internals; none of it is about the user's model."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*LeafSpec")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _onnx_bytes(module: AgentActor) -> bytes:
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise RuntimeError(f"ONNX export needs {err.name}: {INSTALL_HINT}") from None
    example = torch.zeros(3, module.obs_dim)
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(module, (example,), None, input_names=["obs"],
                                    output_names=["action"], dynamic_shapes={"obs": {0: batch}},
                                    dynamo=True, external_data=False, verbose=False)
    return program.model_proto.SerializeToString()


def _runner(fmt: str, path: Path):
    """A function obs [B, obs_dim] float32 numpy -> actions numpy, from the written file,
    or None with the reason when the runtime is not installed."""
    if fmt == "torchscript":
        with _torchscript_quietly():
            module = torch.jit.load(str(path), map_location="cpu")
        return (lambda x: module(torch.from_numpy(x)).detach().numpy()), None
    try:
        import onnxruntime as ort
    except ImportError:
        return None, f"onnxruntime is not installed ({INSTALL_HINT})"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return (lambda x: session.run(["action"], {"obs": x})[0]), None


def _file_name(k: int, name: str, fmt: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return f"agent{k}_{safe}{FORMATS[fmt]}"


def check_parity(actors: Actors, files: list[Path], fmt: str, rows: int = PARITY_ROWS,
                 seed: int = 0) -> dict:
    """Max |file(o_k) - Actors(o)[:, k]| over agents on random observations (std 2, so that
    some actions saturate), and rows of 1 to check the batch size is free."""
    spec = actors.spec
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(rows, spec.n_agents, spec.obs_max, generator=gen) * 2.0
    obs = obs * spec.obs_mask().float()                       # the padding is zero, as in data
    with torch.no_grad():
        ref = actors.to("cpu").float().eval()(obs).numpy()
    worst = 0.0
    for k, path in enumerate(files):
        run, why = _runner(fmt, path)
        if run is None:
            return {"checked": False, "reason": why}
        d, a = spec.obs_dims[k], spec.act_dims[k]
        x = np.ascontiguousarray(obs[:, k, :d].numpy())
        for batch in (x, x[:1]):
            got = run(batch)
            if got.shape != (batch.shape[0], a):
                raise RuntimeError(f"{path}: output shape {got.shape}, expected "
                                   f"{(batch.shape[0], a)}")
            worst = max(worst, float(np.abs(got - ref[: batch.shape[0], k, :a]).max()))
    if not worst <= PARITY_TOLERANCE:
        raise RuntimeError(f"exported actors differ from the PyTorch actors by {worst:.3g} "
                           f"(> {PARITY_TOLERANCE:g}) on random observations")
    return {"checked": True, "rows": rows, "seed": seed, "max_abs_error": worst,
            "tolerance": PARITY_TOLERANCE}


def export_run(run: str | Path, fmt: str, out: str | Path) -> dict:
    """Write one file per agent of the run's actors and out/actors.json; returns that JSON."""
    from scoredec.pipeline import load_actors

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {tuple(FORMATS)}, got {fmt!r}")
    actors, meta = load_actors(Path(run), "cpu")
    spec = actors.spec
    names = meta.get("agent_names") or [f"agent_{k}" for k in range(spec.n_agents)]
    out = Path(out)
    # A run directory holds its own actors.json: exporting into one would overwrite the products.
    if out.resolve() == Path(run).resolve() or (out / "config.yaml").is_file():
        raise ValueError(f"--out {out} is a run directory; export writes its own actors.json "
                         "there and would overwrite the run's: choose another directory")
    files, agents = [], []
    write = _onnx_bytes if fmt == "onnx" else _torchscript_bytes
    for k, module in enumerate(agent_actors(actors)):
        path = out / _file_name(k, names[k], fmt)
        atomic_write_bytes(path, write(module))
        files.append(path)
        agents.append({
            "index": k, "name": names[k], "file": path.name,
            "input": {"name": "obs", "shape": ["batch", spec.obs_dims[k]], "dtype": "float32"},
            "output": {"name": "action", "shape": ["batch", spec.act_dims[k]],
                       "dtype": "float32", "range": [-1.0, 1.0]},
        })
    parity = check_parity(actors, files, fmt)
    doc = {
        "format": fmt, "scoredec_version": __version__, "torch_version": torch.__version__,
        "run": str(Path(run).resolve()), "env_id": meta.get("env_id"),
        "method": meta.get("config", {}).get("method", meta.get("method")),
        "agents": agents,
        "observation": "the agent's own observation as the dataset stores it (its first obs_dim "
                       "values, unpadded); any input normalization the actors learned is inside "
                       "the file",
        "action": "tanh output in [-1, 1]; map it onto a Box [low, high] as low + (a + 1) "
                  "(high - low) / 2 (scoredec.envs.parallel.action_to_env), as evaluation does",
        "input_norm": actors.norm is not None, "parity": parity,
    }
    atomic_write_json(out / "actors.json", doc)
    return doc
