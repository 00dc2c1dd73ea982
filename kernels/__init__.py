"""Triton kernels, shipped in the wheel as scoredec.kernels (top-level kernels/ in the repo).

Each kernel module declares ``KERNELS``: a list of (name, jit function, AOT configurations),
which scripts/aot_compile.py compiles ahead of time for sm_90. The modules import triton at
import time; scoredec.ops imports them only when the triton backend is used.

TRITON_INTERPRET=1 must be in the environment before these modules are imported (the
@triton.jit decorator reads it), which is how the CPU tests run them.
"""

KERNEL_MODULES = ("noise_embed", "score_compact", "score_resnet", "sample_sequential")
