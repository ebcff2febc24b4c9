"""`make_backend`: a backend by name, behind the measurement store.

`store` selects the cache: a path (or a MeasurementStore) persists measurements across runs;
`"default"` is $CHRONOS_STORE or ~/.cache/chronos/measurements.sqlite; `None` (the default)
is an in-memory store that still makes repeated states free within the process; `False`
disables caching (every call measures; stats count misses). For `replay`, `store` is the
recorded file to serve from (default: the default path) and nothing is written to it.
"""

from __future__ import annotations

import os
from typing import Any

from chronos.measure.backends.cached import CachedBackend
from chronos.measure.backends.registry import create_backend
from chronos.measure.store import MEMORY, MeasurementStore, default_store_path

StoreArg = str | os.PathLike[str] | MeasurementStore | None | bool


def open_store(store: StoreArg) -> tuple[MeasurementStore, bool]:
    """(store, owned): resolve a `store` argument (see the module docstring)."""
    if isinstance(store, MeasurementStore):
        return store, False
    if store is None or store is False:
        return MeasurementStore(MEMORY), True
    if store is True or store == "default":
        return MeasurementStore(default_store_path()), True
    return MeasurementStore(store), True


def make_backend(name: str = "auto", store: StoreArg = None, **opts: Any) -> Any:
    """A ready backend: `measure(spec, ptx)`, `measure_many`, `stats`, `close`, `with`.

    name: "emulated", "cupy", "replay", "auto" (cupy when a GPU is visible, else emulated) or
    any registered name. `opts` go to the backend's constructor.
    """
    reason = None
    if name == "auto":
        from chronos.measure.backends.auto import choose_backend

        name, reason = choose_backend()
    if name == "replay":
        if store is False:
            raise ValueError("the replay backend needs a store to replay from")
        replay_store = default_store_path() if store in (None, True, "default") else store
        backend = create_backend("replay", store=replay_store, **opts)
        backend.auto_reason = reason
        return backend
    inner = create_backend(name, **opts)
    st, owned = open_store(store)
    cached = CachedBackend(inner, st, owns_store=owned, cache_invalid=store is not False)
    if store is False:
        cached.cache_invalid = False
        cached._cacheable = lambda m: False  # type: ignore[method-assign]
    cached.auto_reason = reason
    return cached
