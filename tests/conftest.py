"""Shared test set-up.

OMP_WAIT_POLICY must be set before numpy/torch/sklearn load their OpenMP runtimes: with the
default spinning policy, torch's and scikit-learn's idle threads fight for the 2 cores.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest

from .pipeline_fixtures import built, pipeline  # noqa: F401  (session-wide, shared)


def _has_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if _has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
