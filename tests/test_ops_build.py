"""The native extension and the shipped Triton kernels import from the installed package."""

import importlib

import pytest

BUILD_INFO_KEYS = {"has_cuda", "cuda_archs", "cuda_version", "compiler", "build_type", "version"}


def test_c_extension_imports_and_reports_build():
    from scoredec import __version__, _C

    info = _C.build_info()
    assert BUILD_INFO_KEYS <= set(info)
    assert info["version"] == __version__
    assert isinstance(info["has_cuda"], bool)
    if info["has_cuda"]:
        assert hasattr(_C, "noise_embed")
        assert info["cuda_archs"] and "native" not in info["cuda_archs"]
        assert info["cuda_version"]
    else:
        assert not hasattr(_C, "noise_embed")


def test_kernels_ship_as_scoredec_kernels():
    pytest.importorskip("triton")
    kernels = importlib.import_module("scoredec.kernels")
    for name in kernels.KERNEL_MODULES:
        module = importlib.import_module(f"scoredec.kernels.{name}")
        assert module.KERNELS, f"{name} declares no kernels"
        for _, _, configs in module.KERNELS:
            assert configs and all({"name", "signature", "constexprs"} <= set(c) for c in configs)
