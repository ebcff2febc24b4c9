"""The SASS-level cost model: line info, control codes, cache policies, occupancy and waves."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

import kernels
from chronos.arch import arch_profile
from chronos.assemble import assemble
from chronos.assemble.disasm import (
    control,
    find_nvdisasm,
    line_rows,
    mnemonic,
    nvdisasm_listing,
    sass_function,
    with_line_info,
)
from chronos.assemble.elf import sections
from chronos.emulate.verify import verify
from chronos.measure.backends.emulated import EmulatedBackend, _footprint, _sass
from chronos.measure.costmodel import (
    MODEL_VERSION,
    combine,
    dram_efficiency,
    estimate,
    policy,
    sass_class,
)
from chronos.transforms import apply_action
from tests.helpers.scripts import load_script


def _have(tool: str) -> bool:
    try:
        if tool == "ptxas":
            from chronos.assemble import find_ptxas

            find_ptxas()
        else:
            find_nvdisasm()
    except Exception:
        return False
    return True


requires_ptxas = pytest.mark.skipif(not _have("ptxas"), reason="needs ptxas")
requires_nvdisasm = pytest.mark.skipif(not _have("nvdisasm"), reason="needs nvdisasm")

SAMPLE = ("gemm_tile_2_2_2", "reduce_sum_f32_b256_i1_warp", "triton_add_fp16_b2048_w4")


def _sample() -> list[str]:
    ids = kernels.list_kernels()
    out = [k for k in SAMPLE if k in ids]
    for fam in ("softmax", "transpose", "elementwise"):
        out += kernels.list_kernels(fam)[:1]
    return out


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_line_info_leaves_the_sass_unchanged(arch: str) -> None:
    for kid in _sample():
        ptx = kernels.load(kid).ptx()
        plain = assemble(ptx, arch)
        lined = assemble(with_line_info(ptx), arch, extra_args=("-lineinfo",))
        assert lined.text_sha256 == plain.text_sha256, kid
        assert lined.resources == plain.resources, kid


@pytest.mark.requires_ptxas
def test_every_sass_instruction_names_an_instruction_line() -> None:
    spec = kernels.load("gemm_tile_4_6_8")
    ptx = spec.ptx()
    asm = assemble(with_line_info(ptx), "sm_90", extra_args=("-lineinfo",))
    sass = sass_function(asm.cubin, spec.entry, "sm_90")
    assert len(sass) == asm.sass_instructions[spec.entry]
    lines = ptx.splitlines()
    mapped = [i for i in sass if i.ptx_line is not None]
    assert len(mapped) == len(sass)
    for ins in mapped:
        text = lines[ins.ptx_line - 1].strip()  # type: ignore[operator]
        assert text and not text.startswith((".", "//")) and text.endswith(";"), text


def test_with_line_info_rejects_ptx_without_address_size() -> None:
    with pytest.raises(ValueError, match="address_size"):
        with_line_info(".version 8.0\n.target sm_80\n")


@pytest.mark.requires_ptxas
@requires_nvdisasm
def test_decoder_agrees_with_nvdisasm() -> None:
    """Opcode names, control bits and PTX lines read from the bytes match nvdisasm's."""
    spec = kernels.load("gemm_tile_2_4_6")
    asm = assemble(with_line_info(spec.ptx()), "sm_89", extra_args=("-lineinfo",))
    sass = sass_function(asm.cubin, spec.entry, "sm_89")
    listing = nvdisasm_listing(asm.cubin)[spec.entry]
    assert [i.opcode for i in sass] == [mnemonic(t) for _, t, _, _ in listing][: len(sass)]
    assert [(i.word0, i.word1) for i in sass] == [(w0, w1) for *_, w0, w1 in listing][: len(sass)]
    # Loads set write scoreboards (shared loads complete in order, so ptxas may set one on
    # the last of a run only) and their consumers wait on them.
    for op in ("LDG", "LDS"):
        assert any(i.control.write_sb < 6 for i in sass if i.opcode == op), op
    assert any(i.control.wait_mask for i in sass if i.opcode == "FFMA")
    dbg = next(s.data for s in sections(asm.cubin) if s.name == ".debug_line")
    assert sum(len(seq) for seq in line_rows(dbg)) > len(sass) // 4


def test_control_bits() -> None:
    # stall 5, yield, write sb 1, read sb 7 (none), wait mask 0b000011, reuse 0
    bits = 5 | 1 << 4 | 1 << 5 | 7 << 8 | 0b11 << 11
    c = control(bits << 41)
    assert (c.stall, c.yield_, c.write_sb, c.read_sb, c.wait_mask, c.reuse) == (
        5,
        True,
        1,
        7,
        3,
        0,
    )


