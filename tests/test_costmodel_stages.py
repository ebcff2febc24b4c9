"""Each stage of the `emulated` cost model on its own (chronos/measure/costmodel/):
issue (`warp.walk`), memory hierarchy (`caches.simulate_caches`), occupancy and waves
(`wave.residency`, `wave.wave_parts`) and the combine (`wave.combine`, `wave.span`).

The end-to-end figures are held by tests/test_costmodel.py and tests/test_physics.py; these
pin what each stage promises to the next, on our own microbenchmark kernels."""

from __future__ import annotations

import numpy as np
import pytest

from chronos.arch import arch_profile
from chronos.measure.backends.emulated import EmulatedBackend, _sass
from chronos.measure.costmodel import _service
from chronos.measure.costmodel.caches import simulate_caches
from chronos.measure.costmodel.warp import counts_per_sass, issue_cycles, sass_class, walk
from chronos.measure.costmodel.wave import (
    BLOCK_TURNAROUND_CYCLES,
    WarpWork,
    combine,
    residency,
    span,
    wave_parts,
)
from tests.helpers import registry
from tests.helpers.physics_kernels import l1_spec, stream_spec

PROF = arch_profile("sm_90")


def _run(spec):  # type: ignore[no-untyped-def]
    """(program, trace, sass, warp executions per PTX pc) of `spec`'s small problem."""
    backend = EmulatedBackend(arch="sm_90")
    with registry.registered(spec):
        rep = backend.report(spec, spec.ptx())
    assert rep.valid, rep.error
    run = rep.verify.run
    sass = _sass(backend_cubin(backend, spec), spec.entry, "sm_90")
    pcs = np.asarray(run.trace.pcs, np.int64)
    execs = np.bincount(
        pcs, weights=run.trace.warp_activity().sum(1), minlength=len(run.program.ops)
    )
    return run.program, run.trace, sass, execs


def backend_cubin(backend: EmulatedBackend, spec) -> bytes:  # type: ignore[no-untyped-def]
    from chronos.assemble import assemble
    from chronos.assemble.disasm import with_line_info

    return assemble(with_line_info(spec.ptx()), backend.target, extra_args=("-lineinfo",)).cubin


@pytest.fixture(scope="module")
def stream():  # type: ignore[no-untyped-def]
    """gpu-benches' `read` stream: every thread reads its own elements once."""
    return _run(stream_spec("read", 256, PROF))


# --- stage 1: issue ---------------------------------------------------------------------------


def test_walk_issue_is_the_sum_of_its_instructions_and_latency_is_monotone(stream) -> None:  # type: ignore[no-untyped-def]
    program, trace, sass, execs = stream
    counts, sass_pc = counts_per_sass(sass, program, execs / trace.n_warps)
    zeros = np.zeros(len(sass))
    fast = walk(sass, counts, sass_pc, program, PROF, zeros, np.ones(len(sass)), zeros)
    want = sum(
        c * issue_cycles(sass_class(i.opcode), PROF)
        for i, c in zip(sass, counts, strict=True)
        if c > 0 and sass_class(i.opcode) != "nop"
    )
    assert fast.issue == pytest.approx(want)
    assert (
        fast.latency
        >= fast.sass_per_warp - counts[[sass_class(i.opcode) == "nop" for i in sass]].sum()
    )
    slow_lat = np.full(len(sass), 500.0)
    slow = walk(sass, counts, sass_pc, program, PROF, slow_lat, np.ones(len(sass)), zeros)
    assert slow.latency > fast.latency  # the loads' results are waited on
    assert slow.issue == fast.issue  # latency never changes the issue cycles
    twice = walk(sass, 2 * counts, sass_pc, program, PROF, zeros, np.ones(len(sass)), zeros)
    assert twice.issue == pytest.approx(2 * fast.issue)


# --- stage 2: memory hierarchy ----------------------------------------------------------------


def test_a_cold_stream_reads_every_sector_from_dram_once(stream) -> None:  # type: ignore[no-untyped-def]
    program, trace, _, _ = stream
    mem = simulate_caches(program, trace, PROF, 64 * 1024, 1 << 30, 1.0, "cold")
    assert mem.l1.sum() == 0 and mem.l2.sum() == 0
    assert mem.dram.sum() == mem.sectors.sum() == mem.distinct
    assert mem.dram_written == 0  # a read stream writes nothing back


def test_a_hot_l2_serves_a_footprint_that_fits(stream) -> None:  # type: ignore[no-untyped-def]
    program, trace, _, _ = stream
    small = simulate_caches(program, trace, PROF, 64 * 1024, 1 << 20, 1.0, "hot")
    assert small.l2.sum() == pytest.approx(small.sectors.sum())
    huge = simulate_caches(program, trace, PROF, 64 * 1024, 1 << 34, 1.0, "hot")
    assert huge.l2.sum() < 0.01 * huge.sectors.sum()  # 16 GiB: almost nothing stays


