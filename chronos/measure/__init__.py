"""Measurement: one interface over the GPU harness, the CPU emulator and recorded data.

    from chronos.measure import make_backend
    with make_backend("auto", store="default") as backend:   # cupy if a GPU is visible
        m = backend.measure(spec, ptx)                        # Measurement; never raises for
        print(m.cycles, m.valid, m.error, backend.stats)      # a bad kernel

Backends: `cupy` (SM cycles of an instrumented build in a worker subprocess),
`emulated` (ptxas + CPU emulator + cost model: an estimate), `replay` (recorded data),
`auto`. Every backend subclasses `BackendBase` (backends/registry.py) and reads and writes
through the SQLite measurement store (store.py).

Layout: backends/ (the registry, `make_backend`, the store wrapper and every backend),
harness/ (what runs a kernel on the device: the CuPy harness, its worker subprocess, the
SM-clock instrumentation, driver compatibility and the fake CuPy), costmodel/ (the `emulated`
estimate), store.py, measurement.py (the result type) and launch.py (launch conditions every
path shares).
See docs/measurement.md.
"""

from chronos.measure.backends.factory import make_backend
from chronos.measure.backends.registry import (
    Backend,
    BackendBase,
    backend_names,
    create_backend,
    register_backend,
)
from chronos.measure.measurement import Measurement, summarize
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
