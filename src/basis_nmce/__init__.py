"""basis-nmce: batch-aligned spectral embeddings (BASiS) and neural manifold clustering (NMCE).

``from basis_nmce import BASiS`` gives the scikit-learn style estimator; it is imported on first
use so that ``import basis_nmce`` (and the command line) stay light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["BASiS", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "BASiS":
        from .basis import BASiS

        return BASiS
    raise AttributeError(f"module 'basis_nmce' has no attribute {name!r}")