def test_opcode_table_families() -> None:
    from chronos.assemble.disasm import _family

    assert _family("sm_80") == _family("sm_89") == "sm_8"
    assert _family("sm_90a") == "sm_9"
    assert _family("sm_100") == "sm_100" and _family("sm_75") == "sm_75"


def test_cache_policies_from_qualifiers() -> None:
    assert policy("ld.global.f32 %f1, [%rd1];", "ld.global").l1_allocate
    cg = policy("ld.global.cg.f32 %f1, [%rd1];", "ld.global")
    assert not cg.l1_lookup and not cg.l1_allocate
    assert policy("ld.global.cs.f32 %f1, [%rd1];", "ld.global").l1_priority == "first"
    assert policy("ld.global.L1::evict_last.f32 %f1, [%rd1];", "ld.global").l1_priority == "last"
    assert not policy("ld.global.L1::no_allocate.f32 %f1, [%rd1];", "ld.global").l1_allocate
    assert policy("ld.global.L2::256B.f32 %f1, [%rd1];", "ld.global").l2_prefetch_bytes == 256
    st = policy("st.global.cs.f32 [%rd1], %f1;", "st.global")
    assert st.store and not st.l1_allocate and st.l2_priority == "first"
    assert policy("prefetch.global.L2 [%rd1];", "prefetch").prefetch
    assert sass_class("FFMA") == "fp32" and sass_class("LDGSTS") == "cp.async"
    assert sass_class("IADD3") == "alu"


@pytest.fixture(scope="module")
def backend() -> EmulatedBackend:
    return EmulatedBackend(arch="sm_89")


@pytest.mark.requires_ptxas
def test_l1_bypass_costs_when_loads_reuse_sectors(backend: EmulatedBackend) -> None:
    """gemm_tile_4_6_8's four scalar loads per row reuse each other's sectors in L1; `.cg`
    sends them to L2, which costs; the vectorized kernel has no such reuse to lose."""
    spec = kernels.load("gemm_tile_4_6_8")
    base = spec.ptx()
    cg = apply_action(spec, base, "ld_cg")
    assert cg.changed
    a, b = backend.report(spec, base).cost, backend.report(spec, cg.ptx).cost
    assert a is not None and b is not None
    assert b.l1_hit_rate < a.l1_hit_rate and b.estimate > a.estimate
    assert a.l1_hit_rate > 0.5 and b.l1_hit_rate < 0.2


@pytest.mark.requires_ptxas
def test_fewer_resident_warps_cost(backend: EmulatedBackend) -> None:
    """Same SASS and trace, fewer blocks per SM (more registers): more waves, a longer span."""
    spec = kernels.load("elementwise_saxpy_256_4")
    ptx = spec.ptx()
    v = verify(spec, ptx, trace=True)
    assert v.ok and v.run is not None and v.run.trace is not None
    asm = assemble(with_line_info(ptx), "sm_89", extra_args=("-lineinfo",))
    sass = _sass(asm.cubin, spec.entry, "sm_89")
    full = spec.problem("full")
    blocks = full.grid[0] * full.grid[1] * full.grid[2]
    kw = dict(
        arch="sm_89",
        shared_bytes=0,
        total_blocks=blocks,
        footprint_bytes=float(_footprint(spec, full)),
        emulated_footprint_bytes=float(_footprint(spec, spec.problem("small"))),
    )
    threads = v.run.block[0]
    low = estimate(v.run.program, v.run.trace, sass, threads, registers=32, **kw)
    high = estimate(v.run.program, v.run.trace, sass, threads, registers=255, **kw)
    assert high.resident_blocks < low.resident_blocks
    assert high.waves > low.waves
    assert high.estimate > low.estimate
    # A DRAM-bound span follows the bytes: twice the grid on the same buffers costs about the
    # same, twice the grid on twice the data at least twice as much.
    same = estimate(
        v.run.program, v.run.trace, sass, threads, registers=32, **dict(kw, total_blocks=2 * blocks)
    )
    assert same.estimate == pytest.approx(low.estimate, rel=0.15)
    kw2 = dict(kw, total_blocks=2 * blocks, footprint_bytes=2 * kw["footprint_bytes"])
    twice = estimate(v.run.program, v.run.trace, sass, threads, registers=32, **kw2)
    # (about twice: a cold launch writes back every written sector, so the DRAM bytes double
    # with the data; the last partial wave rounds)
    assert 1.95 * low.estimate <= twice.estimate <= 2.5 * low.estimate


