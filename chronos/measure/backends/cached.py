"""The store wrapper every backend is used through: read-through, write-through, hit counting.

Training revisits states constantly (GRPO groups share prefixes, greedy re-measures parents),
so each (PTX, kernel spec fingerprint, backend, device, harness, ptxas version, config) is
measured once per store and then served from SQLite. The spec fingerprint keeps a verdict
from outliving the reference and contract it was reached under. `stats` reports hits and
misses for the training log's cache hit rate.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from chronos.measure.backends.registry import BackendBase
from chronos.measure.measurement import Measurement
from chronos.measure.store import MeasurementStore
from chronos.ptx import ptx_sha256
from kernels.spec import spec_fingerprint


def backend_harness_version(backend: Any) -> str:
    """The harness (or cost-model) version a backend stamps on its measurements."""
    return str(getattr(backend, "harness_version", None) or "unknown")


def backend_config(backend: Any) -> dict[str, Any]:
    """Options that change a backend's figures (`BackendBase.cache_config`)."""
    fn = getattr(backend, "cache_config", None)
    return dict(fn()) if callable(fn) else {}


def config_key(config: dict[str, Any]) -> str:
    """A short, stable fingerprint of a backend configuration."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CachedBackend(BackendBase):
    """`inner` behind `store`. Invalid results are cached too (a ptxas rejection or a wrong
    output repeats exactly), except worker faults (`extra["fault"]`: a timeout, crash or
    unreadable reply says nothing lasting about the kernel) and results marked
    `extra["transient"]`; with `cache_invalid=False` only valid ones are."""

    def __init__(
        self,
        inner: Any,
        store: MeasurementStore,
        *,
        owns_store: bool = True,
        cache_invalid: bool = True,
    ):
        self.inner = inner
        self.store = store
        self.owns_store = owns_store
        self.cache_invalid = cache_invalid
        self.name = str(inner.name)
        self.harness_version = backend_harness_version(inner)
        self._config: str | None = None
        self._lock = threading.Lock()
        self._stats = {"hits": 0, "misses": 0, "writes": 0}
        self._times = {"lookup_s": 0.0, "measure_s": 0.0}

    def __repr__(self) -> str:
        return f"CachedBackend({self.inner!r}, store={self.store!r})"

    @property
    def device(self) -> str:
        return str(self.inner.device)

    @property
    def config(self) -> str:
        """The backend options' part of the store key (the spec fingerprint is another part)."""
        if self._config is None:
            self._config = config_key(backend_config(self.inner))
        return self._config

    def cache_config(self) -> dict[str, Any]:
        return backend_config(self.inner)

    @property
    def stats(self) -> dict[str, Any]:
        """Hits, misses, writes, hit rate and time spent looking up and measuring."""
        with self._lock:
            s: dict[str, Any] = dict(self._stats)
            s.update(self._times)
        total = s["hits"] + s["misses"]
        s["hit_rate"] = s["hits"] / total if total else 0.0
        inner = getattr(self.inner, "faults", None)
        if isinstance(inner, dict):
            s["faults"] = dict(inner)
        return s

    def _ptxas_version(self, ptx: str) -> str:
        """The ptxas that would assemble `ptx` (part of the key: another ptxas, other SASS);
        the backend's own answer when it picks one (the cupy backend: per driver)."""
        own = getattr(self.inner, "ptxas_version_for", None)
        if callable(own):
            return str(own(ptx))
        from chronos.assemble import ptxas_version_for

        return ptxas_version_for(ptx)

    def lookup(self, spec: Any, ptx: str) -> Measurement | None:
        """The stored measurement of this PTX, or None (does not count as a hit or miss)."""
        return self.store.get(
            ptx_sha256(ptx),
            spec.id,
            self.name,
            self.device,
            self.harness_version,
            self.config,
            spec_fingerprint(spec),
            self._ptxas_version(ptx),
        )

    def _cacheable(self, m: Measurement) -> bool:
        if m.extra.get("transient") or m.extra.get("fault"):
            return False
        return m.valid or self.cache_invalid

    def _save(self, spec: Any, ptx: str, m: Measurement) -> Measurement:
        """Store `m` under the key `lookup` will ask for; returns it stamped with that key's
        spec fingerprint and ptxas version, so that a hit equals the fresh result."""
        fp, pv = spec_fingerprint(spec), self._ptxas_version(ptx)
        m = m.replace(spec_fingerprint=fp, ptxas_version=m.ptxas_version or pv)
        if self._cacheable(m):
            self.store.put(
                m,
                self.config,
                device=self.device,
                harness_version=self.harness_version,
                spec_fingerprint=fp,
                ptxas_version=pv,
            )
            with self._lock:
                self._stats["writes"] += 1
        return m

    def measure(self, spec: Any, ptx: str) -> Measurement:
        return self.measure_many(spec, [ptx])[0]

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Measurement]:
        """Serve hits from the store; measure the distinct misses in one batch."""
        t0 = time.perf_counter()
        out: list[Measurement | None] = [self.lookup(spec, p) for p in ptxs]
        t1 = time.perf_counter()
        todo: dict[str, str] = {}
        for p, m in zip(ptxs, out, strict=True):
            if m is None:
                todo.setdefault(ptx_sha256(p), p)
        fresh: dict[str, Measurement] = {}
        if todo:
            batch = getattr(self.inner, "measure_many", None)
            texts = list(todo.values())
            results = (
                batch(spec, texts)
                if callable(batch)
                else [self.inner.measure(spec, p) for p in texts]
            )
            for (sha, text), m in zip(todo.items(), results, strict=True):
                fresh[sha] = self._save(spec, text, m)
        t2 = time.perf_counter()
        hits = sum(m is not None for m in out)
        with self._lock:
            self._stats["hits"] += hits
            self._stats["misses"] += len(ptxs) - hits
            self._times["lookup_s"] += t1 - t0
            self._times["measure_s"] += t2 - t1
        return [
            m if m is not None else fresh[ptx_sha256(p)] for p, m in zip(ptxs, out, strict=True)
        ]

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if callable(close):
            close()
        if self.owns_store:
            self.store.close()
