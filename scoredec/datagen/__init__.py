"""Dataset generators: what makes the datasets that scoredec.data stores (DESIGN.md section 3).

- factory.py: ``make_dataset`` / ``make_dataset_file`` (``scoredec data make``), seeded and
  byte-reproducible; MPE rollouts of the scripted experts (scoredec.envs.mpe.experts) degraded
  per quality, and MaMuJoCo replays of the TD3 snapshots.
- td3.py: online TD3 that trains and caches the MaMuJoCo behaviour policies
  (``scoredec data train-behaviour``).

Why a package of its own and not scoredec/data/: the generators drive environments, and the
environments build datasets with the format (scoredec.envs.bandit makes a MultiAgentDataset),
so data (format) -> envs -> datagen reads one way; a generator inside data/ would make the
format package import its own consumers. Nothing is imported here: ``scoredec.datagen.factory``
pulls in the environments, and the CLI imports it only when asked to make data.
"""
