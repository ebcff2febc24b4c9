"""Hypothesis settings of the random transform-sequence tests over corpus kernels."""

from __future__ import annotations

from hypothesis import HealthCheck, settings


def sequence_settings(max_examples: int) -> settings:
    """Derandomized (the same examples every run), no deadline (a kernel's emulation or ptxas
    run is slow), and large draws allowed (sequences of several transforms)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
