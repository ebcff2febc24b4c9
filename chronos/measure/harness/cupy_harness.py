"""The GPU side of the `cupy` backend: runs inside the worker subprocess and owns the context.

Kernel-agnostic on purpose: the parent sends the cubins (or PTX), the launch shape, the
argument list, the inputs and the reference outputs, so user-registered kernels need not be
importable here. Per request it

1. loads both builds (plain and instrumented) with the driver (`cuModuleLoadData`);
2. launches each once on fresh inputs with outputs poisoned (0xFF) and compares them with the
   reference (bit-exact, or within tolerance when `exact` is False; None: either);
3. warms up, then runs `repeats` instrumented launches, each preceded by zeroing the per-SM
   timer array (chronos.measure.harness.instrument) and, with `l2="cold"`, by a memset of a
   buffer of twice the L2 size (nvbench's and CuAsmRL's flush), and followed by a
   device-to-device copy of the timers into a sample array (one sync for the whole series);
4. times `repeats` launches of the plain build with CUDA event pairs, queued in chunks behind a
   "hold" kernel that spins on %globaltimer while the host enqueues: the GPU then runs the
   chunk back to back, so an event pair measures the kernel, not the host's launch latency.

It returns raw samples; the parent computes spans, medians, IQR and throttling, so that the
statistics are testable without a GPU. A CUDA error is followed by a context check (a
synchronize and a memset): a non-sticky error (launch out of resources, bad launch shape)
leaves the context usable and is an invalid measurement with `fatal=False`; a sticky one
(illegal address, misaligned access) is reported with `fatal=True` and the parent restarts
this process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from cachetools import LRUCache

from chronos.measure.launch import L2_MODES
from kernels.params import launch_scalar

POISON = 0xFF
INPUT_CACHE = 8
DEFAULT_SHARED = 48 * 1024
"""Above this much shared memory (static + dynamic) a launch needs
CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES raised to its dynamic part first."""
FLUSH_FACTOR = 2
"""The cold-L2 flush writes this many times the L2 size."""
HOLD_CHUNK = 32
"""Event-timed launches queued behind one hold kernel."""
HOLD_NS_PER_LAUNCH = 40_000
"""Hold time per queued launch: more than the host needs to enqueue one (flush, 2 events)."""
HOLD_PTX = """.version 7.0
.target sm_70
.address_size 64
.visible .entry chronos_hold(.param .u64 chronos_hold_ns)
{
\t.reg .u64 %t<4>;
\t.reg .pred %p;
\tld.param.u64 %t3, [chronos_hold_ns];
\tmov.u64 %t0, %globaltimer;
$spin:
\tmov.u64 %t1, %globaltimer;
\tsub.u64 %t2, %t1, %t0;
\tsetp.lt.u64 %p, %t2, %t3;
\t@%p bra $spin;
\tret;
}
"""
"""Spins for its argument's nanoseconds: the stream waits while the host queues launches."""


def launch_args(spec_args: list[tuple[Any, ...]], bufs: dict[str, Any]) -> list[Any]:
    """Kernel arguments from the parent's list: device arrays for buffers, and for scalars a
    NumPy scalar holding exactly the bytes `kernels.params.encode_scalar` made (the same bytes
    the emulator writes into its .param space)."""
    out: list[Any] = []
    for a in spec_args:
        out.append(bufs[a[1]] if a[0] == "buffer" else launch_scalar(bytes(a[2])))
    return out


class CudaFault(RuntimeError):
    """A CUDA error after which the context cannot be trusted."""

    fatal = True


class InputsMissing(KeyError):
    """The request names inputs this worker no longer holds (never sent, or evicted)."""


