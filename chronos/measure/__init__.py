"""Measurement: one interface over the GPU harness, the CPU emulator and recorded data.

    from chronos.measure import make_backend
    with make_backend("auto", store="default") as backend:   # cupy if a GPU is visible
        m = backend.measure(spec, ptx)                        # Measurement; never raises for
        print(m.cycles, m.valid, m.error, backend.stats)      # a bad kernel

Backends: `cupy` (SM cycles of an instrumented build in a worker subprocess),
`emulated` (ptxas + CPU emulator + cost model: an estimate), `replay` (recorded data),
`auto`. Every backend reads and writes through a SQLite store (chronos.stores.measurements).
See docs/measurement.md.
"""

from chronos.measure.measurement import Measurement, ptx_sha256, summarize
from chronos.measure.registry import (
    Backend,
    BackendBase,
    backend_names,
    create_backend,
    register_backend,
)


def make_backend(name: str = "auto", store=None, **opts):  # type: ignore[no-untyped-def]
    """See chronos.measure.factory.make_backend (imported lazily: it opens SQLite)."""
    from chronos.measure.factory import make_backend as _make

    return _make(name, store, **opts)


__all__ = [
    "Backend",
    "BackendBase",
    "Measurement",
    "backend_names",
    "create_backend",
    "make_backend",
    "ptx_sha256",
    "register_backend",
    "summarize",
]
