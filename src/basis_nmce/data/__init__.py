"""Data sources, the prepared on-disk format, and validation.

``fetch`` (the only step that may use the network, or a local ``mirror``) puts a source's raw
files in ``data/raw/<name>/`` with a checksummed ``manifest.json``; ``prepare`` parses them (or
generates a toy), draws the seeded hold-out split where the source has no official one,
subsamples, validates, and ``save_prepared`` writes ``data/prepared/<name>.npz`` plus a JSON
sidecar. Importing this package does not import torch.
"""

from .dataset import Dataset, validate_dataset
from .prepared import load_prepared, save_prepared
from .registry import SOURCES, fetch, load_raw, prepare

__all__ = [
    "SOURCES",
    "Dataset",
    "fetch",
    "load_prepared",
    "load_raw",
    "prepare",
    "save_prepared",
    "validate_dataset",
]
