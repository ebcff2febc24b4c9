"""The emulated backend, announcing each measurement with a marker file before it starts.

The Ray fault test imports this in its workers (`modules=[...]`) so that it can kill a worker
exactly while that worker holds a measurement, instead of guessing at timing. The figures
are the emulated backend's own (same name, config and store key).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from chronos.measure.backends.emulated import EmulatedBackend
from chronos.measure.backends.registry import register_backend
from chronos.measure.measurement import Measurement


class MarkedEmulated(EmulatedBackend):
    """Touches `<marker_dir>/<pid>-<uuid>` and waits `delay_s` before measuring."""

    def __init__(self, marker_dir: str, delay_s: float = 0.0, **opts: Any) -> None:
        super().__init__(**opts)
        self.marker_dir = Path(marker_dir)
        self.delay_s = float(delay_s)

    def measure(self, spec: Any, ptx: str) -> Measurement:
        (self.marker_dir / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
        time.sleep(self.delay_s)
        return super().measure(spec, ptx)


register_backend("emulated_marked", MarkedEmulated)
