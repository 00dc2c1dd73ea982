"""Datasets: the schema (schema.py), its one on-disk format, HDF5 (hdf5.py), dataset cards
(card.py), the OMAR and OG-MARL importers (omar.py, ogmarl.py) and the in-memory tensors
training samples from (tensors.py), and the recorder that makes one from your own episodes
(recorder.py); the format is documented in docs/dataset_schema.md. The generators that make datasets live in
scoredec.datagen."""

from scoredec.data.hdf5 import read_dataset, write_dataset
from scoredec.data.schema import SCHEMA_VERSION, DatasetError, MultiAgentDataset

__all__ = ["SCHEMA_VERSION", "DatasetError", "MultiAgentDataset", "read_dataset", "write_dataset"]
