"""Why a kernel backend's test is skipped here (shared by the op test files)."""

from __future__ import annotations

import torch

from scoredec.ops import registry


def backend_skip(op: str, backend: str, dtype: torch.dtype, device: torch.device) -> str | None:
    """None when `backend` of `op` can run `dtype` on `device`; else the reason to skip."""
    ok, reason = registry.get_op(op).backends[backend].available(device)
    if not ok:
        return f"{backend} backend unavailable: {reason}"
    if backend == "triton" and device.type == "cpu" and dtype == torch.bfloat16:
        return ("the Triton interpreter gets bf16 wrong (truncating casts, bit-pattern dots): "
                "bf16 is checked on a GPU")
    return None
