"""The `cupy` backend: real SM-clock cycles from an instrumented build, in a worker process.

The parent (this module) never touches CUDA: it instruments the PTX
(chronos.measure.harness.instrument), assembles both builds with ptxas in a thread pool (ptxas
is a subprocess, so threads run in parallel) while the worker times the previous candidate,
computes the inputs and the NumPy reference once per kernel, and turns the worker's raw samples
into a Measurement: median and IQR of the per-SM cycle spans, median CUDA-event time of the
plain build, the SM clock and the samples that ran throttled. A worker fault (hang, crash,
unreadable reply) is retried once on a fresh worker; if it faults again the result is an
invalid Measurement marked `extra["transient"]`, which the store never keeps. A poisoned
context (a sticky CUDA error: the kernel is wrong) is an invalid result like a wrong output.
Only a worker that cannot start at all (no GPU, no CuPy) raises, since every later step would
fail the same way.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chronos.caching import BoundedCache
from chronos.measure.backends.registry import BackendBase
from chronos.measure.harness.compat import IsaTooNewError, cuda_version_str, lower_for_driver
from chronos.measure.harness.instrument import (
    TIMER_BYTES,
    InstrumentedPtx,
    InstrumentError,
    Spans,
    decode_timers,
    instrument,
)
from chronos.measure.harness.worker import WorkerFault, WorkerProcess
from chronos.measure.launch import L2_MODES
from chronos.measure.measurement import Measurement, summarize
from chronos.ptx import ptx_sha256
from kernels.params import encode_scalar
from kernels.ptx_header import ptx_param_decls
from kernels.spec import spec_fingerprint

log = logging.getLogger("chronos.measure")

BACKEND = "cupy"
HARNESS_SOURCES = (
    "backends/cupy.py",
    "harness/cupy_harness.py",
    "harness/instrument.py",
    "harness/worker.py",
    "launch.py",
)
"""The modules whose code decides a cupy figure (paths under chronos/measure); their hash is the
harness version."""


def harness_version() -> str:
    """ "cupy-" + sha256 of the harness sources: any change to them is a new store key."""
    h = hashlib.sha256()
    measure = Path(__file__).resolve().parent.parent
    for name in HARNESS_SOURCES:
        h.update(name.encode())
        h.update((measure / name).read_bytes())
    return f"cupy-{h.hexdigest()[:12]}"


HARNESS_VERSION = harness_version()
DEFAULT_TIMEOUT_S = 10.0
"""Per measurement: the corpus's slowest kernel takes well under a second at 200 repeats."""
RETRIED_FAULTS = ("timeout", "crash", "garbage")
"""Worker faults retried once on a fresh worker (the first contact may be what failed)."""
DEFAULT_TARGET = "chronos.measure.harness.cupy_harness:make_handler"
MIN_CLOCK_WINDOW_NS = 2000.0
"""%globaltimer ticks coarsely (up to 1 µs on some GPUs): shorter windows give no clock rate."""


class CupyBackendError(RuntimeError):
    """The GPU worker cannot run at all (no device, no CuPy). A driver too old for one module
    is not this: that module's measurement is invalid (`extra["driver_too_old"]`)."""


JIT_PREFIX = "driver-jit-"
"""ptxas_version of a measurement whose SASS the driver's JIT compiled (no ptxas cubin)."""


def launch_arguments(spec: Any, problem: Any, ptx: str) -> list[tuple[Any, ...]]:
    """The worker's argument list: ("buffer", name) or ("scalar", PTX type, bytes), the bytes
    from the one scalar encoder the emulator uses, sized by the PTX's own declaration (an
    nvcc `half` is `.param .align 2 .b8 h[2]`: two bytes, not one)."""
    sizes = {name: n for name, _, n in ptx_param_decls(ptx).get(spec.entry, [])}
    args: list[tuple[Any, ...]] = []
    for p in spec.params:
        if p.kind == "buffer":
            args.append(("buffer", p.buffer))
        else:
            raw = encode_scalar(problem.scalars[p.name], p.ptx_type, sizes.get(p.name), p.name)
            args.append(("scalar", p.ptx_type, raw))
    return args


