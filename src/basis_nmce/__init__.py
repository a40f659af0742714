"""basis-nmce: batch-aligned spectral embeddings (BASiS) and neural manifold clustering (NMCE)."""

__version__ = "0.1.0"
