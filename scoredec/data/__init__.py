"""Datasets: the schema (schema.py) and its one on-disk format, HDF5 (hdf5.py)."""

from scoredec.data.hdf5 import read_dataset, write_dataset
from scoredec.data.schema import SCHEMA_VERSION, DatasetError, MultiAgentDataset

__all__ = ["SCHEMA_VERSION", "DatasetError", "MultiAgentDataset", "read_dataset", "write_dataset"]
