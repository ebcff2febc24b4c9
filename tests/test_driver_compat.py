"""Which ptxas (or the driver JIT) the cupy backend uses for a driver, through the fake CuPy.

The fake (chronos.measure.harness.fake_cupy) loads modules by a driver's rules: PTX newer than the
driver's ISA and CUDA 13 cubins on an older driver are refused. So a measurement that
verifies here went through a choice a real driver of that version accepts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import kernels
from chronos.assemble import ptxas as ptxas_module
from chronos.assemble.ptxas import cuda_major, ptxas_for_driver
from chronos.measure.backends.cupy import JIT_PREFIX, CupyBackend
from chronos.measure.harness import fake_cupy
from chronos.transforms import ACTION_NAMES, apply_action

KERNEL = "gemm_tile_2_2_2"
DRIVERS = (12020, 12080, 13000)


def _found(major: int) -> Path | None:
    found = [e for e in ptxas_module.candidates() if cuda_major(e) == major]
    return found[0] if found else None


CUDA12, CUDA13 = _found(12), _found(13)
need_both = pytest.mark.skipif(
    CUDA12 is None or CUDA13 is None,
    reason="needs a CUDA 12 ptxas (nvidia-cuda-nvcc-cu12) and a CUDA 13 one (nvidia-cuda-nvcc)",
)


def fake_backend(driver: int, **kw) -> CupyBackend:
    return CupyBackend(
        worker_target=fake_cupy.TARGET,
        worker_config={"fake_driver_version": driver},
        problem="small",
        repeats=1,
        warmup=0,
        timeout_s=120,
        **kw,
    )


@need_both
@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("have", ["cuda12", "cuda13", "both"])
def test_driver_by_available_ptxas(driver: int, have: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """12.x drivers get CUDA 12 cubins, or the driver JIT when only a CUDA 13 ptxas exists;
    a 13.0 driver takes the newest cubins. The lowered module verifies in every case."""
    available = {"cuda12": [CUDA12], "cuda13": [CUDA13], "both": [CUDA13, CUDA12]}[have]
    monkeypatch.setattr(ptxas_module, "candidates", lambda: list(available))
    spec = kernels.load(KERNEL)
    with fake_backend(driver) as b:
        m = b.measure(spec, spec.ptx())
    assert m.valid, m.error
    assert m.extra["ptx_isa"] == "7.0"
    if driver < 13000 and have == "cuda13":
        assert m.ptxas_version == f"{JIT_PREFIX}{driver // 1000}.{driver % 1000 // 10}"
        assert "driver JIT" in m.extra["toolchain"]
    else:
        want = CUDA13 if driver >= 13000 and have != "cuda12" else CUDA12
        assert m.ptxas_version == ptxas_module.ptxas_version(want)
        assert str(want) in m.extra["toolchain"]


@need_both
def test_the_fake_refuses_what_a_real_driver_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above can fail: a CUDA 13 cubin, or unlowered ISA 9.0 PTX, on a 12.2 driver
    is a load error."""
    spec = kernels.load(KERNEL)
    monkeypatch.setattr(CupyBackend, "toolchain", lambda self, isa: (CUDA13, "forced"))
    with fake_backend(12020) as b:
        m = b.measure(spec, spec.ptx())
    assert not m.valid and "CUDA_ERROR_INVALID_IMAGE" in str(m.error)
    monkeypatch.undo()
    monkeypatch.setattr(
        "chronos.measure.backends.cupy.lower_for_driver", lambda ptx, driver: (ptx, None)
    )
    with fake_backend(12020, load="ptx") as b:
        m = b.measure(spec, spec.ptx())
    assert not m.valid and "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in str(m.error)


def test_selection_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """ptxas_for_driver: never a newer CUDA major than the driver's; the newest otherwise."""
    if CUDA12 is None or CUDA13 is None:
        pytest.skip("needs a CUDA 12 and a CUDA 13 ptxas")
    monkeypatch.setattr(ptxas_module, "candidates", lambda: [CUDA12, CUDA13])
    assert ptxas_for_driver(12, (7, 0))[0] == CUDA12
    assert ptxas_for_driver(13, (7, 0))[0] == CUDA13
    assert ptxas_for_driver(12, (9, 0))[0] is None  # no CUDA 12 ptxas takes ISA 9.0
    exe, why = ptxas_for_driver(11, (7, 0))
    assert exe is None and "CUDA 11" in why and "nvidia-cuda-nvcc-cu12" in why


@pytest.mark.requires_ptxas
def test_an_instruction_newer_than_the_driver_is_one_invalid_step() -> None:
    """A CUDA 11.0 driver (PTX ISA 7.0) and ld.global.L2::256B (ISA 7.4): the measurement is
    invalid with the instruction and its line, never stored; the run goes on."""
    spec = kernels.load(KERNEL)
    res = apply_action(spec, spec.ptx(), ACTION_NAMES.index("ld_l2_256B"))
    assert res.changed
    line = next(i for i, t in enumerate(res.ptx.splitlines(), 1) if "L2::256B" in t)
    with fake_backend(11000) as b:
        m = b.measure(spec, res.ptx)
        assert not m.valid and m.extra.get("transient") and m.extra.get("driver_too_old")
        assert "ld.global.L2::256B" in m.error and f"(line {line})" in m.error
        assert "CUDA 11.0 driver takes PTX up to ISA 7.0" in m.error
        ok = b.measure(spec, spec.ptx())
    assert ok.valid, ok.error
    assert ok.ptxas_version == f"{JIT_PREFIX}11.0"  # no ptxas of CUDA 11 or older here


@pytest.mark.requires_ptxas
def test_an_instruction_the_table_lacks_keeps_the_version_and_says_so() -> None:
    spec = kernels.load(KERNEL)
    ptx = spec.ptx().replace("bar.sync \t0;", "barrier.cluster.arrive;\n\tbar.sync \t0;", 1)
    assert ptx != spec.ptx()
    with fake_backend(12020) as b:
        m = b.measure(spec, ptx)
    assert not m.valid and "barrier.cluster.arrive" in m.error
    assert "does not know" in m.error and "R580" in m.error


# --- on a GPU -----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("path", ["cubin", "driver-jit", "cuda12-cubin"])
def test_real_gpu_runs_lowered_ptx_by_every_path(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the real driver: the lowered corpus kernel (ISA 7.0) and a transform's output that
    needs ISA 7.4 verify as cubins of the chosen ptxas, through the driver JIT, and as CUDA 12
    cubins (which every driver of CUDA 12 or newer loads)."""
    spec = kernels.load("gemm_tile_4_4_4")
    hinted = apply_action(spec, spec.ptx(), ACTION_NAMES.index("ld_l2_256B")).ptx
    kw = {"load": "ptx"} if path == "driver-jit" else {}
    if path == "cuda12-cubin":
        if CUDA12 is None:
            pytest.skip("no CUDA 12 ptxas here (pip install nvidia-cuda-nvcc-cu12)")
        monkeypatch.setattr(ptxas_module, "candidates", lambda: [CUDA12])
    with CupyBackend(repeats=10, warmup=2, **kw) as b:
        for text, isa in ((spec.ptx(), "7.0"), (hinted, "7.4")):
            m = b.measure(spec, text)
            assert m.valid, (path, m.error)
            assert m.extra["ptx_isa"] == isa and m.extra["bit_exact"]
            if path == "driver-jit":
                assert m.ptxas_version.startswith(JIT_PREFIX)
            else:
                assert not m.ptxas_version.startswith(JIT_PREFIX), m.extra["toolchain"]
            if path == "cuda12-cubin":
                assert m.ptxas_version.startswith("12.")
