"""Fused ops with backend dispatch (torch | triton | cuda); see registry.py for the choice rules.

Layering (one way): networks (scoredec.nets) pack their own weights and call these ops from
their forward(..., backend=); the ops take tensors only (packed weights, the schedule's
coefficients and coefficient tables from scoredec.sde) and launch the kernels (kernels/ as
scoredec.kernels, csrc/ as scoredec._C). Nothing here imports a model, layout, sampling or RL
module (tests/test_imports.py checks it). Each op's torch backend is its specification on the
same tensors; tests compare every backend with an independent float64 reference."""

from .noise_embed import noise_and_embed, noise_embed_torch
from .registry import (
    BACKENDS,
    BackendUnavailableError,
    available_backends,
    dispatch,
    get_op,
    list_ops,
    register_backend,
    register_op,
    requested_backend,
    select,
    select_name,
)
from .sampler import sample_sequential
from .score_compact import score_eval_compact
from .score_resnet import score_eval_resnet

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "available_backends",
    "dispatch",
    "get_op",
    "list_ops",
    "noise_and_embed",
    "noise_embed_torch",
    "register_backend",
    "register_op",
    "requested_backend",
    "sample_sequential",
    "score_eval_compact",
    "score_eval_resnet",
    "select",
    "select_name",
]
