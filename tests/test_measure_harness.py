"""The GPU harness's own logic on CPU: CuPy replaced by a fake that runs PTX in the emulator.

The fake implements only the CuPy surface cupy_harness.py uses (modules from PTX, launches,
memsets, device-to-device copies, events). Launches execute the instrumented PTX in the CPU
emulator, whose module globals are read back after the run and merged with `max` like the
kernel's `red.global.max`, so the harness's reset / launch / copy-sample sequence, its
argument encoding and its verification against the reference are all exercised end to end,
through the real worker subprocess. What it cannot check is that CuPy's real API matches this
surface: that is what the `gpu` tests are for.
"""

from __future__ import annotations

import os
import sys
import types
from typing import Any

import numpy as np
import pytest

from chronos.measure.cupy_backend import CupyBackend
from kernels import load

HERE = os.path.abspath(__file__)


class CUDADriverError(RuntimeError):
    pass


class CUDARuntimeError(RuntimeError):
    pass


class Memory:
    """Device memory: one bytearray per allocation."""

    def __init__(self, size: int):
        self.bytes = np.zeros(max(size, 1), np.uint8)


ADDRESSES: dict[int, Memory] = {}


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
                values[p.name] = a.item()
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
            raise CUDADriverError(f"CUDA_ERROR_ILLEGAL_ADDRESS ({exc})") from exc
        finally:
            launch.Machine = orig
        for i, a in enumerate(args):
            if isinstance(a, FakeArray):
                a.set(res.outputs[f"b{i}"])
        m = seen[-1]
        for name, ptr in self.module.globals.items():
            start, size = m.global_mem.region_bytes(name)
            new = m.global_mem.data[start : start + size].view(np.uint64)
            old = ptr.view(8).view(np.uint64)
            old[:] = np.maximum(old, new)  # red.global.max semantics across the launch


class Module:
    def __init__(self) -> None:
        self.ptx = ""
        self.globals: dict[str, MemoryPointer] = {}
        self.ptr = id(self)

    def load(self, image: bytes) -> None:
        if not image.endswith(b"\0"):
            raise CUDADriverError("CUDA_ERROR_INVALID_IMAGE (the fake only loads PTX)")
        self.ptx = image[:-1].decode()

    def get_function(self, name: str) -> Function:
        return Function(self, name)

    def get_global_var(self, name: str) -> int:
        """Like CuPy's: the bare device address (an int)."""
        if name not in self.ptx:
            raise CUDADriverError("CUDA_ERROR_NOT_FOUND")
        ptr = self.globals.setdefault(name, MemoryPointer(Memory(8)))
        ADDRESSES[id(ptr.mem)] = ptr.mem
        return id(ptr.mem)


class Stream:
    def __init__(self, non_blocking: bool = False):
        pass

    def synchronize(self) -> None:
        pass

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *_: Any) -> None:
        pass


class Event:
    def record(self, stream: Any = None) -> None:
        pass


