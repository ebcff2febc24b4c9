"""Kernel features: 25 named floats describing a kernel's PTX (see `feature_table()`)."""

from chronos.features.extract import FEATURE_NAMES, FEATURES, N_FEATURES, extract, feature_table

__all__ = ["FEATURES", "FEATURE_NAMES", "N_FEATURES", "extract", "feature_table"]
