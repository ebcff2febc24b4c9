"""Measurement: one interface over the GPU harness, the CPU emulator and recorded data.

    from chronos.measure import make_backend
    with make_backend("auto", store="default") as backend:   # cupy if a GPU is visible
        m = backend.measure(spec, ptx)                        # Measurement; never raises for
        print(m.cycles, m.valid, m.error, backend.stats)      # a bad kernel

Backends: `cupy` (SM cycles of an instrumented build in a worker subprocess),
`emulated` (ptxas + CPU emulator + cost model: an estimate), `replay` (recorded data),
`auto`. Every backend subclasses `BackendBase` (registry.py) and reads and writes through the SQLite
measurement store (store.py).
See docs/measurement.md.
"""

from chronos.measure.factory import make_backend
from chronos.measure.measurement import Measurement, summarize
from chronos.measure.registry import (
    Backend,
    BackendBase,
    backend_names,
    create_backend,
    register_backend,
)
from chronos.ptx import ptx_sha256

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