class CupyHarness:
    """Handler for the worker protocol (see chronos.measure.harness.worker)."""

    def __init__(self, config: dict[str, Any]):
        import cupy

        self.cp = cupy
        self.device_id = int(config.get("device", 0))
        self.dev = cupy.cuda.Device(self.device_id)
        self.dev.use()
        props = cupy.cuda.runtime.getDeviceProperties(self.device_id)
        name = props["name"]
        self.device_name = name.decode() if isinstance(name, bytes) else str(name)
        major, minor = int(props["major"]), int(props["minor"])
        self.clock_mhz_max = _clock_mhz(cupy, props, self.device_id)
        self.l2_bytes = int(props.get("l2CacheSize") or 0)
        self.hold_ns_per_launch = int(config.get("hold_ns_per_launch", HOLD_NS_PER_LAUNCH))
        self._flush: Any = None
        self._hold: Any = None
        # A blocking stream: it orders after the uploads cupy makes on the legacy stream.
        self.stream = cupy.cuda.Stream(non_blocking=False)
        self.input_cache = max(1, int(config.get("input_cache", INPUT_CACHE)))
        # Least recently used inputs are evicted; the parent resends them when asked.
        self.inputs: LRUCache[str, tuple[dict[str, np.ndarray], dict[str, Any]]] = LRUCache(
            maxsize=self.input_cache
        )
        self.info = {
            "device": self.device_name,
            "arch": f"sm_{major}{minor}",
            "compute_capability": [major, minor],
            "clock_mhz_max": self.clock_mhz_max,
            "sm_count": int(props["multiProcessorCount"]),
            "l2_bytes": self.l2_bytes,
            "driver_version": int(cupy.cuda.runtime.driverGetVersion()),
            "runtime_version": int(cupy.cuda.runtime.runtimeGetVersion()),
            "cupy_version": cupy.__version__,
        }

    # --- protocol -----------------------------------------------------------------------------

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "ping":
            return {"ok": True}
        if op != "measure":
            return {"ok": False, "error": f"unknown op {op!r}"}
        return self.measure(req)

    def _cuda_errors(self) -> tuple[type[BaseException], ...]:
        from cupy_backends.cuda.api.runtime import CUDARuntimeError

        return (self.cp.cuda.driver.CUDADriverError, CUDARuntimeError)

    def _load(self, build: dict[str, Any]) -> Any:
        from cupy.cuda.function import Module

        mod = Module()
        if build.get("cubin") is not None:
            mod.load(bytes(build["cubin"]))
        else:
            mod.load(build["ptx"].encode() + b"\0")
        return mod

    def _global(self, module: Any, name: str, size: int) -> Any:
        """A MemoryPointer to a module-scope variable (what RawModule.get_global does:
        Module.get_global_var returns the bare device address)."""
        cuda = self.cp.cuda
        ptr = module.get_global_var(name)
        return cuda.MemoryPointer(cuda.UnownedMemory(ptr, size, module), 0)

    def _flush_buffer(self) -> Any:
        """A device buffer of FLUSH_FACTOR x the L2 size (allocated once)."""
        if self._flush is None:
            if self.l2_bytes <= 0:
                raise RuntimeError("l2='cold' needs the L2 size, which the device did not report")
            self._flush = self.cp.zeros(FLUSH_FACTOR * self.l2_bytes, self.cp.uint8)
        return self._flush

    def _hold_function(self) -> Any:
        if self._hold is None:
            from cupy.cuda.function import Module

            mod = Module()
            mod.load(HOLD_PTX.encode() + b"\0")
            self._hold = (mod, mod.get_function("chronos_hold"))
        return self._hold[1]

    def _context_ok(self) -> bool:
        """After a CUDA error: does the context still work (the error was not sticky)?"""
        try:
            self.cp.cuda.runtime.deviceSynchronize()
            probe = self.cp.zeros(1, self.cp.uint64)
            probe.data.memset_async(0, 8, self.stream)
            self.stream.synchronize()
        except Exception:  # noqa: BLE001 - any failure here means the context is gone
            return False
        return True

    def _device_inputs(self, req: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        key = req["inputs_key"]
        if key in self.inputs:
            return self.inputs[key]  # a read marks it most recently used
        if req.get("inputs") is None:
            raise InputsMissing(f"inputs {key} not cached in the worker; resend them")
        host = {k: np.ascontiguousarray(v) for k, v in req["inputs"].items()}
        entry = self.inputs[key] = (host, dict(req["reference"]))
        return entry

    # --- one measurement ----------------------------------------------------------------------

    def measure(self, req: dict[str, Any]) -> dict[str, Any]:
        try:
            host, reference = self._device_inputs(req)
        except InputsMissing as exc:
            # The worker keeps INPUT_CACHE kernels' inputs; the parent resends on this answer.
            return {"ok": False, "need_inputs": True, "error": str(exc)}
        with self.stream:  # every cupy copy/memset below runs on the timing stream
            return self._measure(req, host, reference)

    def _measure(
        self, req: dict[str, Any], host: dict[str, np.ndarray], reference: dict[str, Any]
    ) -> dict[str, Any]:
        errors = self._cuda_errors()
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        loaded = self._load_builds(req, errors)
        if isinstance(loaded, dict):
            return loaded
        f_plain, f_instr, g_timers = loaded
        phases["load"] = time.perf_counter() - t0
        regs = {
            "regs_plain": _num_regs(f_plain),
            "regs_instrumented": _num_regs(f_instr),
        }
        shape = _launch_shape(req)
        l2 = req.get("l2", "cold")
        if l2 not in L2_MODES:
            return {"ok": False, "error": f"l2 must be one of {L2_MODES}, got {l2!r}"}
        try:
            launch = self._prepare_launch(req, host, (f_plain, f_instr), shape, l2)
            # 2. verification of both builds on pristine inputs, poisoned outputs
            t1 = time.perf_counter()
            verdicts = [
                self._verify_build(launch, f, req, host, reference) for f in (f_plain, f_instr)
            ]
            phases["verify"] = time.perf_counter() - t1
            for label, v in zip(("plain", "instrumented"), verdicts, strict=True):
                if not v["ok"]:
                    return {
                        "ok": True,
                        "valid": False,
                        "error": f"output mismatch ({label} build): {v['message']}",
                        "verify": verdicts,
                        "phases": phases,
                        **regs,
                    }
            t2 = time.perf_counter()
            repeats, warmup = int(req["repeats"]), int(req["warmup"])
            timers = self._timer_samples(
                launch, f_instr, g_timers, int(req["timer_bytes"]), repeats, warmup
            )
            event_ns = self._event_times(launch, f_plain, repeats, warmup)
            phases["time"] = time.perf_counter() - t2
        except errors as exc:
            if self._context_ok():
                # Not sticky (out of resources, bad launch shape): the worker can go on.
                return {"ok": True, "valid": False, "error": f"CUDA error: {exc}", "fatal": False}
            raise CudaFault(f"CUDA error: {exc}") from exc
        return {
            "ok": True,
            "valid": True,
            "error": None,
            "timers": timers,
            "l2": l2,
            "event_ns": event_ns,
            "clock_mhz_max": self.clock_mhz_max,
            "verify": verdicts,
            "phases": phases,
            **regs,
        }

    def _load_builds(
        self, req: dict[str, Any], errors: tuple[type[BaseException], ...]
    ) -> tuple[Any, Any, Any] | dict[str, Any]:
        """1. Both builds' functions and the instrumented build's timer array, or the invalid
        reply for an image the driver rejects (fatal when the context did not survive it)."""
        entry = req["entry"]
        try:
            plain = self._load(req["plain"])
            instr = self._load(req["instrumented"])
            f_plain = plain.get_function(entry)
            f_instr = instr.get_function(entry)
            g_timers = self._global(instr, req["timer_symbol"], int(req["timer_bytes"]))
        except errors as exc:
            # A bad image is not a poisoned context; check that with a sync before going on.
            try:
                self.cp.cuda.runtime.deviceSynchronize()
            except errors:
                return {"ok": True, "valid": False, "error": f"module load: {exc}", "fatal": True}
            return {"ok": True, "valid": False, "error": f"module load: {exc}", "fatal": False}
        return f_plain, f_instr, g_timers

    def _prepare_launch(
        self,
        req: dict[str, Any],
        host: dict[str, np.ndarray],
        funcs: tuple[Any, ...],
        shape: tuple[tuple[int, ...], tuple[int, ...], int],
        l2: str,
    ) -> _Launch:
        """Shared-memory opt-in, the flush buffer, the hold kernel and the inputs on the device."""
        grid, block, shmem = shape
        for f in funcs:
            if needs_shared_opt_in(_static_shared(f) if shmem else 0, shmem):
                _allow_dynamic_shared(f, shmem)
        flush = self._flush_buffer() if l2 == "cold" else None
        hold = self._hold_function()
        bufs = {name: self.cp.asarray(a) for name, a in host.items()}
        self.stream.synchronize()
        return _Launch(
            grid=grid,
            block=block,
            shmem=shmem,
            args=tuple(launch_args(req["args"], bufs)),
            stream=self.stream,
            flush=flush,
            hold=hold,
            bufs=bufs,
        )

    def _verify_build(
        self,
        launch: _Launch,
        f: Any,
        req: dict[str, Any],
        host: dict[str, np.ndarray],
        reference: dict[str, Any],
    ) -> dict[str, Any]:
        """One launch of `f` on pristine inputs with poisoned outputs, compared with the
        reference."""
        cp, bufs = self.cp, launch.bufs
        outs = list(req["outputs"])
        inout = [n for n in req.get("inout", ()) if n in host]
        for n in outs:
            if n in inout:
                bufs[n].set(host[n], stream=self.stream)
            else:
                bufs[n].data.memset_async(POISON, bufs[n].nbytes, self.stream)
        launch(f)
        self.stream.synchronize()
        got = {n: cp.asnumpy(bufs[n], stream=self.stream) for n in outs}
        self.stream.synchronize()
        return _compare(
            got,
            reference,
            req.get("exact"),
            req["rtol"],
            req["atol"],
            req.get("bfloat16", ()),
        )

    def _timer_samples(
        self,
        launch: _Launch,
        f_instr: Any,
        g_timers: Any,
        timer_bytes: int,
        repeats: int,
        warmup: int,
    ) -> np.ndarray:
        """3. Per-SM timer samples from the instrumented build: one row per repeat."""
        cp = self.cp
        for _ in range(warmup):
            launch(f_instr)
        samples = cp.zeros(repeats * timer_bytes // 8, cp.uint64)
        for i in range(repeats):
            launch.flush_l2()
            g_timers.memset_async(0, timer_bytes, self.stream)
            launch(f_instr)
            (samples.data + timer_bytes * i).copy_from_device_async(
                g_timers, timer_bytes, self.stream
            )
        self.stream.synchronize()
        return cp.asnumpy(samples, stream=self.stream).reshape(repeats, -1)

    def _event_times(self, launch: _Launch, f_plain: Any, repeats: int, warmup: int) -> list[float]:
        """4. CUDA-event time (ns) of the plain build, queued behind hold kernels."""
        cp = self.cp
        for _ in range(warmup):
            launch(f_plain)
        events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(repeats)]
        for c in range(0, repeats, HOLD_CHUNK):
            chunk = events[c : c + HOLD_CHUNK]
            hold_ns = np.uint64(self.hold_ns_per_launch * len(chunk))
            launch.hold((1, 1, 1), (1, 1, 1), (hold_ns,), stream=self.stream)
            for start, end in chunk:
                launch.flush_l2()
                start.record(self.stream)
                launch(f_plain)
                end.record(self.stream)
        self.stream.synchronize()
        return [cp.cuda.get_elapsed_time(s, e) * 1e6 for s, e in events]


def _launch_shape(req: dict[str, Any]) -> tuple[tuple[int, ...], tuple[int, ...], int]:
    """Grid, block and dynamic shared memory bytes of a request."""
    grid = tuple(int(x) for x in req["grid"])
    block = tuple(int(x) for x in req["block"])
    return grid, block, int(req.get("dynamic_shared", 0))


@dataclass(frozen=True)
class _Launch:
    """One request's launch shape, arguments and device buffers, on the harness's stream."""

    grid: tuple[int, ...]
    block: tuple[int, ...]
    shmem: int
    args: tuple[Any, ...]
    stream: Any
    flush: Any
    """The cold-L2 flush buffer, or None for l2="hot"."""
    hold: Any
    bufs: dict[str, Any]

    def __call__(self, f: Any) -> None:
        f(self.grid, self.block, self.args, shared_mem=self.shmem, stream=self.stream)

    def flush_l2(self) -> None:
        if self.flush is not None:
            self.flush.data.memset_async(0, self.flush.nbytes, self.stream)


def _clock_mhz(cupy: Any, props: dict[str, Any], device: int) -> float | None:
    """The maximum SM clock in MHz (cudaDeviceProp.clockRate is gone from CUDA 13)."""
    try:
        rt = cupy.cuda.runtime
        return float(rt.deviceGetAttribute(rt.cudaDevAttrClockRate, device)) / 1000.0
    except Exception:  # noqa: BLE001 - fall back to the properties, then to nothing
        rate = props.get("clockRate")
        return float(rate) / 1000.0 if rate else None


def _allow_dynamic_shared(func: Any, nbytes: int) -> None:
    """Opt a function into more than 48 KiB of dynamic shared memory (a launch fails without)."""
    from cupy.cuda import driver

    driver.funcSetAttribute(
        func.ptr, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, int(nbytes)
    )


def needs_shared_opt_in(static: int, dynamic: int) -> bool:
    """True when a launch with `dynamic` bytes must first raise the function's dynamic limit:
    the default 48 KiB covers static and dynamic shared memory together."""
    return dynamic > 0 and static + dynamic > DEFAULT_SHARED


def _static_shared(func: Any) -> int:
    """The function's static shared memory in bytes (0 when the driver does not say)."""
    try:
        from cupy.cuda import driver

        return int(driver.funcGetAttribute(driver.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, func.ptr))
    except Exception:  # noqa: BLE001 - unknown: count only the dynamic part
        return 0


def _num_regs(func: Any) -> int | None:
    try:
        from cupy.cuda import driver

        return int(driver.funcGetAttribute(driver.CU_FUNC_ATTRIBUTE_NUM_REGS, func.ptr))
    except Exception:  # noqa: BLE001 - a missing figure is not a failed measurement
        return None


def _compare(
    got: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    exact: bool | None,
    rtol: float,
    atol: float,
    bfloat16: Any = (),
) -> dict[str, Any]:
    """Bit-exact first; with exact=None a bit mismatch may still pass within tolerance."""
    from chronos.emulate.verify import compare

    n, err, msg = compare(got, reference, True)
    if n == 0:
        return {"ok": True, "bit_exact": True, "max_abs_err": err, "message": None}
    if exact is True:
        return {"ok": False, "bit_exact": False, "max_abs_err": err, "message": msg}
    n, err, msg = compare(got, reference, False, rtol, atol, frozenset(bfloat16))
    return {"ok": n == 0, "bit_exact": False, "max_abs_err": err, "message": msg, "mismatches": n}


def make_handler(config: dict[str, Any]) -> CupyHarness:
    """Worker target factory: `chronos.measure.harness.cupy_harness:make_handler`."""
    return CupyHarness(config)
