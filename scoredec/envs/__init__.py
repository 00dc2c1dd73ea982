"""Environments: the multimodal bandit, the vectorized MPE tasks (and MaMuJoCo, optional)."""
