"""basis-nmce: batch-aligned spectral embeddings (BASiS) and neural manifold clustering (NMCE).

``from basis_nmce import BASiS`` (and ``NMCE``) give the scikit-learn style estimators; they are
imported on first use so that ``import basis_nmce`` (and the command line) stay light.
"""

from __future__ import annotations

import os
from typing import Any

# Before torch / scikit-learn load their OpenMP runtimes: spinning idle OpenMP threads of one
# runtime starve the other's (a 512-point batch eigensolve went from 22 ms to 145 ms with
# active waiting on 2 cores; benchmarks/omp_wait_policy.py). Only a default: users can override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = [
    "NMCE",
    "BASiS",
    "BASiSJoint",
    "DiffusionNet",
    "SpecNet2",
    "SpectralNet",
    "__version__",
]
SPECTRAL_BASELINES = ("SpectralNet", "SpecNet2", "DiffusionNet")  # basis_nmce.spectral


def __getattr__(name: str) -> Any:
    if name == "BASiS":
        from .spectral.basis import BASiS

        return BASiS
    if name == "BASiSJoint":
        from .spectral.joint import BASiSJoint

        return BASiSJoint
    if name in SPECTRAL_BASELINES:
        from . import spectral

        return getattr(spectral, name)
    if name == "NMCE":
        from .nmce.estimator import NMCE

        return NMCE
    raise AttributeError(f"module 'basis_nmce' has no attribute {name!r}")
