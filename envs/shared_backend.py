"""One measurement backend shared by many env processes (e.g. an AsyncVectorEnv).

Parallel envs must not time kernels on one GPU at the same time: concurrent launches
disturb each other's cycle counts, and a kernel that poisons the CUDA context would take
every env down. `SharedMeasurementService` runs a single backend in a server process
(multiprocessing's manager) and serialises every `measure()` through one lock; the picklable
`SharedBackendClient` it hands out is what the envs get as `backend=`. The measurement store
lives in the server too, so a state measured by one env is free for all of them.

    with SharedMeasurementService("emulated", store="runs/m.sqlite") as service:
        client = service.client()
        vec = gymnasium.make_vec("Chronos/PtxTransform-v0", num_envs=4,
                                 vectorization_mode="async",
                                 vector_kwargs={"context": "fork"},
                                 kernels=ids, backend=client)
"""

from __future__ import annotations

import threading
from multiprocessing.managers import BaseManager
from typing import Any


class _SerialBackend:
    """Server-side: the real backend behind a lock (the manager serves each client in a thread)."""

    def __init__(self, name: str, store: Any, options: dict[str, Any]) -> None:
        from chronos.measure import make_backend

        self._backend = make_backend(name, store=store, **options)
        self._lock = threading.Lock()
        self.calls = 0

    def measure(self, spec: Any, ptx: str) -> Any:
        with self._lock:
            self.calls += 1
            return self._backend.measure(spec, ptx)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {**dict(self._backend.stats), "calls": self.calls}

    def device(self) -> str:
        return str(getattr(self._backend, "device", ""))

    def close(self) -> None:
        with self._lock:
            self._backend.close()


class _Manager(BaseManager):
    pass


_Manager.register("SerialBackend", _SerialBackend)


class SharedBackendClient:
    """The backend the envs see: forwards `measure` to the service; picklable; `close` is a no-op
    (the service owns the backend)."""

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy

    def measure(self, spec: Any, ptx: str) -> Any:
        return self._proxy.measure(spec, ptx)

    def measure_many(self, spec: Any, ptxs: list[str]) -> list[Any]:
        return [self.measure(spec, p) for p in ptxs]

    @property
    def stats(self) -> dict[str, Any]:
        return self._proxy.stats()

    @property
    def device(self) -> str:
        return self._proxy.device()

    def close(self) -> None:
        """Nothing to release per env; stop the service with `SharedMeasurementService.close`."""


class SharedMeasurementService:
    """Start a server process holding one backend; `client()` gives envs access to it."""

    def __init__(
        self, backend: str = "emulated", store: Any = None, **backend_options: Any
    ) -> None:
        self._manager = _Manager()
        self._manager.start()
        self._backend = self._manager.SerialBackend(backend, store, backend_options)  # type: ignore[attr-defined]
        self._closed = False

    def client(self) -> SharedBackendClient:
        return SharedBackendClient(self._backend)

    @property
    def stats(self) -> dict[str, Any]:
        return self._backend.stats()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._backend.close()
        finally:
            self._manager.shutdown()

    def __enter__(self) -> SharedMeasurementService:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
