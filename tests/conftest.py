"""Shared test setup.

Without a CUDA device the Triton kernels run in the interpreter. TRITON_INTERPRET must be in
the environment before @triton.jit decorates them (before scoredec.kernels is imported), so it
is set here, at collection time, before any test module imports the package.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