def _bench() -> Any:
    return load_script("benchmarks/costmodel.py", "bench_costmodel")


@pytest.mark.requires_ptxas
def test_memory_bound_vectorization_gains_little(backend: EmulatedBackend, tmp_path: Path) -> None:
    """A DRAM-bound vector add: vec_ld + vec_st quarter its memory instructions (the old
    model gave exactly 4x), but the bytes DRAM must deliver, which bound it, stay the same."""
    bench = _bench()
    spec = bench.vadd4_spec(tmp_path / "vadd4.ptx")
    base = spec.ptx()
    ptx = base
    for name in ("vec_ld", "vec_st"):
        res = apply_action(spec, ptx, name)
        assert res.changed, (name, res.reason)
        ptx = res.ptx
    a, b = backend.report(spec, base), backend.report(spec, ptx)
    assert a.valid and b.valid, (a.error, b.error)
    assert a.cost is not None and b.cost is not None
    assert a.cost.bound == "dram"
    assert b.cost.counts["ld.global"] * 4 == pytest.approx(a.cost.counts["ld.global"])
    assert 0.0 <= a.cost.estimate / b.cost.estimate - 1.0 < 0.25


@pytest.mark.requires_ptxas
def test_l2_fetch_granularity_moves_a_streaming_kernel(backend: EmulatedBackend) -> None:
    """matvec_row streams a footprint far larger than L2: `L2::256B` fetches 256-byte chunks
    whose other sectors are evicted before the thread comes back to them (more DRAM bytes).
    On gemm_tile_4_6_8 with a cold L2 (the harness's default) the chunk's other sectors,
    which the tile reads anyway, arrive with the first miss: the same DRAM bytes, more L2
    hits, but the tile's back-to-back loads wait for that fill still in flight, so no shorter
    warp latency (`emulated-cost-4` served them at the L2 latency); with a hot L2 the buffers
    stay resident between launches and it changes nothing."""
    spec = kernels.load("matvec_row_f32_128_1")
    res = apply_action(spec, spec.ptx(), "ld_l2_256B")
    assert res.changed
    a, b = backend.report(spec, spec.ptx()).cost, backend.report(spec, res.ptx).cost
    assert a is not None and b is not None
    assert b.dram_bytes_per_warp > a.dram_bytes_per_warp and b.estimate > a.estimate
    gemm = kernels.load("gemm_tile_4_6_8")
    res = apply_action(gemm, gemm.ptx(), "ld_l2_256B")
    c, d = backend.report(gemm, gemm.ptx()).cost, backend.report(gemm, res.ptx).cost
    assert c is not None and d is not None
    assert c.dram_bytes_per_warp == pytest.approx(d.dram_bytes_per_warp) and c.dram_bytes_per_warp
    assert d.l2_hit_rate > c.l2_hit_rate and d.latency >= c.latency
    hot = EmulatedBackend(arch="sm_89", l2="hot")
    e, f = hot.report(gemm, gemm.ptx()).cost, hot.report(gemm, res.ptx).cost
    assert e is not None and f is not None
    assert e.dram_bytes_per_warp == f.dram_bytes_per_warp == 0.0
    assert e.estimate < c.estimate  # first touches from DRAM cost


@pytest.mark.requires_ptxas
def test_l2_mode_is_part_of_the_key_and_checked() -> None:
    from chronos.measure.backends.cupy import CupyBackend

    assert "l2" in EmulatedBackend.config_fields and "l2" in CupyBackend.config_fields
    import inspect

    default = inspect.signature(CupyBackend).parameters["l2"].default
    assert EmulatedBackend().l2 == default == "cold"
    with pytest.raises(ValueError, match="l2 must be one of"):
        EmulatedBackend(l2="warm")
    spec = kernels.load("gemm_tile_2_2_2")
    m = EmulatedBackend(arch="sm_89", l2="hot").measure(spec, spec.ptx())
    assert m.valid and m.extra["l2"] == "hot"


