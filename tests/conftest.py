"""Shared test set-up.

OMP_WAIT_POLICY must be set before numpy/torch/sklearn load their OpenMP runtimes: with the
default spinning policy, torch's and scikit-learn's idle threads fight for the 2 cores.

Hypothesis profiles (loaded here, before any test module builds its ``settings``): ``ci``
(chosen when the environment variable ``CI`` is set, as ``.ci/run`` does) draws the same
examples on every run and keeps no example database, so a CI result is reproducible;
``dev`` (the default) draws new examples each run and remembers failures in
``.hypothesis/``, so local runs keep exploring. ``HYPOTHESIS_PROFILE`` overrides the choice.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest
from hypothesis import settings

from .pipeline_fixtures import built, pipeline  # noqa: F401  (session-wide, shared)

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)


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
