"""A fake CuPy whose launches run PTX in the CPU emulator: the GPU harness without a GPU.

`make_handler` is a worker target (`CupyBackend(worker_target=TARGET, load="ptx",
problem="small")`) that installs this fake as `cupy` in the worker process and runs the real
`chronos.measure.harness.cupy_harness.CupyHarness` on it. The fake implements only the CuPy surface
the harness uses (modules from PTX, launches, memsets, device-to-device copies, events).
Launches execute the PTX in the emulator, whose module globals are read back after the run and
merged with `max` like the kernel's `red.global.max`, so the harness's reset / flush / launch /
copy-sample sequence, its argument encoding, its hold kernel and its verification run end to
end, through the real worker subprocess. An emulator fault is a sticky CUDA error: every later
synchronize fails, as on a poisoned context.

Module loads follow a driver's rules for its (pretended) version: PTX of an ISA newer than the
driver's is CUDA_ERROR_UNSUPPORTED_PTX_VERSION, and a CUDA 13 cubin (ELF ABI version 8) on an
older driver is refused. A cubin runs as the PTX it was assembled from, which the request
carries beside it (`make_handler` remembers the pair), so the backend's choice of ptxas for
the driver is checked end to end.

It is what `tests/test_measure_harness.py` and `python -m chronos.validate --dry-run` measure
with; the device it reports is named "fake CuPy on the CPU emulator" so that its figures (the
emulator's step clock, a constant event time) are never taken for a GPU's. What it cannot
check is that real CuPy matches this surface: the `gpu` tests do.
"""

from __future__ import annotations

import hashlib
import re
import sys
import types
from typing import Any

import numpy as np

TARGET = "chronos.measure.harness.fake_cupy:make_handler"
DEVICE_NAME = "fake CuPy on the CPU emulator"
DRIVER_VERSION = 13000
L2_BYTES = 1 << 20
"""A small L2, so the cold-L2 flush (2x its size) is cheap in the emulator."""
EVENT_MS = 0.0125
"""What every event pair reports (the emulator has no wall clock of the GPU's)."""
HOLD_NS_PER_LAUNCH = 8
"""The hold kernel spins on the emulator's step clock: keep it to a few steps."""


class CUDADriverError(RuntimeError):
    pass


class CUDARuntimeError(RuntimeError):
    pass


class Memory:
    """Device memory: one bytearray per allocation."""

    def __init__(self, size: int):
        self.bytes = np.zeros(max(size, 1), np.uint8)


ADDRESSES: dict[int, Memory] = {}
STATE: dict[str, Any] = {"sticky": None, "driver": DRIVER_VERSION}
CUBIN_PTX: dict[str, str] = {}
"""sha256 of a cubin -> the PTX it was assembled from (filled from each request)."""
CUBIN_ABI_CUDA13 = 8
"""ELF e_ident[EI_ABIVERSION] of CUDA 13 cubins (7 before): a CUDA 12 driver cannot load them."""
"""A sticky error, once raised, fails every later synchronize (as a poisoned context does)."""


def _synchronize() -> None:
    if STATE["sticky"]:
        raise CUDARuntimeError(STATE["sticky"])


def UnownedMemory(ptr: int, size: int, owner: Any) -> Memory:  # noqa: N802 - CuPy's name
    return ADDRESSES[ptr]


class MemoryPointer:
    def __init__(self, mem: Memory, offset: int = 0):
        self.mem, self.offset = mem, offset

    def __add__(self, n: int) -> MemoryPointer:
        return MemoryPointer(self.mem, self.offset + n)

    def view(self, size: int) -> np.ndarray:
        return self.mem.bytes[self.offset : self.offset + size]

    def memset_async(self, value: int, size: int, stream: Any = None) -> None:
        self.view(size)[:] = value

    def copy_from_device_async(self, src: MemoryPointer, size: int, stream: Any = None) -> None:
        self.view(size)[:] = src.view(size)


class FakeArray:
    def __init__(self, host: np.ndarray):
        host = np.ascontiguousarray(host)
        self.dtype, self.shape, self.nbytes = host.dtype, host.shape, host.nbytes
        self.data = MemoryPointer(Memory(host.nbytes))
        self.data.view(host.nbytes)[:] = host.reshape(-1).view(np.uint8)

    def host(self) -> np.ndarray:
        return self.data.view(self.nbytes).view(self.dtype).reshape(self.shape).copy()

    def set(self, arr: np.ndarray, stream: Any = None) -> None:
        self.data.view(self.nbytes)[:] = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)


