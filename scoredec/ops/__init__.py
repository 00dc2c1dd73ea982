"""Fused ops with backend dispatch (torch | triton | cuda); see registry.py for the choice rules."""

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
from .score_compact import score_eval_compact

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
    "score_eval_compact",
    "select",
    "select_name",
]