def test_l1_reuse_needs_the_capacity() -> None:
    """gpu-benches' L1 kernel re-reads a 16 kB block-private buffer: it hits in an L1 share
    that holds it, and misses in one a quarter its size (LRU over a cyclic sweep)."""
    program, trace, _, _ = _run(l1_spec(16, PROF.sms, 4))
    fits = simulate_caches(program, trace, PROF, 64 * 1024, 1 << 26, 1.0, "cold")
    tight = simulate_caches(program, trace, PROF, 4 * 1024, 1 << 26, 1.0, "cold")
    assert fits.l1.sum() / fits.sectors.sum() > 0.7
    assert tight.l1.sum() / tight.sectors.sum() < 0.05


def test_service_latency_follows_the_hit_level(stream) -> None:  # type: ignore[no-untyped-def]
    program, trace, sass, execs = stream
    _, sass_pc = counts_per_sass(sass, program, execs / trace.n_warps)
    mem = simulate_caches(program, trace, PROF, 64 * 1024, 1 << 30, 1.0, "cold")
    lat, _, _, dram = _service(program, trace, sass, sass_pc, execs, mem, 1.0, 300.0, PROF)
    loads = [i for i, s in enumerate(sass) if s.opcode.startswith("LDG")]
    assert loads
    for i in loads:  # all misses: at least the DRAM latency, all of it DRAM time
        assert lat[i] >= PROF.dram_latency
        assert dram[i] == pytest.approx(PROF.dram_latency)


# --- stage 3: occupancy and waves -------------------------------------------------------------


@pytest.mark.parametrize(
    ("threads", "regs", "smem", "blocks", "limiter"),
    [
        (256, 64, 0, 4, "registers"),  # 65536 / (64 x 256)
        (1024, 32, 0, 2, "warps"),  # 64 warps per SM
        (128, 16, 100 * 1024, 2, "shared"),  # 228 kB per SM, 1 kB reserved per block
        (32, 16, 0, 32, "blocks"),  # 32 blocks per SM
    ],
)
def test_residency_follows_the_occupancy_calculator(threads, regs, smem, blocks, limiter) -> None:  # type: ignore[no-untyped-def]
    res = residency(PROF, threads, regs, smem, PROF.sms * 40)
    assert (res.resident, res.limiter) == (blocks, limiter)
    assert res.per_sm == 40
    assert res.waves == divmod(40, blocks)


def test_a_small_grid_caps_residency_and_active_sms() -> None:
    res = residency(PROF, 256, 32, 0, 20)
    assert (res.resident, res.per_sm, res.active_sms) == (1, 1, 20)


def test_wave_parts_are_the_sm_share_of_each_peak() -> None:
    work = WarpWork(
        latency=1000.0,
        issue=10.0,
        lsu_units=8.0,
        l1_bytes=1024.0,
        l2_bytes=512.0,
        dram_bytes=4096.0,
        dram_efficiency=0.9,
    )
    parts = wave_parts(PROF, work, 32, PROF.sms)
    assert parts["latency"] == 1000.0 + BLOCK_TURNAROUND_CYCLES
    assert parts["issue"] == 32 / PROF.schedulers * 10.0
    assert parts["l1"] == pytest.approx(32 * 1024.0 / PROF.l1_bytes_per_clk)
    dram_per_sm = PROF.dram_bytes_per_clk / PROF.sms * 0.9
    assert parts["dram"] == pytest.approx(32 * 4096.0 / dram_per_sm)


# --- stage 4: the combine ---------------------------------------------------------------------


def test_combine_is_between_the_largest_part_and_the_sum() -> None:
    parts = {"latency": 100.0, "issue": 80.0, "lsu": 10.0, "l1": 5.0, "l2": 1.0, "dram": 60.0}
    for warps in (1, 4, 16, 64):
        t = combine(parts, warps, PROF.schedulers)
        assert max(parts.values()) <= t <= sum(parts.values())
    # more warps per scheduler overlap more: the wave gets shorter
    assert combine(parts, 64, 4) < combine(parts, 4, 4) < combine(parts, 1, 4)


def test_span_runs_the_busiest_sms_waves_one_after_the_other() -> None:
    work = WarpWork(
        latency=200.0,
        issue=10.0,
        lsu_units=1.0,
        l1_bytes=128.0,
        l2_bytes=128.0,
        dram_bytes=8192.0,
        dram_efficiency=0.9,
    )
    wpb = 8
    one = span(PROF, work, residency(PROF, 256, 32, 0, PROF.sms * 8), wpb)
    three = span(PROF, work, residency(PROF, 256, 32, 0, PROF.sms * 24), wpb)
    assert one[0] == pytest.approx(one[1])  # one full wave
    assert three[0] == pytest.approx(3 * three[1])
    assert one[2]["dram"] == max(one[2].values())  # a DRAM-bound wave
    assert one[1] >= one[2]["dram"]  # never faster than its DRAM bound