class Function:
    def __init__(self, module: Module, name: str):
        self.module, self.name, self.ptr = module, name, id(self)

    def __call__(self, grid, block, args, shared_mem: int = 0, stream: Any = None) -> None:
        import chronos.emulate.launch as launch

        if STATE["sticky"]:
            raise CUDADriverError(STATE["sticky"])
        req = re.search(r"\.reqntid\s+(\d+)(?:\s*,\s*(\d+))?(?:\s*,\s*(\d+))?", self.module.ptx)
        want = [int(x or 1) for x in req.groups()] if req else None
        if want is not None and want != [*block, 1, 1][:3]:
            # What the driver answers: a launch error that leaves the context usable.
            raise CUDADriverError(f"CUDA_ERROR_INVALID_VALUE (block {block} != .reqntid {want})")

        buffers: dict[str, np.ndarray] = {}
        values: dict[str, Any] = {}
        from chronos.ptx import parse

        params = parse(self.module.ptx).entry(self.name).params
        for i, (p, a) in enumerate(zip(params, args, strict=True)):
            if isinstance(a, FakeArray):
                buffers[f"b{i}"] = a.host()
                values[p.name] = f"b{i}"
            else:
                assert isinstance(a, np.generic), f"scalar {p.name} passed as {type(a)}"
                # By bytes, as the GPU reads its parameter buffer: an .f32 1.5 arrives as
                # np.uint32(0x3FC00000), and its value as an int would be 1069547520.0.
                values[p.name] = a.tobytes()
        seen: list = []

        class Spy(launch.Machine):
            def __init__(self, *a: Any, **k: Any):
                super().__init__(*a, **k)
                seen.append(self)

        orig, launch.Machine = launch.Machine, Spy
        try:
            res = launch.run_kernel(
                self.module.ptx,
                grid=grid,
                block=block,
                buffers=buffers,
                args=values,
                entry=self.name,
                dynamic_shared=shared_mem,
            )
        except Exception as exc:  # an emulator fault is what a GPU would call a CUDA error
            STATE["sticky"] = f"CUDA_ERROR_ILLEGAL_ADDRESS ({exc})"  # the context is gone
            raise CUDADriverError(STATE["sticky"]) from exc
        finally:
            launch.Machine = orig
        for i, a in enumerate(args):
            if isinstance(a, FakeArray):
                a.set(res.outputs[f"b{i}"])
        m = seen[-1]
        for name, ptr in self.module.globals.items():
            start, size = m.global_mem.region_bytes(name)
            new = m.global_mem.data[start : start + size].view(np.uint64)
            old = ptr.view(size).view(np.uint64)
            old[:] = np.maximum(old, new)  # red.global.max semantics across the launch


class Module:
    def __init__(self) -> None:
        self.ptx = ""
        self.globals: dict[str, MemoryPointer] = {}
        self.ptr = id(self)

    def _size(self, name: str) -> int:
        """Bytes of a module variable, from its declaration (`.u64 name[N]` or `.u64 name`)."""
        m = re.search(rf"\.(?:[bsuf])(8|16|32|64)\s+{re.escape(name)}(?:\[(\d+)\])?\s*;", self.ptx)
        if m is None:
            raise CUDADriverError("CUDA_ERROR_NOT_FOUND")
        return int(m[1]) // 8 * int(m[2] or 1)

    def load(self, image: bytes) -> None:
        from chronos.measure.harness.compat import min_cuda_version, ptx_isa_version

        driver = int(STATE["driver"])
        if image[:4] == b"\x7fELF":
            if image[8] >= CUBIN_ABI_CUDA13 and driver < 13000:
                raise CUDADriverError("CUDA_ERROR_INVALID_IMAGE (a CUDA 13 cubin, older driver)")
            ptx = CUBIN_PTX.get(hashlib.sha256(image).hexdigest())
            if ptx is None:
                raise CUDADriverError("CUDA_ERROR_INVALID_IMAGE (no PTX came with this cubin)")
            self.ptx = ptx
            return
        if not image.endswith(b"\0"):
            raise CUDADriverError("CUDA_ERROR_INVALID_IMAGE (neither a cubin nor PTX)")
        self.ptx = image[:-1].decode()
        isa = ptx_isa_version(self.ptx)
        if isa is not None and min_cuda_version(isa) > driver:
            raise CUDADriverError(
                "CUDA_ERROR_UNSUPPORTED_PTX_VERSION: the provided PTX was compiled with an "
                "unsupported toolchain."
            )

    def get_function(self, name: str) -> Function:
        return Function(self, name)

    def get_global_var(self, name: str) -> int:
        """Like CuPy's: the bare device address (an int)."""
        ptr = self.globals.setdefault(name, MemoryPointer(Memory(self._size(name))))
        ADDRESSES[id(ptr.mem)] = ptr.mem
        return id(ptr.mem)


