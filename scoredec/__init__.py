"""scoredec: offline multi-agent RL by sequential score decomposition (OMSD), with fused kernels."""

__version__ = "0.1.0"