def install_fake_cupy(driver_version: int = 13000) -> None:
    """Put a fake `cupy` (and the modules the harness imports) into sys.modules."""
    cupy = types.ModuleType("cupy")
    cupy.__version__ = "fake-emulator"
    cupy.uint64 = np.uint64
    rt = types.SimpleNamespace(
        getDeviceProperties=lambda d: {
            "name": b"Emulated GPU",
            "major": 9,
            "minor": 0,
            "multiProcessorCount": 132,
        },
        deviceGetAttribute=lambda attr, d: 1_980_000,
        cudaDevAttrClockRate=13,
        driverGetVersion=lambda: driver_version,
        runtimeGetVersion=lambda: 13000,
        deviceSynchronize=lambda: None,
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
        get_elapsed_time=lambda s, e: 0.0125,
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


def emulated_gpu(config: dict[str, Any]) -> Any:
    """Worker target: the real CupyHarness on the fake CuPy."""
    install_fake_cupy(int(config.get("fake_driver_version", 13000)))
    from chronos.measure.cupy_harness import CupyHarness

    return CupyHarness(config)


@pytest.fixture(scope="module")
def backend():
    b = CupyBackend(
        worker_target=f"{HERE}:emulated_gpu",
        load="ptx",
        problem="small",
        repeats=3,
        warmup=1,
        timeout_s=120,
    )
    yield b
    b.close()


@pytest.mark.requires_ptxas
def test_harness_measures_instrumented_cycles(backend: CupyBackend) -> None:
    spec = load("gemm_tile_4_4_4")
    m = backend.measure(spec, spec.ptx())
    assert m.valid, m.error
    assert m.device == "Emulated GPU" and m.extra["arch"] == "sm_90"
    # The emulator's %clock64 advances 4 per step: the longest warp's delta, every launch.
    assert m.cycles > 0 and m.cycles_q1 == m.cycles == m.cycles_q3 and m.n == 3
    assert m.time_ns == pytest.approx(12500.0)  # 0.0125 ms per event pair
    assert m.extra["bit_exact"] is True
    assert m.regs == 48 and m.extra["regs_instrumented"] > 0
    assert {"assemble", "load", "verify", "time"} <= set(m.extra["phases"])


@pytest.mark.requires_ptxas
def test_harness_rejects_wrong_outputs(backend: CupyBackend) -> None:
    spec = load("gemm_tile_4_4_4")
    wrong = spec.ptx().replace("0f00000000", "0f3F800000")  # accumulators start at 1.0
    m = backend.measure(spec, wrong)
    assert not m.valid and "output mismatch (plain build)" in m.error


@pytest.mark.requires_ptxas
def test_harness_fault_is_fatal_and_restarts(backend: CupyBackend) -> None:
    spec = load("gemm_tile_4_4_4")
    bad = spec.ptx().replace("st.global.f32 \t[%rd20]", "st.global.f32 \t[%rd20+2]", 1)
    assert bad != spec.ptx()
    gen = backend.worker.generation
    m = backend.measure(spec, bad)
    assert not m.valid and "ILLEGAL_ADDRESS" in m.error
    assert backend.measure(spec, spec.ptx()).valid
    assert backend.worker.generation == gen + 1


def one_shot_backend(**worker_config: Any) -> CupyBackend:
    """A cupy backend on the fake GPU, one sample per measurement, with worker options."""
    return CupyBackend(
        worker_target=f"{HERE}:emulated_gpu",
        worker_config=worker_config,
        load="ptx",
        problem="small",
        repeats=1,
        warmup=0,
        timeout_s=120,
    )


@pytest.mark.requires_ptxas
def test_inputs_evicted_from_the_worker_are_resent() -> None:
    """The worker keeps a bounded input cache; a kernel evicted from it still measures."""
    with one_shot_backend(input_cache=1) as b:
        specs = [load("gemm_tile_2_2_2"), load("gemm_tile_2_2_4")]
        for spec in (*specs, specs[0], specs[1]):
            m = b.measure(spec, spec.ptx())
            assert m.valid, (spec.id, m.error)
        assert b.worker.restarts == 0


def test_a_driver_too_old_for_the_ptx_is_one_clear_error() -> None:
    """CUDA 12.4 cannot load the corpus's PTX ISA 9.0: say so before timing anything."""
    from chronos.measure.cupy_backend import CupyBackendError

    with one_shot_backend(fake_driver_version=12040) as b:
        spec = load("gemm_tile_2_2_2")
        with pytest.raises(CupyBackendError, match=r"supports CUDA 12\.4.*ISA 9\.0.*CUDA 13\.0"):
            b.measure(spec, spec.ptx())
        older = spec.ptx().replace(".version 9.0", ".version 8.4", 1)
        assert b.measure(spec, older).valid  # ISA 8.4 is CUDA 12.4's own


def test_ptx_isa_to_cuda_versions() -> None:
    from chronos.measure.compat import driver_problem, min_cuda_version, ptx_isa_version

    assert ptx_isa_version(".version 9.0\n.target sm_80\n") == (9, 0)
    assert ptx_isa_version("// no version\n") is None
    assert [min_cuda_version(v) for v in [(7, 0), (8, 4), (8, 6), (8, 8), (9, 0), (9, 5)]] == [
        11000,
        12040,
        12070,
        12090,
        13000,
        13050,
    ]
    assert driver_problem(13000, ".version 9.0\n") is None
    assert "R580" in (driver_problem(12090, ".version 9.0\n") or "")
    with pytest.raises(ValueError, match="unknown PTX ISA"):
        min_cuda_version((6, 5))
