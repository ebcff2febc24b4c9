"""The `ray` backend: a pool of measurement actors on a Ray cluster behind one `measure_many`.

The driver keeps the store: `make_backend("ray", store=..., backend="cupy", workers=8)` puts
the ordinary CachedBackend in front of this pool, so workers only measure and return
Measurements and the driver alone reads and writes SQLite (one source of truth, no merge).
Each actor builds the named backend (`cupy` with `num_gpus=1`, `emulated` on a CPU) and does
the whole measurement there, ptxas included, so N actors run N ptxas beside N GPUs. The pool
takes its identity (name, device, harness version, cache config) from its workers, so its
store keys equal those of the same backend run locally, and a store filled on one machine
serves a cluster run and back.

A worker whose process dies (node lost, OOM, killed) costs only the measurements it had in
flight (its current chunk): they are resubmitted to another worker, a replacement actor is
started, and the call returns as if nothing had happened. A PTX whose measurement kills
`max_attempts` workers in a row comes back as an invalid Measurement marked `transient`
(never stored). See docs/scale-out.md.
"""

from __future__ import annotations

import importlib
import os
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chronos.measure.backends.cached import backend_config, backend_harness_version
from chronos.measure.backends.registry import BackendBase, create_backend
from chronos.measure.measurement import Measurement

