"""Backend choice: explicit argument > SCOREDEC_BACKEND > automatic, raising for an explicitly
requested backend that cannot run, and logging once when automatic choice falls back."""

from __future__ import annotations

import logging

import pytest
import torch

from scoredec.ops import BackendUnavailableError, available_backends, noise_and_embed, select
from scoredec.ops import registry

HAS_GPU = torch.cuda.is_available()
CPU = torch.device("cpu")


KEY = (torch.float32, torch.float32, torch.float32)  # (a, t, freqs) dtypes


def _args(device=CPU):
    a = torch.rand(3, 2, device=device)
    return (a, torch.randn_like(a), torch.rand(3, device=device), torch.randn(5, device=device))


@pytest.fixture(autouse=True)
def _no_env_backend(monkeypatch):
    monkeypatch.delenv(registry.ENV_BACKEND, raising=False)


def test_available_backends_lists_every_backend():
    table = available_backends()
    assert set(table["noise_embed"]) == {"torch", "triton", "cuda"}
    for ok, reason in table["noise_embed"].values():
        assert isinstance(ok, bool) and isinstance(reason, str) and reason
    assert table["noise_embed"]["torch"] == (True, "ok")


def test_automatic_on_cpu_picks_torch():
    # Even with the interpreter on, triton runs CPU tensors only when asked for.
    assert select("noise_embed", CPU, KEY).name == "torch"


@pytest.mark.skipif(HAS_GPU, reason="checks the no-GPU error")
def test_explicit_cuda_without_gpu_raises_with_reason():
    with pytest.raises(BackendUnavailableError, match="'cuda' \\(backend=\\) is unavailable: .*(CUDA|cuda)"):
        noise_and_embed(*_args(), backend="cuda")


def test_explicit_cuda_built_without_cuda_names_the_build(monkeypatch):
    monkeypatch.setattr(registry, "cuda_build_info", lambda: {"has_cuda": False})
    with pytest.raises(BackendUnavailableError, match="_C was built without CUDA \\(SCOREDEC_CUDA=OFF"):
        select("noise_embed", CPU, KEY, backend="cuda")


def test_explicit_triton_not_installed(monkeypatch):
    real = registry.importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda name, *a: None if name == "triton" else real(name, *a))
    with pytest.raises(BackendUnavailableError, match="triton is not installed"):
        select("noise_embed", CPU, KEY, backend="triton")


def test_explicit_triton_on_cpu_needs_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(BackendUnavailableError, match="TRITON_INTERPRET=1"):
        select("noise_embed", CPU, KEY, backend="triton")


def test_env_backend_is_respected(monkeypatch):
    monkeypatch.setenv(registry.ENV_BACKEND, "torch")
    assert select("noise_embed", CPU, KEY).name == "torch"
    monkeypatch.setenv(registry.ENV_BACKEND, "auto")
    assert select("noise_embed", CPU, KEY).name == "torch"
    if not HAS_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        monkeypatch.setenv(registry.ENV_BACKEND, "triton")
        assert select("noise_embed", CPU, KEY).name == "triton"
        monkeypatch.setenv(registry.ENV_BACKEND, "cuda")
        with pytest.raises(BackendUnavailableError, match="SCOREDEC_BACKEND"):
            select("noise_embed", CPU, KEY)


def test_explicit_argument_beats_env(monkeypatch):
    monkeypatch.setenv(registry.ENV_BACKEND, "cuda")
    assert select("noise_embed", CPU, KEY, backend="torch").name == "torch"


def test_unknown_backend_name(monkeypatch):
    with pytest.raises(ValueError, match="backend= must be one of"):
        select("noise_embed", CPU, KEY, backend="tpu")
    monkeypatch.setenv(registry.ENV_BACKEND, "cudnn")
    with pytest.raises(ValueError, match="SCOREDEC_BACKEND must be one of"):
        select("noise_embed", CPU, KEY)


def test_automatic_fallback_logs_once(monkeypatch, caplog):
    """For CUDA tensors, an unavailable cuda and triton fall back to torch, said once."""
    monkeypatch.setattr(registry, "_LOGGED", set())
    monkeypatch.setattr(registry, "cuda_available", lambda device: (False, "test: no cuda"))
    op = registry.get_op("noise_embed")
    monkeypatch.setitem(op.backends, "cuda",
                        registry.Backend("cuda", op.backends["cuda"].fn, lambda device: (False, "test: no cuda")))
    monkeypatch.setitem(op.backends, "triton",
                        registry.Backend("triton", op.backends["triton"].fn, lambda device: (False, "test: no triton")))
    cuda = torch.device("cuda")
    with caplog.at_level(logging.WARNING, logger="scoredec.ops"):
        assert select("noise_embed", cuda, KEY).name == "torch"
        assert select("noise_embed", cuda, KEY).name == "torch"
    records = [r for r in caplog.records if r.name == "scoredec.ops"]
    assert len(records) == 1
    assert "using backend 'torch'" in records[0].getMessage() and "test: no cuda" in records[0].getMessage()


def test_automatic_skips_backend_that_refuses_inputs(monkeypatch):
    """float64 on CUDA tensors: the kernels refuse it, automatic choice takes torch."""
    monkeypatch.setattr(registry, "_LOGGED", set())
    op = registry.get_op("noise_embed")
    for name in ("cuda", "triton"):
        monkeypatch.setitem(op.backends, name,
                            registry.Backend(name, op.backends[name].fn, lambda device: (True, "ok"),
                                             op.backends[name].accepts))
    key = (torch.float64, torch.float32, torch.float32)
    assert select("noise_embed", torch.device("cuda"), key).name == "torch"


def test_register_op_and_backend(monkeypatch):
    monkeypatch.setattr(registry, "_OPS", dict(registry._OPS))
    registry.register_op("dummy", lambda x: x + 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_op("dummy", lambda x: x)
    with pytest.raises(ValueError, match="backend must be"):
        registry.register_backend("dummy", "metal", lambda x: x, lambda device: (True, "ok"))
    registry.register_backend("dummy", "cuda", lambda x: x + 2, lambda device: (False, "nope"))
    assert registry.dispatch("dummy", CPU, 1) == 2
    assert available_backends()["dummy"] == {"torch": (True, "ok"), "triton": (False, "not implemented"),
                                             "cuda": (False, "nope")}
    with pytest.raises(BackendUnavailableError, match="nope"):
        registry.dispatch("dummy", CPU, 1, backend="cuda")
    with pytest.raises(BackendUnavailableError, match="not implemented"):
        registry.dispatch("dummy", CPU, 1, backend="triton")
    with pytest.raises(KeyError, match="unknown op"):
        registry.get_op("nothing")
