"""The GPU harness's own logic on CPU: CuPy replaced by chronos.measure.harness.fake_cupy, which
runs PTX in the emulator, through the real worker subprocess (see that module for what it
checks and what it cannot)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from chronos.measure.backends.cupy import CupyBackend
from chronos.measure.harness import fake_cupy
from kernels import load


@pytest.fixture(scope="module")
def backend():
    b = CupyBackend(
        worker_target=fake_cupy.TARGET,
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
    assert m.device == fake_cupy.DEVICE_NAME and m.extra["arch"] == "sm_90"
    # The emulator's %clock64 advances 4 per step: the busiest SM's span, every launch.
    assert m.cycles > 0 and m.cycles_q1 == m.cycles == m.cycles_q3 and m.n == 3
    assert m.extra["sms_used"] == 4  # the small problem's 2x2 grid, one block per SM
    assert m.extra["l2"] == "cold"
    assert m.time_ns == pytest.approx(fake_cupy.EVENT_MS * 1e6)
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
        worker_target=fake_cupy.TARGET,
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


def test_ptx_isa_to_cuda_versions() -> None:
    from chronos.measure.harness.compat import (
        driver_problem,
        max_isa,
        min_cuda_version,
        ptx_isa_version,
    )

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
    assert [max_isa(d) for d in (11040, 12020, 12080, 12090, 13000, 13020)] == [
        (7, 4),
        (8, 2),
        (8, 7),
        (8, 8),
        (9, 0),
        (9, 2),
    ]
    unknown = ".version 9.0\n.target sm_80\n.address_size 64\n.blocksareclusters\n"
    assert driver_problem(13000, unknown) is None
    assert "R580" in (driver_problem(12090, unknown) or "")
    assert driver_problem(12020, ".version 9.0\n.target sm_80\n.address_size 64\n") is None
    with pytest.raises(ValueError, match="unknown PTX ISA"):
        min_cuda_version((7, 9))


@pytest.mark.requires_ptxas
def test_a_non_sticky_launch_error_is_invalid_without_a_restart(backend: CupyBackend) -> None:
    """A .reqntid that does not match the launch is a launch error the context survives."""
    spec = load("gemm_tile_4_4_4")
    bad = spec.ptx().replace(f".entry {spec.entry}(", f".entry {spec.entry}(", 1)
    bad = re.sub(r"(\.visible \.entry [^(]+\([^)]*\))", r"\1\n.reqntid 128", bad, count=1)
    assert ".reqntid 128" in bad
    gen = backend.worker.generation
    m = backend.measure(spec, bad)
    assert not m.valid and "INVALID_VALUE" in m.error, m.error
    assert "fault" not in m.extra and backend.worker.generation == gen
    assert backend.measure(spec, spec.ptx()).valid and backend.worker.generation == gen


def test_shared_memory_opt_in_counts_static_shared() -> None:
    from chronos.measure.harness.cupy_harness import needs_shared_opt_in

    assert not needs_shared_opt_in(0, 0) and not needs_shared_opt_in(40 << 10, 0)
    assert not needs_shared_opt_in(0, 48 << 10)
    assert needs_shared_opt_in(40 << 10, 16 << 10)  # 56 KiB in all: opt in
    assert needs_shared_opt_in(0, 64 << 10)


@pytest.mark.requires_ptxas
def test_the_hold_kernel_assembles_for_every_target() -> None:
    """The spin kernel the event timing queues behind is valid PTX for sm_80 and sm_90."""
    from chronos.assemble import assemble
    from chronos.measure.harness.cupy_harness import HOLD_PTX

    for arch in ("sm_80", "sm_90"):
        assert assemble(HOLD_PTX, arch).resources["chronos_hold"].registers > 0