@pytest.mark.requires_ptxas
def test_prefetch_fills_l2_in_the_trace(backend: EmulatedBackend) -> None:
    """prefetch.global.L2 records its lines in the trace: with a cold L2 the rows it
    prefetches are in L2 for the loads that follow (more L2 hits), its own requests bring no
    data to the SM (the L2 bound is the same), and loads right behind it wait for its fill
    (no shorter latency: a prefetch buys time only when issued a DRAM latency ahead)."""
    spec = kernels.load("gemm_tile_4_6_8")
    res = apply_action(spec, spec.ptx(), "prefetch_l2")
    assert res.changed
    v = verify(spec, res.ptx, trace=True)
    assert v.ok and v.run is not None and v.run.trace is not None
    tr, prog = v.run.trace, v.run.program
    pf = {op.index for op in prog.ops if op.text.startswith("prefetch")}
    assert pf and any(tr.pcs[step] in pf for step, _ in tr.sectors)
    a, b = backend.report(spec, spec.ptx()).cost, backend.report(spec, res.ptx).cost
    assert a is not None and b is not None
    assert b.l2_hit_rate > a.l2_hit_rate and b.latency >= a.latency
    assert b.l2_bound == a.l2_bound and b.dram_bytes_per_warp == pytest.approx(
        a.dram_bytes_per_warp
    )


def test_width_ratio_counts_wavefronts_at_the_sass_width() -> None:
    """Four scalar loads at a 16-byte lane stride take 4 wavefronts each (4-way conflicts);
    the LDS.128 that replaces them takes 4 in all (ratio 1 to one of them), the saving is the
    three instructions gone. A 32-byte stride conflicts 8 ways at 4, 8 and 16 bytes alike."""
    import numpy as np

    from chronos.emulate.trace import Trace

    tr = Trace(n_warps=1, warps_per_block=1)
    lanes = np.arange(32)
    tr.step(0, None)
    tr.memory(".shared", lanes * 16, lanes, 4)
    tr.step(1, None)
    tr.memory(".shared", lanes * 32 + 4, lanes, 4)
    assert tr.mem[0].wavefronts[0] == 4 and tr.mem[1].wavefronts[0] == 8
    assert tr.width_ratio(0, 16) == 1.0 and tr.width_ratio(0, 8) == 1.0
    assert tr.width_ratio(1, 8) == tr.width_ratio(1, 16) == 1.0
    # Widened lanes that overlap share their words: 4-byte lanes 0-3 inside one 16-byte
    # block read 8 blocks x 4 words, one wavefront, as the scalar load did.
    tr.step(2, None)
    tr.memory(".shared", lanes * 4, lanes, 4)
    assert tr.width_ratio(2, 16) == 1.0
    assert tr.width_ratio(7, 16) == 1.0  # no access recorded


@pytest.mark.requires_ptxas
@requires_nvdisasm
@pytest.mark.parametrize("arch", ["sm_89", "sm_90"])
def test_access_width_agrees_with_nvdisasm(arch: str) -> None:
    """The size field read from the bytes names nvdisasm's .64/.128 suffixes."""
    spec = kernels.load("gemm_tile_4_6_8")
    seen = set()
    for ptx in (spec.ptx(), apply_action(spec, spec.ptx(), "vec_ld").ptx):
        asm = assemble(ptx, arch)
        sass = sass_function(asm.cubin, spec.entry, arch)
        listing = nvdisasm_listing(asm.cubin)[spec.entry]
        for ins, (_, text, _, _) in zip(sass, listing, strict=False):
            if ins.access_bytes is None:
                continue
            head = text.split()[1] if text.startswith("@") else text.split()[0]
            want = 16 if head.endswith(".128") else 8 if head.endswith(".64") else 4
            assert ins.access_bytes == want, (text, ins.access_bytes)
            seen.add((ins.opcode, want))
    assert {("LDS", 8), ("LDG", 4), ("LDG", 8), ("LDG", 16), ("STS", 16)} <= seen


@pytest.mark.requires_ptxas
def test_shared_wavefronts_follow_the_sass_widths(backend: EmulatedBackend) -> None:
    """gemm_tile_4_6_8 on sm_89: ptxas merges the PTX's scalar shared loads into LDS.64 and
    LDS.128, so the SASS's wavefronts are fewer than the PTX instructions' sum."""
    spec = kernels.load("gemm_tile_4_6_8")
    rep = backend.report(spec, spec.ptx())
    assert rep.cost is not None and rep.verify is not None and rep.verify.run is not None
    tr = rep.verify.run.trace
    assert tr is not None
    ptx_level = sum(float(ms.wavefronts.sum()) for ms in tr.mem.values()) / tr.n_warps
    assert 0 < rep.cost.shared_wavefronts_per_warp < 0.8 * ptx_level