_ROOT = str(Path(__file__).resolve().parents[2])
"""The checkout holding chronos/, envs/, agents/, kernels/ (on a local cluster's PYTHONPATH)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the ray backend (cluster=ray) needs Ray: pip install 'chronos[ray]'"
        ) from exc
    return ray


class MeasureWorker:
    """One actor: a bare backend by name, measuring one PTX per call."""

    def __init__(self, name: str, options: dict[str, Any], modules: Sequence[str]) -> None:
        for m in modules:
            importlib.import_module(m)
        self.backend = create_backend(name, **options)

    def info(self) -> dict[str, Any]:
        b = self.backend
        return {
            "name": str(b.name),
            "device": str(b.device),
            "harness_version": backend_harness_version(b),
            "config": backend_config(b),
            "pid": os.getpid(),
        }

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Measurement]:
        batch = getattr(self.backend, "measure_many", None)
        if callable(batch):
            return list(batch(spec, list(ptxs)))
        return [self.backend.measure(spec, p) for p in ptxs]


class RayPoolBackend(BackendBase):
    """`workers` actors of `backend` on the Ray cluster at `address`.

    address: "local" starts a private local cluster (shut down on close), "auto" joins the
    cluster this node belongs to, "ray://host:10001" a remote one; an already initialised Ray
    is used as it is. backend: the measuring backend ("emulated", "cupy", "auto" = cupy when
    the cluster has GPUs, or a name registered by one of `modules`, which every actor imports
    first). gpus_per_worker: null = 1 for cupy, 0 otherwise. runtime_env goes to `ray.init`
    (e.g. a working_dir for nodes without chronos installed). chunk: at most this many PTX
    texts per task, fewer when the batch is small, so that every worker gets work; within a
    chunk the cupy backend assembles the next texts while the GPU times the current one.
    """

    def __init__(
        self,
        backend: str = "emulated",
        options: dict[str, Any] | None = None,
        workers: int = 2,
        address: str = "local",
        gpus_per_worker: float | None = None,
        cpus_per_worker: float = 1.0,
        max_attempts: int = 3,
        chunk: int = 4,
        modules: Sequence[str] = (),
        runtime_env: dict[str, Any] | None = None,
        start_timeout_s: float = 300.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"cluster.workers must be at least 1, got {workers}")
        if chunk < 1:
            raise ValueError(f"cluster.chunk must be at least 1, got {chunk}")
        if max_attempts < 1:
            raise ValueError(f"cluster.max_attempts must be at least 1, got {max_attempts}")
        if backend in ("ray", "replay"):
            raise ValueError(
                f"backend {backend!r} cannot run on Ray workers (replay is served by the store)"
            )
        ray = _import_ray()
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            env = dict(runtime_env or {})
            if address == "local":
                env_vars = dict(env.get("env_vars", {}))
                path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
                env_vars.setdefault("PYTHONPATH", path)
                env["env_vars"] = env_vars
                ray.init(
                    num_cpus=max(int(workers * cpus_per_worker + 0.999), 1),
                    include_dashboard=False,
                    runtime_env=env,
                    log_to_driver=False,
                )
            else:
                ray.init(address=address, runtime_env=env or None, log_to_driver=False)
            self._owns_ray = True
        if backend == "auto":
            backend = "cupy" if ray.cluster_resources().get("GPU", 0) > 0 else "emulated"
        if gpus_per_worker is None:
            gpus_per_worker = 1.0 if backend == "cupy" else 0.0
        self._actor_cls = ray.remote(
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker, max_restarts=0, max_task_retries=0
        )(MeasureWorker)
        self._args = (backend, dict(options or {}), tuple(modules))
        self.max_attempts = int(max_attempts)
        self.chunk = int(chunk)
        self.start_timeout_s = float(start_timeout_s)
        self.faults = {"worker_deaths": 0, "retried": 0, "replaced": 0, "gave_up": 0}
        self._handles = [self._actor_cls.remote(*self._args) for _ in range(workers)]
        try:
            infos = ray.get([h.info.remote() for h in self._handles], timeout=self.start_timeout_s)
            keys = ("name", "device", "harness_version", "config")
            self.identity = {k: infos[0][k] for k in keys}
            for info in infos[1:]:
                self._check(info)
        except Exception as exc:
            self.close()
            raise RuntimeError(
                f"the Ray measurement workers ({backend}) did not start: {exc}"
            ) from exc
        self.name = self.identity["name"]
        self.harness_version = self.identity["harness_version"]
        self.pids = [int(i["pid"]) for i in infos]
        """Process ids of the first workers (the fault test kills one)."""

    def __repr__(self) -> str:
        return f"RayPoolBackend({self.name!r}, workers={len(self._handles)})"

    @property
    def device(self) -> str:
        return str(self.identity["device"])

    @property
    def workers(self) -> int:
        return len(self._handles)

    def cache_config(self) -> dict[str, Any]:
        return dict(self.identity["config"])

    def _check(self, info: dict[str, Any]) -> None:
        """Every worker must measure as the first one did: one store key for the pool."""
        for key, want in self.identity.items():
            if info[key] != want:
                raise RuntimeError(
                    f"Ray measurement workers disagree on {key}: {want!r} vs {info[key]!r} "
                    "(a pool must be one kind of device; run one pool per GPU model)"
                )

    def measure(self, spec: Any, ptx: str) -> Measurement:
        return self.measure_many(spec, [ptx])[0]

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Measurement]:
        """Measure `ptxs` on the pool in chunks, results in input order."""
        ray = self._ray
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        spec_ref = ray.put(spec)
        queue = deque(range(len(ptxs)))
        attempts = [0] * len(ptxs)
        out: list[Measurement | None] = [None] * len(ptxs)
        idle = list(self._handles)
        inflight: dict[Any, tuple[Any, list[int]]] = {}
        while queue or inflight:
            while queue and idle:
                k = min(self.chunk, -(-len(queue) // len(self._handles)))
                h, idx = idle.pop(0), [queue.popleft() for _ in range(k)]
                for i in idx:
                    attempts[i] += 1
                ref = h.measure_many.remote(spec_ref, [ptxs[i] for i in idx])
                inflight[ref] = (h, idx)
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.start_timeout_s)
            if not done:
                raise RuntimeError(
                    f"no Ray measurement finished in {self.start_timeout_s:.0f} s: are the "
                    "workers waiting for resources? (see `ray status`)"
                )
            h, idx = inflight.pop(done[0])
            try:
                ms = ray.get(done[0])
            except (RayActorError, ActorUnavailableError) as exc:
                # The worker is gone: replace it (its calls wait until it is up) and give its
                # PTX to whichever workers are free next. Every death uses up an attempt of
                # each PTX it held, so a pool that cannot start workers fails in finite time.
                self.faults["worker_deaths"] += 1
                self._lost(h)
                new = self._actor_cls.remote(*self._args)
                self._handles.append(new)
                idle.append(new)
                self.faults["replaced"] += 1
                for i in reversed(idx):
                    if attempts[i] < self.max_attempts:
                        self.faults["retried"] += 1
                        queue.appendleft(i)
                    else:
                        self.faults["gave_up"] += 1
                        out[i] = self._gave_up(spec, ptxs[i], exc)
                continue
            except RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            for i, m in zip(idx, ms, strict=True):
                if m.device != self.device:
                    raise RuntimeError(
                        f"a Ray measurement worker measured on {m.device!r}, the pool on "
                        f"{self.device!r}: a pool must be one kind of device"
                    )
                out[i] = m
            idle.append(h)
        return [m for m in out if m is not None]

    def _lost(self, handle: Any) -> None:
        if handle in self._handles:
            self._handles.remove(handle)
        try:
            self._ray.kill(handle)
        except Exception:  # noqa: BLE001 - it is already gone
            pass

    def _gave_up(self, spec: Any, ptx: str, exc: BaseException) -> Measurement:
        from chronos.ptx import ptx_sha256

        return Measurement.invalid(
            f"{self.max_attempts} Ray measurement workers died measuring this PTX: {exc}",
            backend=self.name,
            device=self.device,
            harness_version=self.harness_version,
            kernel_id=str(spec.id),
            ptx_sha256=ptx_sha256(ptx),
            extra={"transient": True},
        )

    def close(self) -> None:
        for h in self._handles:
            self._lost(h)
        self._handles = []
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False