@dataclass
class Prepared:
    """A PTX text made ready on the CPU: lowered to the ISA it needs, instrumented and
    (optionally) assembled. `ptx` is the text as given (its sha keys the store); `lowered` and
    `instrumented.ptx` are what the driver gets; `toolchain` names what made the SASS."""

    ptx: str
    sha: str
    lowered: str = ""
    toolchain: str = ""
    instrumented: InstrumentedPtx | None = None
    plain_cubin: bytes | None = None
    instr_cubin: bytes | None = None
    regs: int | None = None
    spills: int | None = None
    regs_instrumented: int | None = None
    spills_instrumented: int | None = None
    error: str | None = None
    assemble_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def throttle_stats(
    cycles: np.ndarray, ns: np.ndarray, clock_mhz_max: float | None, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample SM clock (MHz, NaN where the window is too short) and the throttled mask.

    nvbench-style: Δ%clock64 / Δ%globaltimer of the same warp is the clock the launch ran at;
    a sample below `threshold` x the device's maximum clock ran throttled.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mhz = np.where(ns >= MIN_CLOCK_WINDOW_NS, cycles / ns * 1e3, np.nan)
    if not clock_mhz_max:
        return mhz, np.zeros(cycles.shape, bool)
    throttled = np.nan_to_num(mhz, nan=np.inf) < threshold * clock_mhz_max
    return mhz, throttled


def _instrumented_spills_more(spec: Any, prep: Prepared) -> bool:
    """Whether the instrumented build spills more than the plain one (logged: its cycles then
    overstate the plain build's)."""
    more_spills = (prep.spills_instrumented or 0) > (prep.spills or 0)
    if more_spills:
        log.warning(
            "%s %s: the instrumented build spills %s bytes, the plain one %s: its cycles "
            "overstate the plain build's",
            spec.id,
            prep.sha[:12],
            prep.spills_instrumented,
            prep.spills,
        )
    return more_spills


class CupyBackend(BackendBase):
    """Time PTX on the GPU in SM cycles (see the module docstring).

    `repeats`/`warmup`: timed and warm-up launches per build. `exact`: True for bit-exact
    verification, False for the kernel's tolerance, None for either. `timeout_s`: per
    measurement, then the worker is killed. `load`: "cubin" (ptxas here, in parallel) or
    "ptx" (driver JIT in the worker). Every module is first lowered to the PTX ISA it needs
    (chronos.measure.harness.compat); with "cubin" the ptxas is one whose cubins the driver loads
    (`ptxas_for_driver`: a CUDA 12 driver gets the nvidia-cuda-nvcc-cu12 ptxas), and without
    one the lowered PTX goes to the driver JIT (said once in the log and in every
    Measurement's `extra["toolchain"]`; its `ptxas_version` is then "driver-jit-<CUDA>").
    `l2`: "cold" flushes the L2 before every timed launch (inputs come from DRAM, as in a real
    pipeline), "hot" leaves the previous launch's data resident (recorded in the cache key
    and in every Measurement's `extra["l2"]`). `worker_target` replaces the GPU harness
    (tests, `chronos.validate --dry-run`).
    """

    name = BACKEND
    harness_version = HARNESS_VERSION
    config_fields = ("arch", "repeats", "warmup", "seed", "exact", "problem", "load", "l2")

    def __init__(
        self,
        device: int = 0,
        arch: str | None = None,
        repeats: int = 200,
        warmup: int = 20,
        seed: int = 0,
        exact: bool | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        startup_timeout_s: float = 180.0,
        load: str = "cubin",
        assemble_workers: int | None = None,
        throttle_threshold: float = 0.75,
        problem: str = "full",
        l2: str = "cold",
        worker_target: str = DEFAULT_TARGET,
        worker_config: dict[str, Any] | None = None,
    ):
        if load not in ("cubin", "ptx"):
            raise ValueError(f"load must be 'cubin' or 'ptx', got {load!r}")
        if l2 not in L2_MODES:
            raise ValueError(f"l2 must be one of {L2_MODES}, got {l2!r}")
        if repeats < 1 or warmup < 0:
            raise ValueError("repeats must be >= 1 and warmup >= 0")
        self.device_index = device
        self._arch = arch
        self.repeats = repeats
        self.warmup = warmup
        self.seed = seed
        self.exact = exact
        self.timeout_s = timeout_s
        self.load = load
        self.throttle_threshold = throttle_threshold
        self.problem = problem
        self.l2 = l2
        config = {"device": device, **(worker_config or {})}
        self.worker = WorkerProcess(worker_target, config, startup_timeout_s=startup_timeout_s)
        self.pool = ThreadPoolExecutor(max_workers=assemble_workers, thread_name_prefix="ptxas")
        # Host copies of the "full" inputs and references; bounded (they can be large), and
        # recomputed (deterministically, from the seed) if evicted.
        self._data: BoundedCache[tuple[str, dict, dict]] = BoundedCache(32, name="cupy.inputs")
        self._sent: set[tuple[int, str]] = set()
        self.faults: dict[str, int] = {}
        self._gpu_lock = threading.Lock()  # one request at a time on the worker's pipe
        self._toolchains: dict[tuple[int, tuple[int, int] | None], tuple[Path | None, str]] = {}

    def __repr__(self) -> str:
        return f"CupyBackend(device={self.device_index}, repeats={self.repeats})"

    # --- worker -------------------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        """The worker's device info; starts the worker only if it never ran (a restart after
        a fault waits for the next measurement)."""
        if self.worker.info:
            return self.worker.info
        try:
            return self.worker.start()
        except WorkerFault as exc:
            raise CupyBackendError(
                f"the cupy backend cannot start its GPU worker ({exc.message}); is a CUDA GPU "
                "visible and one CuPy package installed (cupy-cuda12x or cupy-cuda13x, matching "
                "the driver)? "
                "Use backend 'emulated' or 'replay' without a GPU."
            ) from None

    @property
    def device(self) -> str:
        return str(self._info().get("device", "unknown GPU"))

    @property
    def arch(self) -> str:
        return self._arch or str(self._info().get("arch", "sm_90"))

    # --- CPU side -----------------------------------------------------------------------------

    @property
    def driver_version(self) -> int:
        """The worker's cudaDriverGetVersion (0 when it did not say)."""
        return int(self._info().get("driver_version") or 0)

    def toolchain(self, isa: tuple[int, int] | None) -> tuple[Path | None, str]:
        """(the ptxas whose cubins this driver loads, or None for the driver JIT; why), for PTX
        of ISA `isa`. Chosen once per ISA; the first choice is logged."""
        driver = self.driver_version
        key = (driver, isa)
        if key not in self._toolchains:
            from chronos.assemble import PtxasNotFoundError, find_ptxas_for, ptxas_version
            from chronos.assemble.ptxas import ptxas_for_driver

            cuda = cuda_version_str(driver) if driver > 0 else "unknown"
            if self.load == "ptx":
                exe, why = None, "load='ptx'"
            elif driver <= 0:
                try:
                    exe = find_ptxas_for(isa)
                    why = f"ptxas {ptxas_version(exe)} ({exe}); driver version unknown"
                except PtxasNotFoundError as exc:
                    exe, why = None, str(exc)
            else:
                exe, why = ptxas_for_driver(driver // 1000, isa)
            if exe is None:
                why = f"driver JIT of CUDA {cuda} ({why})"
            self._toolchains[key] = (exe, why)
            log.info("cupy backend, driver CUDA %s: SASS from %s", cuda, why)
        return self._toolchains[key]

    def ptxas_version_for(self, ptx: str) -> str:
        """What compiles `ptx` to SASS here: the chosen ptxas's version, or "driver-jit-<CUDA>"
        (part of every measurement's provenance and store key)."""
        from chronos.assemble import ptxas_version
        from chronos.ptx.isa import declared_isa

        try:
            lowered, _ = lower_for_driver(ptx, self.driver_version)
        except IsaTooNewError:
            lowered = ptx
        exe, _ = self.toolchain(declared_isa(lowered))
        if exe is None:
            return f"{JIT_PREFIX}{cuda_version_str(self.driver_version)}"
        return ptxas_version(exe)

    def prepare(self, spec: Any, ptx: str) -> Prepared:
        """Lower, instrument and assemble one PTX text (runs in the pool)."""
        import dataclasses
        import time

        from chronos.ptx.isa import declared_isa

        prep = Prepared(ptx, ptx_sha256(ptx))
        driver = self.driver_version
        try:
            prep.lowered, _ = lower_for_driver(ptx, driver)
            instrumented = instrument(ptx, spec.entry)
            instr_ptx, _ = lower_for_driver(instrumented.ptx, driver)
            prep.instrumented = dataclasses.replace(instrumented, ptx=instr_ptx)
        except IsaTooNewError as exc:
            # Not the kernel's fault, nor the run's: one invalid step, never stored.
            prep.error = f"PTX too new for the driver: {exc}"
            prep.extra.update(driver_too_old=True, transient=True)
            return prep
        except (InstrumentError, ValueError) as exc:
            prep.error = f"instrumentation failed: {exc}"
            return prep
        isa = declared_isa(prep.lowered)
        exe, why = self.toolchain(isa)
        prep.toolchain = self.ptxas_version_for(ptx)
        prep.extra["toolchain"] = why
        if isa is not None:
            prep.extra["ptx_isa"] = f"{isa[0]}.{isa[1]}"
        from chronos.assemble import PtxasError, PtxasNotFoundError, assemble

        t0 = time.perf_counter()
        try:
            plain = assemble(prep.lowered, self.arch, ptxas=exe)
            instr = assemble(prep.instrumented.ptx, self.arch, ptxas=exe)
        except PtxasNotFoundError:
            if exe is not None:
                raise
            prep.extra["ptxas"] = "not found: registers from the driver"
            return prep
        except PtxasError as exc:
            prep.error = f"ptxas rejected the PTX: {exc}"
            return prep
        prep.assemble_s = time.perf_counter() - t0
        res = plain.resources.get(spec.entry)
        if res is not None:
            prep.regs = res.registers
            prep.spills = res.spill_stores + res.spill_loads
        ires = instr.resources.get(spec.entry)
        if ires is not None:
            prep.regs_instrumented = ires.registers
            prep.spills_instrumented = ires.spill_stores + ires.spill_loads
        prep.extra["sass_instructions"] = plain.sass_instructions.get(spec.entry)
        if exe is not None:
            prep.plain_cubin, prep.instr_cubin = plain.cubin, instr.cubin
        else:
            prep.extra["registers_from"] = f"ptxas {plain.ptxas_version} (the JIT may differ)"
        return prep

    def _kernel_data(self, spec: Any) -> tuple[str, dict, dict]:
        """(inputs key, inputs, reference) for the timed problem; computed once per kernel."""
        key = (spec.id, spec_fingerprint(spec), self.seed, self.problem)

        def compute() -> tuple[str, dict, dict]:
            problem = spec.problem(self.problem)
            inputs = spec.make_inputs(problem, self.seed)
            ref = spec.reference(problem, inputs)
            h = hashlib.sha256(repr(key).encode())
            for name in sorted(inputs):
                h.update(name.encode())
                h.update(np.ascontiguousarray(inputs[name]).tobytes())
            return h.hexdigest()[:16], dict(inputs), dict(ref)

        return self._data.get(key, compute)

    def _request(self, spec: Any, prep: Prepared) -> dict[str, Any]:
        assert prep.instrumented is not None
        problem = spec.problem(self.problem)
        key, inputs, ref = self._kernel_data(spec)
        sent = (self.worker.generation, key) in self._sent and self.worker.alive
        args = launch_arguments(spec, problem, prep.ptx)
        tol = spec.tolerance
        return {
            "op": "measure",
            "kernel_id": spec.id,
            "entry": spec.entry,
            "plain": {"cubin": prep.plain_cubin, "ptx": prep.lowered},
            "instrumented": {"cubin": prep.instr_cubin, "ptx": prep.instrumented.ptx},
            "timer_symbol": prep.instrumented.timer_symbol,
            "timer_bytes": TIMER_BYTES,
            "l2": self.l2,
            "grid": list(problem.grid),
            "block": list(problem.block),
            "dynamic_shared": int(problem.dynamic_shared_bytes),
            "args": args,
            "outputs": [b.name for b in spec.buffers if b.role in ("out", "inout")],
            "inout": [b.name for b in spec.buffers if b.role == "inout"],
            "inputs_key": key,
            "inputs": None if sent else inputs,
            "reference": None if sent else ref,
            "exact": self.exact,
            "rtol": float(tol.rtol),
            "atol": float(tol.atol),
            "bfloat16": sorted(spec.bfloat16_buffers),
            "repeats": self.repeats,
            "warmup": self.warmup,
        }

    # --- measuring ----------------------------------------------------------------------------

    def measure(self, spec: Any, ptx: str) -> Measurement:
        return self.measure_many(spec, [ptx])[0]

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Measurement]:
        """Measure in order; assembly of later texts overlaps GPU timing of earlier ones."""
        try:
            self.worker.start()  # (re)start now: learn the arch, overlap start with assembly
        except WorkerFault as exc:
            raise CupyBackendError(
                f"the cupy backend cannot start its GPU worker ({exc.message})"
                "; is a CUDA GPU visible and CuPy installed?"
            ) from None
        futures: list[Future[Prepared]] = [self.pool.submit(self.prepare, spec, p) for p in ptxs]
        return [self._run(spec, f.result()) for f in futures]

    def _invalid(self, spec: Any, prep: Prepared, error: str, **extra: Any) -> Measurement:
        return Measurement.invalid(
            error,
            backend=BACKEND,
            device=self.device,
            harness_version=HARNESS_VERSION,
            kernel_id=spec.id,
            ptx_sha256=prep.sha,
            regs=prep.regs,
            spills=prep.spills,
            extra={**prep.extra, **extra},
            spec_fingerprint=spec_fingerprint(spec),
            ptxas_version=prep.toolchain or self.ptxas_version_for(prep.ptx),
        )

    def _exchange(self, spec: Any, prep: Prepared) -> dict[str, Any]:
        """One request (resending evicted inputs once); raises WorkerFault."""
        with self._gpu_lock:
            req = self._request(spec, prep)
            reply = self.worker.request(req, self.timeout_s)
            if reply.get("need_inputs"):  # evicted from the worker's input cache
                self._sent.discard((self.worker.generation, req["inputs_key"]))
                req = self._request(spec, prep)
                reply = self.worker.request(req, self.timeout_s)
            if reply.get("ok") and not reply.get("fatal"):
                self._sent.add((self.worker.generation, req["inputs_key"]))
        return reply

    def _count(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def _run(self, spec: Any, prep: Prepared) -> Measurement:
        """One measurement; a worker fault is retried once on a fresh worker."""
        if prep.error is not None:
            return self._invalid(spec, prep, prep.error)
        first: WorkerFault | None = None
        for attempt in (1, 2):
            try:
                m = self._attempt(spec, prep)
            except WorkerFault as exc:
                self._count(exc.kind)
                log.warning(
                    "cupy worker fault on %s %s (attempt %d): %s",
                    spec.id,
                    prep.sha[:12],
                    attempt,
                    exc,
                )
                if exc.kind == "start":
                    raise CupyBackendError(
                        f"the GPU worker cannot restart: {exc.message}"
                    ) from None
                if exc.kind not in RETRIED_FAULTS or attempt == 2:
                    retried = {"first_fault": first.kind} if first is not None else {}
                    return self._invalid(
                        spec, prep, str(exc), fault=exc.kind, transient=True, **retried
                    )
                first = exc
                self.worker.kill()  # the retry runs on a fresh worker
                continue
            if first is not None:
                m = m.replace(extra={**m.extra, "retried_after": first.kind})
            return m
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, spec: Any, prep: Prepared) -> Measurement:
        """One request's Measurement; WorkerFault for a hang, crash or unreadable samples."""
        reply = self._exchange(spec, prep)
        if reply.get("fatal"):
            self._count("fatal")
        if not reply.get("ok"):
            kind = "fatal" if reply.get("fatal") else "error"
            return self._invalid(
                spec, prep, f"worker error: {reply.get('error')}", fault=kind, transient=True
            )
        if not reply.get("valid"):
            extra = {k: reply[k] for k in ("verify", "phases") if k in reply}
            if reply.get("fatal"):
                extra["context"] = "poisoned (sticky CUDA error); worker restarted"
            return self._invalid(spec, prep, str(reply.get("error")), **extra)
        try:
            return self._from_samples(spec, prep, reply)
        except (KeyError, TypeError, ValueError) as exc:
            self.worker.kill()
            raise WorkerFault("garbage", f"malformed samples ({exc})") from None

    def _from_samples(self, spec: Any, prep: Prepared, reply: dict[str, Any]) -> Measurement:
        spans, event_ns = self._checked_samples(reply)
        cycles = spans.cycles
        mhz, throttled = throttle_stats(
            cycles, spans.ns, reply.get("clock_mhz_max"), self.throttle_threshold
        )
        enough = max(1, cycles.size // 2)
        kept = cycles[~throttled] if (~throttled).sum() >= enough else cycles
        med, q1, q3 = summarize(kept)
        good_mhz = mhz[np.isfinite(mhz)]
        # Measured, or unknown: the nominal maximum is not what the launch ran at.
        clock_mhz = float(np.median(good_mhz)) if good_mhz.size else None
        time_ns = float(np.median(event_ns)) if event_ns.size else None
        more_spills = _instrumented_spills_more(spec, prep)
        extra = self._samples_extra(prep, reply, spans, event_ns, throttled, more_spills)
        if not math.isfinite(med):
            raise ValueError("no samples")
        return Measurement(
            cycles=med,
            cycles_q1=q1,
            cycles_q3=q3,
            time_ns=time_ns,
            n=int(kept.size),
            valid=True,
            error=None,
            backend=BACKEND,
            device=self.device,
            clock_mhz=clock_mhz,
            regs=prep.regs if prep.regs is not None else reply.get("regs_plain"),
            spills=prep.spills,
            harness_version=HARNESS_VERSION,
            estimate=False,
            ptx_sha256=prep.sha,
            kernel_id=spec.id,
            extra=extra,
            spec_fingerprint=spec_fingerprint(spec),
            ptxas_version=prep.toolchain or self.ptxas_version_for(prep.ptx),
        )

    def _checked_samples(self, reply: dict[str, Any]) -> tuple[Spans, np.ndarray]:
        """The reply's per-SM spans and event times; ValueError for samples that cannot be."""
        spans = decode_timers(np.asarray(reply["timers"]))
        cycles = spans.cycles
        event_ns = np.asarray(reply["event_ns"], np.float64)
        if cycles.size != self.repeats:
            raise ValueError(f"{cycles.size} timer samples for {self.repeats} repeats")
        if not np.all(np.isfinite(cycles)) or np.any(cycles <= 0):
            raise ValueError("non-positive or non-finite cycle samples")
        return spans, event_ns

    def _samples_extra(
        self,
        prep: Prepared,
        reply: dict[str, Any],
        spans: Spans,
        event_ns: np.ndarray,
        throttled: np.ndarray,
        more_spills: bool,
    ) -> dict[str, Any]:
        """A valid Measurement's `extra`: phases, instrumented build, clocks, spread, verdict."""
        cycles, ns = spans.cycles, spans.ns
        verify = reply.get("verify") or []
        phases = dict(reply.get("phases") or {})
        phases["assemble"] = prep.assemble_s
        return {
            **prep.extra,
            "phases": phases,
            "regs_instrumented": prep.regs_instrumented,
            "spills_instrumented": prep.spills_instrumented,
            "instrumented_spills_more": more_spills,
            "l2": reply.get("l2", self.l2),
            "wall_ns_median": float(np.median(spans.wall_ns)),
            "sms_used": int(np.median(spans.sms)),
            "regs_driver": reply.get("regs_plain"),
            "regs_instrumented_driver": reply.get("regs_instrumented"),
            "throttled_samples": int(throttled.sum()),
            "throttled": bool(throttled.sum() > cycles.size // 2),
            "clock_mhz_max": reply.get("clock_mhz_max"),
            "ns_median": float(np.median(ns)),
            "event_ns_q1_q3": [
                float(np.percentile(event_ns, 25)),
                float(np.percentile(event_ns, 75)),
            ]
            if event_ns.size
            else None,
            "bit_exact": bool(verify and all(v.get("bit_exact") for v in verify)),
            "max_abs_err": max((float(v.get("max_abs_err", 0.0)) for v in verify), default=0.0),
            "exact": self.exact,
            "warmup": self.warmup,
            "problem": self.problem,
            "arch": self.arch,
        }

    def close(self) -> None:
        self.worker.close()
        self.pool.shutdown(wait=False, cancel_futures=True)
