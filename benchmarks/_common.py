"""What several benchmark scripts print (not a script: `python benchmarks/<script>.py` finds it
beside itself)."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    """The CPU model, CPU count and Python version the figures were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