@pytest.mark.requires_ptxas
def test_estimate_is_deterministic_and_labelled(backend: EmulatedBackend) -> None:
    spec = kernels.load("gemm_tile_2_2_2")
    a = backend.measure(spec, spec.ptx())
    b = EmulatedBackend(arch="sm_89").measure(spec, spec.ptx() + "\n")
    assert a.valid and a.estimate and "estimate" in a.device
    assert a.harness_version == MODEL_VERSION == "emulated-cost-6"
    assert a.cycles == b.cycles and a.extra["model"] == MODEL_VERSION


def test_arch_profiles_have_memory_figures() -> None:
    for arch in ("sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_120", "h100_pcie", "h200"):
        p = arch_profile(arch)
        assert p.l1_latency < p.l2_latency < p.dram_latency
        assert 0 < p.dram_bytes_per_clk < p.sms * p.l2_bytes_per_clk_per_sm
        assert p.l1_shared_bytes >= p.shared_per_sm
    assert dataclasses.is_dataclass(arch_profile("sm_90"))
    assert re.match(r"sm_90", arch_profile("sm_90a").name)


def test_dram_efficiency_follows_the_measured_plateaus() -> None:
    """Pure reads and writes reach their measured plateaus; a mixed bus pays turnarounds,
    most at 1:1 (gpu-benches: scale 84-89% < triad 87-90% < read 95-96%)."""
    p = arch_profile("h100_pcie")
    read, write = dram_efficiency(p, 1, 0), dram_efficiency(p, 0, 1)
    scale, triad = dram_efficiency(p, 1, 1), dram_efficiency(p, 2, 1)
    assert read == pytest.approx(p.dram_read_efficiency)
    assert write == pytest.approx(p.dram_write_efficiency)
    assert 0.80 < scale < triad < read < 1.0
    assert dram_efficiency(p, 0, 0) == p.dram_read_efficiency


def test_combine_never_beats_its_largest_part() -> None:
    """The wave takes at least its largest bound (no roofline is ever beaten) and every part
    adds a little; with more warps per scheduler the overlap is closer to perfect."""
    parts = {"latency": 1000.0, "issue": 400.0, "dram": 900.0}
    few, many = combine(parts, 4, 4), combine(parts, 64, 4)
    assert 1000.0 < many < few < sum(parts.values())


@pytest.mark.requires_ptxas
def test_design_chain_order_holds_where_latency_bounds_the_kernel() -> None:
    """The design's L4 steps on gemm_tile_4_6_8 (maxnreg_128, vec_ld, vec_st) were measured
    as per-warp clock64 spans; over a grid of one block per SM (latency-bound) the model
    gives their order, maxnreg_128 first by most. Over the full grid, 12 waves of 4 blocks
    bound by shared-memory and L1 throughput, every step still lowers the estimate."""
    bench = _bench()
    bench._init("sm_89")
    few = bench.chain_steps("sm_89", "small")
    assert bench.chain_ordered(few), few
    full = bench.chain_steps("sm_89", "full")
    assert all(rel < 0 for _, _, rel in full[1:]), full


@pytest.mark.requires_ptxas
def test_a_warp_of_the_full_problem_does_its_share_of_the_partitioned_buffers(
    backend: EmulatedBackend,
) -> None:
    """The trace is the small problem's: a grid-stride saxpy's thread there handles 16
    elements, on the full grid (2^24 elements, 4224 blocks) 31, and on half that grid 62;
    its issue and latency follow, and the DRAM bytes per warp with them. A gemm tile's
    warps share A and B and own the same C tile on both problems: no scaling."""
    spec = kernels.load("elementwise_saxpy_128_1")
    full = spec.problems["full"]
    half = dataclasses.replace(full, grid=(full.grid[0] // 2, 1, 1))
    spec2 = dataclasses.replace(spec, problems={**spec.problems, "full": half})
    a, b = backend.report(spec, spec.ptx()).cost, backend.report(spec2, spec.ptx()).cost
    assert a is not None and b is not None
    n, warps = 1 << 24, full.grid[0] * 4
    assert a.work_scale == pytest.approx((n / warps) / (4096 / 8), rel=1e-3)
    assert b.work_scale == pytest.approx(2 * a.work_scale, rel=1e-3)
    assert b.issue_bound == pytest.approx(2 * a.issue_bound, rel=1e-3)
    # (the latency part also holds the block turnaround and the DRAM queue at each one's load)
    assert b.latency == pytest.approx(2 * a.latency, rel=0.05)
    assert b.dram_bytes_per_warp == pytest.approx(2 * a.dram_bytes_per_warp, rel=1e-3)
    gemm = kernels.load("gemm_tile_4_6_8")
    c = backend.report(gemm, gemm.ptx()).cost
    assert c is not None and c.work_scale == 1.0
