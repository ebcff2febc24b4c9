"""The one result type every measurement backend returns.

A training step only needs `cycles` and `valid`, but a number without its provenance cannot
be trusted or replayed elsewhere, so a Measurement also says which backend and device made
it, with which harness, for which PTX (by hash) and kernel, and whether it is an estimate.
It converts to and from plain JSON-able dicts so that the store and the worker pipe can carry
it unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Measurement:
    """One timing of one PTX text of one kernel.

    `cycles` is the median over `n` timed launches (for `cupy` the busiest SM's %clock64 span,
    first warp in to last warp out; a model estimate for `emulated`), with `cycles_q1` /
    `cycles_q3` its interquartile range. `time_ns` is the median CUDA-event time of the
    uninstrumented build (or the estimate converted at `clock_mhz`). `regs`/`spills` are
    ptxas's figures for the build that was measured (spills in bytes, stores plus loads).
    `spec_fingerprint` is the `KernelSpec.fingerprint` the verdict was reached under and
    `ptxas_version` the ptxas that assembled the PTX ("" in records older than these fields).
    An invalid measurement has `valid=False`, `error` set and no cycles. `extra` holds
    backend-specific detail (phase times, the instrumented build's registers, throttled
    samples, ...) and must be JSON-able.
    """

    cycles: float | None
    cycles_q1: float | None
    cycles_q3: float | None
    time_ns: float | None
    n: int
    valid: bool
    error: str | None
    backend: str
    device: str
    clock_mhz: float | None
    regs: int | None
    spills: int | None
    harness_version: str
    estimate: bool = False
    ptx_sha256: str = ""
    kernel_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    spec_fingerprint: str = ""
    ptxas_version: str = ""

    def __post_init__(self) -> None:
        # Frozen: normalise once so that equality survives a JSON/SQLite round trip.
        set_ = object.__setattr__
        set_(self, "harness_version", str(self.harness_version))
        set_(self, "extra", jsonable(dict(self.extra or {})))
        for name in ("cycles", "cycles_q1", "cycles_q3", "time_ns", "clock_mhz"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, float(value))
        for name in ("regs", "spills"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, int(value))
        set_(self, "n", int(self.n))
        set_(self, "valid", bool(self.valid))
        set_(self, "estimate", bool(self.estimate))

    @property
    def iqr(self) -> float | None:
        """cycles_q3 - cycles_q1: the spread the reward has to beat."""
        if self.cycles_q1 is None or self.cycles_q3 is None:
            return None
        return self.cycles_q3 - self.cycles_q1

    @classmethod
    def invalid(
        cls,
        error: str,
        *,
        backend: str,
        device: str,
        harness_version: str,
        kernel_id: str = "",
        ptx_sha256: str = "",
        estimate: bool = False,
        clock_mhz: float | None = None,
        regs: int | None = None,
        spills: int | None = None,
        extra: dict[str, Any] | None = None,
        spec_fingerprint: str = "",
        ptxas_version: str = "",
    ) -> Measurement:
        """A failed step: no figures, `valid=False`, and the reason in `error`."""
        return cls(
            cycles=None,
            cycles_q1=None,
            cycles_q3=None,
            time_ns=None,
            n=0,
            valid=False,
            error=error,
            backend=backend,
            device=device,
            clock_mhz=clock_mhz,
            regs=regs,
            spills=spills,
            harness_version=harness_version,
            estimate=estimate,
            ptx_sha256=ptx_sha256,
            kernel_id=kernel_id,
            extra=dict(extra or {}),
            spec_fingerprint=spec_fingerprint,
            ptxas_version=ptxas_version,
        )

    def replace(self, **changes: Any) -> Measurement:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """Inverse of `to_dict`; unknown keys are an error (a schema drift, not data)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown Measurement fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=True)

    @classmethod
    def from_json(cls, text: str) -> Measurement:
        return cls.from_dict(json.loads(text))


def jsonable(value: Any) -> Any:
    """NumPy scalars/arrays and tuples -> plain Python, so that `extra` survives JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def summarize(samples: np.ndarray) -> tuple[float, float, float]:
    """(median, q1, q3) of a sample, the statistics every backend reports."""
    if samples.size == 0:
        return math.nan, math.nan, math.nan
    q1, med, q3 = np.percentile(samples.astype(np.float64), [25, 50, 75])
    return float(med), float(q1), float(q3)
