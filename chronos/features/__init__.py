"""Kernel features: named floats in four groups describing a kernel (see `feature_table()`)."""

from chronos.features.extract import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURES,
    N_FEATURES,
    UNKNOWN,
    extract,
    feature_table,
    group_mask,
    profile_features,
)

__all__ = [
    "FEATURES",
    "FEATURE_GROUPS",
    "FEATURE_NAMES",
    "N_FEATURES",
    "UNKNOWN",
    "extract",
    "feature_table",
    "group_mask",
    "profile_features",
]
