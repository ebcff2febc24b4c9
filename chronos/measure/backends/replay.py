"""The `replay` backend: recorded measurements served without a GPU (Kernel Tuner's simulation
mode).

A store file recorded on a GPU machine lets a CPU-only user train and evaluate on real
hardware numbers. By default it serves the newest valid-or-invalid `cupy` record of the exact
PTX text and kernel, on any device (`device=` pins one). A PTX text that was never recorded is
a `ReplayMiss` naming the kernel and hash, or, with `fallback="emulated"`, an emulated
estimate (labelled as such, kept in memory, never written into the recorded file).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from chronos.caching import BoundedCache
from chronos.measure.backends.registry import BackendBase
from chronos.measure.measurement import Measurement
from chronos.measure.store import MeasurementStore, default_store_path
from chronos.ptx import ptx_sha256
from kernels.spec import spec_fingerprint

BACKEND = "replay"


class ReplayMiss(LookupError):
    """No recorded measurement for this PTX of this kernel."""

    def __init__(self, kernel_id: str, sha: str, source: str, recorded: dict[str, int]):
        self.kernel_id, self.ptx_sha256 = kernel_id, sha
        super().__init__(
            f"replay miss: no recorded {source} measurement of kernel {kernel_id!r} with PTX "
            f"sha256 {sha} under this spec's fingerprint (a changed reference or contract "
            f"misses); the store holds {recorded or 'nothing'}. Record it on a GPU "
            "(backend 'cupy' with the same store) or pass fallback='emulated'."
        )

    def __str__(self) -> str:
        return str(self.args[0])


class ReplayBackend(BackendBase):
    """Serve records of `source` backend (default "cupy"; None: any) from `store`."""

    name = BACKEND
    harness_version = "replay"

    def __init__(
        self,
        store: str | os.PathLike[str] | MeasurementStore | None = None,
        source: str | None = "cupy",
        device: str | None = None,
        harness_version: str | None = None,
        fallback: str | None = None,
        fallback_options: dict[str, Any] | None = None,
    ):
        if isinstance(store, MeasurementStore):
            self.store, self._owns = store, False
        else:
            path = default_store_path() if store is None else store
            self.store, self._owns = MeasurementStore(path, readonly=True), True
        if fallback not in (None, "emulated"):
            raise ValueError(f"replay fallback must be None or 'emulated', got {fallback!r}")
        self.source = source
        self.recorded_device = device
        self.recorded_harness = harness_version
        self.fallback_name = fallback
        self._fallback_options = dict(fallback_options or {})
        self._fallback: Any = None
        self._fallback_cache: BoundedCache[Measurement] = BoundedCache(4096, name="replay.fallback")
        self._lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "fallbacks": 0}

    def __repr__(self) -> str:
        return f"ReplayBackend({self.store!r}, source={self.source!r})"

    @property
    def device(self) -> str:
        return self.recorded_device or f"replay of {self.store.path}"

    @property
    def stats(self) -> dict[str, Any]:
        with self._lock:
            s: dict[str, Any] = dict(self._stats)
        total = s["hits"] + s["misses"]
        s["hit_rate"] = s["hits"] / total if total else 0.0
        return s

    def cache_config(self) -> dict[str, Any]:
        return {"source": self.source, "device": self.recorded_device}

    def measure(self, spec: Any, ptx: str) -> Measurement:
        sha = ptx_sha256(ptx)
        m = self.store.find(
            sha,
            spec.id,
            self.source,
            self.recorded_device,
            self.recorded_harness,
            spec_fingerprint=spec_fingerprint(spec),
        )
        if m is not None:
            with self._lock:
                self._stats["hits"] += 1
            return m.replace(extra={**m.extra, "replayed_from": str(self.store.path)})
        with self._lock:
            self._stats["misses"] += 1
        if self.fallback_name is None:
            what = " / ".join(x for x in (self.source, self.recorded_device) if x) or "any"
            raise ReplayMiss(spec.id, sha, what, self.store.summary())
        key = (spec_fingerprint(spec), sha)
        return self._fallback_cache.get(key, lambda: self._measure_fallback(spec, ptx))

    def _measure_fallback(self, spec: Any, ptx: str) -> Measurement:
        with self._lock:
            if self._fallback is None:
                from chronos.measure.backends.registry import create_backend

                self._fallback = create_backend(self.fallback_name, **self._fallback_options)
            self._stats["fallbacks"] += 1
        fm = self._fallback.measure(spec, ptx)
        return fm.replace(
            extra={**fm.extra, "replay_miss": True, "replay_fallback": self.fallback_name}
        )

    def close(self) -> None:
        if self._owns:
            self.store.close()
        close = getattr(self._fallback, "close", None)
        if callable(close):
            close()
