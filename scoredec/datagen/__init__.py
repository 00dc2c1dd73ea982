"""Dataset generators: what makes the datasets that scoredec.data stores (docs/dataset_schema.md).

- factory.py: ``make_dataset`` / ``make_dataset_file`` (``scoredec data make``), seeded and
  byte-reproducible; MPE rollouts of the scripted experts (scoredec.envs.mpe.experts) degraded
  per quality, and MaMuJoCo replays of the TD3 snapshots.
- td3.py: online TD3 that trains and caches the MaMuJoCo behaviour policies
  (``scoredec data train-behaviour``).

Why a package of its own and not scoredec/data/: the generators run environments and policies
(scripted rollouts, online TD3) and sit above them, while the environments sit above the schema
(scoredec.envs.bandit builds a MultiAgentDataset); inside data/ the generators would put both
ends of that chain in one package. (The OMAR importer, data/omar.py, still reads the MPE
episode length and reference returns from scoredec.envs.mpe.) Nothing is imported here:
``scoredec.datagen.factory`` pulls in the environments, and the CLI imports it only when asked
to make data.
"""
