"""Feature extractors: each kind maps a prepared data set to (train, test) float32 vectors."""

from .raw import raw_features

FEATURE_KINDS = ("raw", "siamese", "tcr")  # siamese: siamese.py; tcr: NMCE stage 1, stages/nmce.py

__all__ = ["FEATURE_KINDS", "raw_features"]
