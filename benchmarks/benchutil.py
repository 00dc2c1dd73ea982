"""Shared by the benchmark files: the device, versions for the results rows, and a sync."""

from __future__ import annotations

import platform

import torch

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def versions() -> dict:
    """Device and library versions recorded with every benchmark row."""
    info = {"device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "cuda": torch.version.cuda or "-", "triton": "-",
            "threads": torch.get_num_threads()}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        pass
    return info


def sync() -> None:
    """Wait for queued GPU work so a timer measures it."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