class Stream:
    def __init__(self, non_blocking: bool = False):
        pass

    def synchronize(self) -> None:
        _synchronize()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: Any) -> None:
        pass


class Event:
    def record(self, stream: Any = None) -> None:
        pass


def install_fake_cupy(driver_version: int = DRIVER_VERSION) -> None:
    """Put a fake `cupy` (and the modules the harness imports) into sys.modules."""
    STATE["driver"] = driver_version
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "fake-emulator"
    cupy.uint64 = np.uint64
    cupy.uint8 = np.uint8
    rt = types.SimpleNamespace(
        getDeviceProperties=lambda d: {
            "name": DEVICE_NAME.encode(),
            "major": 9,
            "minor": 0,
            "multiProcessorCount": 132,
            "l2CacheSize": L2_BYTES,
        },
        deviceGetAttribute=lambda attr, d: 1_980_000,
        cudaDevAttrClockRate=13,
        driverGetVersion=lambda: driver_version,
        runtimeGetVersion=lambda: 13000,
        deviceSynchronize=_synchronize,
    )
    driver = types.SimpleNamespace(CUDADriverError=CUDADriverError)
    function = types.ModuleType("cupy.cuda.function")
    function.Module = Module
    cupy.cuda = types.SimpleNamespace(
        Device=lambda i: types.SimpleNamespace(use=lambda: None),
        runtime=rt,
        driver=driver,
        function=function,
        Stream=Stream,
        MemoryPointer=MemoryPointer,
        UnownedMemory=UnownedMemory,
        Event=Event,
        get_elapsed_time=lambda s, e: EVENT_MS,
    )
    cupy.asarray = FakeArray
    cupy.asnumpy = lambda a, stream=None: a.host()
    cupy.zeros = lambda n, dtype: FakeArray(np.zeros(n, dtype))
    backends = types.ModuleType("cupy_backends.cuda.api.runtime")
    backends.CUDARuntimeError = CUDARuntimeError
    sys.modules.update(
        {
            "cupy": cupy,
            "cupy.cuda": cupy.cuda,  # type: ignore[dict-item]
            "cupy.cuda.function": function,
            "cupy_backends": types.ModuleType("cupy_backends"),
            "cupy_backends.cuda": types.ModuleType("cupy_backends.cuda"),
            "cupy_backends.cuda.api": types.ModuleType("cupy_backends.cuda.api"),
            "cupy_backends.cuda.api.runtime": backends,
        }
    )


def make_handler(config: dict[str, Any]) -> Any:
    """Worker target: the real CupyHarness on the fake CuPy (`fake_driver_version` in the
    config pretends an older driver)."""
    install_fake_cupy(int(config.get("fake_driver_version", DRIVER_VERSION)))
    from chronos.measure.harness.cupy_harness import CupyHarness

    config = {"hold_ns_per_launch": HOLD_NS_PER_LAUNCH, **config}
    harness = CupyHarness(config)

    def handler(req: dict[str, Any]) -> dict[str, Any]:
        for build in ("plain", "instrumented"):
            b = req.get(build) or {}
            if b.get("cubin") is not None:
                CUBIN_PTX[hashlib.sha256(bytes(b["cubin"])).hexdigest()] = b["ptx"]
        return harness(req)

    handler.info = harness.info  # type: ignore[attr-defined]
    return handler
