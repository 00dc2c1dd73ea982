"""Small studies run by the CLI: the multimodal bandit."""
