"""The GPU side of the `cupy` backend: runs inside the worker subprocess and owns the context.

Kernel-agnostic on purpose: the parent sends the cubins (or PTX), the launch shape, the
argument list, the inputs and the reference outputs, so user-registered kernels need not be
importable here. Per request it

1. loads both builds (plain and instrumented) with the driver (`cuModuleLoadData`);
2. launches each once on fresh inputs with outputs poisoned (0xFF) and compares them with the
   reference (bit-exact, or within tolerance when `exact` is False; None: either);
3. warms up, then runs `repeats` instrumented launches, each preceded by zeroing the
   `chronos_cycles`/`chronos_ns` globals and followed by a device-to-device copy of them into
   a sample array (one sync for the whole series);
4. times `repeats` launches of the plain build with CUDA events.

It returns raw samples; the parent computes medians, IQR and throttling, so that the
statistics are testable without a GPU. Any CUDA error after loading may have poisoned the
context, so it is reported with `fatal=True` and the parent restarts this process.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from cachetools import LRUCache

from kernels.params import launch_scalar

POISON = 0xFF
INPUT_CACHE = 8
DEFAULT_DYNAMIC_SHARED = 48 * 1024
"""Above this a launch needs CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES raised first."""


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
    """Handler for the worker protocol (see chronos.measure.worker)."""

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

    def _global(self, module: Any, name: str) -> Any:
        """A MemoryPointer to a module-scope variable (what RawModule.get_global does:
        Module.get_global_var returns the bare device address)."""
        cuda = self.cp.cuda
        ptr = module.get_global_var(name)
        return cuda.MemoryPointer(cuda.UnownedMemory(ptr, 8, module), 0)

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
        cp = self.cp
        errors = self._cuda_errors()
        phases: dict[str, float] = {}
        entry = req["entry"]
        t0 = time.perf_counter()
        try:
            plain = self._load(req["plain"])
            instr = self._load(req["instrumented"])
            f_plain = plain.get_function(entry)
            f_instr = instr.get_function(entry)
            g_cycles = self._global(instr, req["cycles_symbol"])
            g_ns = self._global(instr, req["ns_symbol"])
        except errors as exc:
            # A bad image is not a poisoned context; check that with a sync before going on.
            try:
                cp.cuda.runtime.deviceSynchronize()
            except errors:
                return {"ok": True, "valid": False, "error": f"module load: {exc}", "fatal": True}
            return {"ok": True, "valid": False, "error": f"module load: {exc}", "fatal": False}
        phases["load"] = time.perf_counter() - t0
        regs = {
            "regs_plain": _num_regs(f_plain),
            "regs_instrumented": _num_regs(f_instr),
        }
        grid = tuple(int(x) for x in req["grid"])
        block = tuple(int(x) for x in req["block"])
        shmem = int(req.get("dynamic_shared", 0))
        try:
            if shmem > DEFAULT_DYNAMIC_SHARED:
                for f in (f_plain, f_instr):
                    _allow_dynamic_shared(f, shmem)
            bufs = {name: cp.asarray(a) for name, a in host.items()}
            self.stream.synchronize()
            args = launch_args(req["args"], bufs)
            outs = list(req["outputs"])
            inout = [n for n in req.get("inout", ()) if n in host]

            def launch(f: Any) -> None:
                f(grid, block, tuple(args), shared_mem=shmem, stream=self.stream)

            # 2. verification of both builds on pristine inputs, poisoned outputs
            t1 = time.perf_counter()
            verdicts = []
            for f in (f_plain, f_instr):
                for n in outs:
                    if n in inout:
                        bufs[n].set(host[n], stream=self.stream)
                    else:
                        bufs[n].data.memset_async(POISON, bufs[n].nbytes, self.stream)
                launch(f)
                self.stream.synchronize()
                got = {n: cp.asnumpy(bufs[n], stream=self.stream) for n in outs}
                self.stream.synchronize()
                verdicts.append(
                    _compare(got, reference, req.get("exact"), req["rtol"], req["atol"])
                )
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

            # 3. SM-cycle samples from the instrumented build
            t2 = time.perf_counter()
            repeats, warmup = int(req["repeats"]), int(req["warmup"])
            for _ in range(warmup):
                launch(f_instr)
            s_cycles = cp.zeros(repeats, cp.uint64)
            s_ns = cp.zeros(repeats, cp.uint64)
            for i in range(repeats):
                g_cycles.memset_async(0, 8, self.stream)
                g_ns.memset_async(0, 8, self.stream)
                launch(f_instr)
                (s_cycles.data + 8 * i).copy_from_device_async(g_cycles, 8, self.stream)
                (s_ns.data + 8 * i).copy_from_device_async(g_ns, 8, self.stream)
            self.stream.synchronize()
            cycles = cp.asnumpy(s_cycles, stream=self.stream).astype(np.float64)
            ns = cp.asnumpy(s_ns, stream=self.stream).astype(np.float64)

            # 4. CUDA-event time of the plain build
            for _ in range(warmup):
                launch(f_plain)
            events = [(cp.cuda.Event(), cp.cuda.Event()) for _ in range(repeats)]
            for start, end in events:
                start.record(self.stream)
                launch(f_plain)
                end.record(self.stream)
            self.stream.synchronize()
            event_ns = [cp.cuda.get_elapsed_time(s, e) * 1e6 for s, e in events]
            phases["time"] = time.perf_counter() - t2
        except errors as exc:
            raise CudaFault(f"CUDA error: {exc}") from exc
        return {
            "ok": True,
            "valid": True,
            "error": None,
            "cycles": cycles.tolist(),
            "ns": ns.tolist(),
            "event_ns": event_ns,
            "clock_mhz_max": self.clock_mhz_max,
            "verify": verdicts,
            "phases": phases,
            **regs,
        }


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
) -> dict[str, Any]:
    """Bit-exact first; with exact=None a bit mismatch may still pass within tolerance."""
    from chronos.emulate.verify import compare

    n, err, msg = compare(got, reference, True)
    if n == 0:
        return {"ok": True, "bit_exact": True, "max_abs_err": err, "message": None}
    if exact is True:
        return {"ok": False, "bit_exact": False, "max_abs_err": err, "message": msg}
    n, err, msg = compare(got, reference, False, rtol, atol)
    return {"ok": n == 0, "bit_exact": False, "max_abs_err": err, "message": msg, "mismatches": n}


def make_handler(config: dict[str, Any]) -> CupyHarness:
    """Worker target factory: `chronos.measure.cupy_harness:make_handler`."""
    return CupyHarness(config)
