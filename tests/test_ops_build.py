"""The native extension and the shipped Triton kernels import from the installed package, every
kernel module and every CUDA entry point of every op included."""

import importlib
import pkgutil

import pytest

BUILD_INFO_KEYS = {"has_cuda", "cuda_archs", "cuda_version", "compiler", "build_type", "version"}
# The _C entry points of the four ops (csrc/bindings.cpp), present exactly when built with CUDA.
CUDA_ENTRY_POINTS = ("noise_embed", "score_compact", "score_resnet_stem", "score_resnet_gemm", "sample_sequential")
# The Triton kernel module of each op (scoredec.ops.<op> -> scoredec.kernels.<module>).
KERNEL_OF_OP = {"noise_embed": "noise_embed", "score_compact": "score_compact", "score_resnet": "score_resnet",
                "sample_sequential": "sample_sequential"}


def test_c_extension_imports_and_reports_build():
    from scoredec import __version__, _C

    info = _C.build_info()
    assert BUILD_INFO_KEYS <= set(info)
    assert info["version"] == __version__
    assert isinstance(info["has_cuda"], bool)
    if info["has_cuda"]:
        assert all(hasattr(_C, name) for name in CUDA_ENTRY_POINTS)
        assert info["cuda_archs"] and "native" not in info["cuda_archs"]
        assert info["cuda_version"]
    else:
        assert not any(hasattr(_C, name) for name in CUDA_ENTRY_POINTS)


def test_kernels_ship_as_scoredec_kernels():
    pytest.importorskip("triton")
    kernels = importlib.import_module("scoredec.kernels")
    for name in kernels.KERNEL_MODULES:
        module = importlib.import_module(f"scoredec.kernels.{name}")
        assert module.KERNELS, f"{name} declares no kernels"
        for _, _, configs in module.KERNELS:
            assert configs and all({"name", "signature", "constexprs"} <= set(c) for c in configs)


def test_every_kernel_module_is_listed_and_every_op_has_one():
    """KERNEL_MODULES (what scripts/aot_compile.py compiles first) is every module of the
    package, and every registered op with a triton backend has its kernel module there."""
    pytest.importorskip("triton")
    from scoredec import ops

    kernels = importlib.import_module("scoredec.kernels")
    shipped = {info.name for info in pkgutil.iter_modules(kernels.__path__)}
    assert set(kernels.KERNEL_MODULES) == shipped
    assert set(ops.list_ops()) == set(KERNEL_OF_OP)
    for op, module in KERNEL_OF_OP.items():
        assert "triton" in ops.get_op(op).backends and "cuda" in ops.get_op(op).backends, op
        assert module in kernels.KERNEL_MODULES, op
