"""SQLite stores: measurements (a cache keyed by PTX hash) and trajectories (an append-only log).

Submodules are imported on first use so that importing one store never pulls in the other.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MeasurementStore": "chronos.stores.measurements",
    "StoreError": "chronos.stores.measurements",
    "default_store_path": "chronos.stores.measurements",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'chronos.stores' has no attribute {name!r}")
