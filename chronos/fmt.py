"""How numbers read to a person: speed-ups, rates with n and a 95% interval, backend labels.

One definition for the CLI, progress bars, reports and plots, so "-80%" never means "better"
in one place and "worse" in another. Pure functions (no torch, no Hydra).
"""

from __future__ import annotations

import math

from scipy.stats import binomtest

NA = "n/a"


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def speedup(improvement: float | None, short: bool = False) -> str:
    """`final/base - 1` as '1.25x (cycles -20.0%)'; `short` gives '1.25x' (progress bars).

    A ratio above 1x is faster, so the sign can no longer be misread.
    """
    if _missing(improvement):
        return NA
    assert improvement is not None
    ratio = 1.0 / (1.0 + improvement) if improvement > -1.0 else math.inf
    text = f"{ratio:.2f}x"
    return text if short else f"{text} (cycles {improvement:+.1%})"


def wilson_interval(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate of k successes out of n (scipy's binomtest)."""
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return float(ci.low), float(ci.high)


def rate(value: float | None, n: int | None) -> str:
    """A share measured on n items: '66.7% (n=3, 95% CI 20.8-93.9%)'."""
    if _missing(value) or not n:
        return NA
    assert value is not None
    lo, hi = wilson_interval(round(value * n), n)
    return f"{value:.1%} (n={n}, 95% CI {lo:.0%}-{hi:.0%})"


def backend_label(backend: str, device: str) -> str:
    """'emulated estimate (cpu-emulator ...)' or 'cupy (NVIDIA H100 ...)'."""
    name = "emulated estimate" if backend == "emulated" else backend
    return f"{name} ({device})" if device else name
