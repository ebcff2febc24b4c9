"""A deterministic cycle ESTIMATE from the SASS ptxas produced and the emulator's trace.

This is a model, not a measurement. It estimates what the `cupy` harness measures: the
kernel's span on the busiest SM over the whole "full" grid (all its waves). It runs in four
stages, one module each; the equations, constants and their sources are in docs/emulator.md:

1. **Issue** (`warp`): the SASS, each instruction executed as often per warp as its PTX line
   in the emulated "small" problem, walked in order under ptxas's control codes: one warp's
   latency alone, its issue cycles and its LSU work.
2. **Memory hierarchy** (`caches`): L1 and L2 hits from the trace's 32-byte sectors under each
   access's cache policy; DRAM reads and write-backs; each load's latency from where it hits.
3. **Occupancy and waves** (`wave`): resident blocks from the occupancy calculator, the full
   problem's per-warp work (`work_scale`), the wave's bounds: latency (plus the block
   turnaround), issue, LSU, L1/shared, L2 and DRAM at the profile's measured peaks.
4. **Combine** (`wave.combine`): a p-norm of the parts per wave, never below the largest, and
   the busiest SM's waves one after the other.

Every bound is a peak the hardware publishes or a measured plateau (gpu-benches), so no
estimate implies more DRAM bytes/s, FLOP/s or shared bytes/cycle than the silicon gives; the
latency part alone carries Little's law.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chronos.arch import ArchProfile, arch_profile
from chronos.assemble.disasm import SassInstruction
from chronos.emulate.program import Program
from chronos.emulate.trace import Trace
from chronos.measure.costmodel.caches import (
    L2_LINE_BYTES,
    L2_USABLE_FRACTION,
    REPLAY_CYCLES,
    MemFigures,
    Policy,
    l2_hit_latency,
    policy,
    simulate_caches,
)
from chronos.measure.costmodel.warp import (
    BARRIER_CYCLES,
    ISSUE_CYCLES,
    MEMORY_CLASSES,
    SASS_CLASS,
    WarpFigures,
    counts_per_sass,
    sass_class,
    walk,
)
from chronos.measure.costmodel.wave import (
    BLOCK_TURNAROUND_CYCLES,
    DRAM_QUEUE,
    PARTITIONED_SHARING,
    SMOOTH_MAX_P_MAX,
    Residency,
    WarpWork,
    combine,
    dram_efficiency,
    residency,
    span,
    wave_parts,
    work_scale,
)
from chronos.measure.launch import L2_MODES

MODEL_VERSION = "emulated-cost-6"

__all__ = [
    "BARRIER_CYCLES",
    "BLOCK_TURNAROUND_CYCLES",
    "DRAM_QUEUE",
    "ISSUE_CYCLES",
    "L2_LINE_BYTES",
    "L2_USABLE_FRACTION",
    "MODEL_VERSION",
    "PARTITIONED_SHARING",
    "REPLAY_CYCLES",
    "SASS_CLASS",
    "SMOOTH_MAX_P_MAX",
    "CostEstimate",
    "Policy",
    "combine",
    "dram_efficiency",
    "estimate",
    "policy",
    "sass_class",
    "wave_parts",
    "work_scale",
]


@dataclass
class CostEstimate:
    """The estimate and its parts, in model cycles (see the module docstring)."""

    estimate: float
    wave: float
    waves: int
    latency: float
    issue_bound: float
    lsu_bound: float
    l1_bound: float
    l2_bound: float
    dram_bound: float
    bound: str
    resident_blocks: int
    occupancy: float
    occupancy_limiter: str
    l1_hit_rate: float
    l2_hit_rate: float
    dram_bytes_per_warp: float
    sass_per_warp: float
    shared_wavefronts_per_warp: float = 0.0
    work_scale: float = 1.0
    dram_efficiency: float = 1.0
    """The share of the DRAM peak this read/write mix reaches (wave.dram_efficiency)."""
    counts: dict[str, float] = field(default_factory=dict)
    sectors_per_request: float = 0.0
    """32-byte sectors per warp-level global access: 4 for a coalesced 4-byte access, 32 when
    every lane of a 4-byte access lands in its own sector (coalescing, for the features)."""
    accesses_per_sector: float = 0.0
    """Sector accesses per distinct sector the small problem touched: 1 is a pure stream, more
    is reuse a cache can catch (for the features)."""
    arch: str = ""
    version: str = MODEL_VERSION

    def as_dict(self) -> dict[str, object]:
        return {
            "estimate": self.estimate,
            "wave": self.wave,
            "waves": self.waves,
            "latency": self.latency,
            "issue_bound": self.issue_bound,
            "lsu_bound": self.lsu_bound,
            "l1_bound": self.l1_bound,
            "l2_bound": self.l2_bound,
            "dram_bound": self.dram_bound,
            "bound": self.bound,
            "resident_blocks": self.resident_blocks,
            "occupancy": self.occupancy,
            "occupancy_limiter": self.occupancy_limiter,
            "l1_hit_rate": self.l1_hit_rate,
            "l2_hit_rate": self.l2_hit_rate,
            "dram_bytes_per_warp": self.dram_bytes_per_warp,
            "sass_per_warp": self.sass_per_warp,
            "shared_wavefronts_per_warp": self.shared_wavefronts_per_warp,
            "work_scale": self.work_scale,
            "dram_efficiency": self.dram_efficiency,
            "counts_per_warp": dict(self.counts),
            "sectors_per_request": self.sectors_per_request,
            "accesses_per_sector": self.accesses_per_sector,
            "arch": self.arch,
            "model": self.version,
        }


def _static_shared(program: Program) -> int:
    return sum(v.size for v in program.variables if v.space == ".shared")


_FIXED_VARIABLE = {
    "sfu": "sfu_latency",
    "conv": "sfu_latency",
    "s2r": "s2r_latency",
    "shfl": "shfl_latency",
    "mma": "mma_latency",
    "ld.const": "const_latency",
    "st.shared": "shared_latency",
}
"""Variable-latency classes outside the global memory path -> their profile latency."""


def _service(
    program: Program,
    trace: Trace,
    sass: list[SassInstruction],
    sass_pc: list[int | None],
    execs: np.ndarray,
    mem: MemFigures,
    dram_scale: float,
    l2_latency: float,
    prof,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per SASS instruction: its result latency, LSU units and shared wavefronts per execution,
    and the DRAM cycles within that latency (what the DRAM queue lengthens). `execs`: warp
    executions per PTX pc.

    A load's latency mixes L1, L2 and DRAM by its hit rates (its DRAM share shrunk by
    `dram_scale`: the rest hits data another block of the full grid fetched) plus
    REPLAY_CYCLES per extra line; its PTX line's transactions are re-counted at the SASS's own
    access width (ptxas merges scalar LDS/LDG into .64/.128 forms)."""
    ops = program.ops
    n = len(ops)
    pcs = np.asarray(trace.pcs, np.int64)
    units = np.zeros(n)
    waves = np.zeros(n)
    if trace.mem:
        steps = np.fromiter(trace.mem.keys(), np.int64, len(trace.mem))
        stats = list(trace.mem.values())
        at = np.repeat(pcs[steps], [len(ms.lines) for ms in stats])
        lines = np.concatenate([ms.lines for ms in stats]).astype(float)
        fronts = np.concatenate([ms.wavefronts for ms in stats]).astype(float)
        units = np.bincount(at, weights=lines + fronts, minlength=n)
        waves = np.bincount(at, weights=fronts, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        units_per = np.where(execs > 0, units / np.maximum(execs, 1), 1.0)
        waves_per = np.where(execs > 0, waves / np.maximum(execs, 1), 0.0)
        acc = np.maximum(mem.sectors, 1e-9)
        touched = mem.sectors > 0
        waits = mem.inflight if mem.inflight is not None else np.zeros(n)
        f_l1 = np.where(touched, mem.l1 / acc, 0.0)
        f_dram = np.where(touched, (mem.dram + waits) / acc, 0.0)
        f_l2 = np.where(touched, (mem.l2 - waits) / acc, 1.0) + f_dram * (1.0 - dram_scale)
        f_dram = f_dram * dram_scale
    dram_lat = f_dram * prof.dram_latency
    global_lat = f_l1 * prof.l1_latency + f_l2 * l2_latency + dram_lat
    lat = np.zeros(len(sass))
    dram = np.zeros(len(sass))
    lsu = np.ones(len(sass))
    shared = np.zeros(len(sass))
    for i, ins in enumerate(sass):
        cls = sass_class(ins.opcode)
        pc = sass_pc[i]
        ratio = 1.0
        if ins.access_bytes is not None and pc is not None:
            ratio = trace.width_ratio(pc, ins.access_bytes)
        u = float(units_per[pc] * ratio) if pc is not None else 1.0
        lsu[i] = u
        if pc is not None:
            shared[i] = float(waves_per[pc] * ratio)
        replay = REPLAY_CYCLES * max(0.0, u - 1)
        if cls in ("ld.local", "st.local"):
            lat[i] = prof.l1_latency
        elif cls == "ld.shared":
            lat[i] = prof.shared_latency + replay
        elif cls in MEMORY_CLASSES:
            if pc is not None and mem.sectors[pc] > 0:
                lat[i] = global_lat[pc] + replay
                dram[i] = dram_lat[pc]
            else:
                lat[i] = l2_latency + replay
        elif cls == "membar":
            lat[i] = l2_latency
        elif cls == "fp64":
            lat[i] = 2 * prof.sfu_latency
        else:
            attr = _FIXED_VARIABLE.get(cls)
            lat[i] = getattr(prof, attr) if attr else 0.0
    return lat, lsu, shared, dram


@dataclass(frozen=True)
class _Dram:
    """The full problem's DRAM traffic per warp, and what follows from it."""

    scale: float
    """work_scale: how many times a small-problem warp's work a full-problem warp does."""
    bytes_per_warp: float
    share: float
    """The share of the small problem's DRAM misses that stay misses on the full problem
    (the rest hit data another block of the full grid fetched)."""
    efficiency: float


def _dram(
    mem: MemFigures,
    trace: Trace,
    prof: ArchProfile,
    buffers: dict[str, tuple[int, int, int]],
    full_warps: int,
    footprint_bytes: float,
    emulated_footprint_bytes: float,
) -> _Dram:
    """The small problem's blocks share less data than the full grid's, so its per-warp
    traffic would overstate the full problem's: scale the full problem's footprint by the
    fraction of its buffers the small problem touched and by the small problem's DRAM traffic
    per distinct sector (>1 with capacity misses or L2::256B over-fetch)."""
    n_warps = max(1, trace.n_warps)
    scale = work_scale(trace, buffers, full_warps)
    small = mem.dram_total * 32.0 / n_warps * scale
    if footprint_bytes > 0 and emulated_footprint_bytes > 0 and mem.distinct > 0:
        touched = min(1.0, mem.distinct * 32.0 / emulated_footprint_bytes)
        per_warp = footprint_bytes * touched * (mem.dram_total / mem.distinct) / full_warps
    else:
        per_warp = small
    written = mem.dram_written / mem.dram_total if mem.dram_total > 0 else 0.0
    return _Dram(
        scale=scale,
        bytes_per_warp=per_warp,
        share=min(1.0, per_warp / small) if small > 0 else 1.0,
        efficiency=dram_efficiency(prof, 1.0 - written, written),
    )


def _warp_work(
    program: Program,
    trace: Trace,
    sass: list[SassInstruction],
    execs: np.ndarray,
    mem: MemFigures,
    dram: _Dram,
    footprint_bytes: float,
    prof: ArchProfile,
) -> tuple[WarpWork, WarpFigures]:
    """Stage 1 with stage 2's latencies: one warp alone (and again with every DRAM access at
    its fully loaded latency), scaled to a full-problem warp's work."""
    n_warps = max(1, trace.n_warps)
    counts, sass_pc = counts_per_sass(sass, program, execs / n_warps)
    l2_lat = l2_hit_latency(prof, footprint_bytes)
    lat, lsu, shared, dram_cycles = _service(
        program, trace, sass, sass_pc, execs, mem, dram.share, l2_lat, prof
    )
    warp = walk(sass, counts, sass_pc, program, prof, lat, lsu, shared)
    loaded = warp.latency
    if mem.dram_total > 0:
        lat_q = lat + DRAM_QUEUE * dram_cycles
        loaded = walk(sass, counts, sass_pc, program, prof, lat_q, lsu, shared).latency
    scale = dram.scale
    work = WarpWork(
        latency=warp.latency * scale,
        latency_loaded=loaded * scale,
        issue=warp.issue * scale,
        lsu_units=warp.lsu_units * scale,
        l1_bytes=mem.l1_total / n_warps * scale * 32.0 + warp.shared_units * scale * 128.0,
        l2_bytes=mem.l2_total / n_warps * scale * 32.0,
        dram_bytes=dram.bytes_per_warp,
        dram_efficiency=dram.efficiency,
    )
    return work, warp


def estimate(
    program: Program,
    trace: Trace,
    sass: list[SassInstruction],
    threads_per_block: int,
    arch: str = "sm_90",
    registers: int = 0,
    shared_bytes: int | None = None,
    total_blocks: int | None = None,
    footprint_bytes: float = 0.0,
    emulated_footprint_bytes: float = 0.0,
    l2: str = "cold",
    buffers: dict[str, tuple[int, int, int]] | None = None,
) -> CostEstimate:
    """Estimate the busiest SM's span over the full grid (see the module docstring); `l2`
    is the `cupy` harness's L2 mode being estimated ("cold": flushed before the launch);
    `buffers` (name -> base address, small bytes, full bytes) sets `work_scale`."""
    if l2 not in L2_MODES:
        raise ValueError(f"l2 must be one of {L2_MODES}, got {l2!r}")
    prof = arch_profile(arch)
    n_warps = max(1, trace.n_warps)
    wpb = trace.warps_per_block
    pcs = np.asarray(trace.pcs, np.int64)
    execs = (
        np.bincount(pcs, weights=trace.warp_activity().sum(1), minlength=len(program.ops))
        if len(pcs)
        else np.zeros(len(program.ops))
    )

    # Stage 3a: occupancy (it sets each block's L1 share for stage 2).
    smem = shared_bytes if shared_bytes is not None else _static_shared(program)
    blocks = total_blocks if total_blocks is not None else n_warps // wpb
    res = residency(prof, threads_per_block, registers, smem, blocks)
    l1_data = max(prof.l1_shared_bytes - res.resident * smem, 16 * 1024)
    concurrency = max(1.0, res.resident * wpb * res.active_sms / n_warps)

    # Stage 2: the memory hierarchy, and the full problem's DRAM traffic.
    mem = simulate_caches(
        program, trace, prof, l1_data / res.resident, footprint_bytes, concurrency, l2
    )
    full_warps = max(1, blocks * wpb)
    dram = _dram(
        mem, trace, prof, buffers or {}, full_warps, footprint_bytes, emulated_footprint_bytes
    )

    # Stage 1, then stages 3b and 4: the waves and their combine.
    work, warp = _warp_work(program, trace, sass, execs, mem, dram, footprint_bytes, prof)
    total, full_wave, parts = span(prof, work, res, wpb)
    out = _result(prof, res, wpb, mem, dram, warp, total, full_wave, parts)
    requests = float(execs[mem.sectors > 0].sum())
    out.sectors_per_request = round(float(mem.sectors.sum()) / requests, 3) if requests else 0.0
    out.accesses_per_sector = round(mem.l1_total / mem.distinct, 3) if mem.distinct else 0.0
    return out


def _result(
    prof: ArchProfile,
    res: Residency,
    wpb: int,
    mem: MemFigures,
    dram: _Dram,
    warp: WarpFigures,
    total: float,
    full_wave: float,
    parts: dict[str, float],
) -> CostEstimate:
    """The estimate and its parts, rounded for the record."""
    n_full, rest = res.waves
    reads = mem.l1_total
    return CostEstimate(
        estimate=float(round(total, 1)),
        wave=float(round(full_wave, 1)),
        waves=n_full + (1 if rest else 0),
        latency=float(round(parts["latency"], 1)),
        issue_bound=float(round(parts["issue"], 1)),
        lsu_bound=float(round(parts["lsu"], 1)),
        l1_bound=float(round(parts["l1"], 1)),
        l2_bound=float(round(parts["l2"], 1)),
        dram_bound=float(round(parts["dram"], 1)),
        bound=max(parts, key=lambda k: parts[k]),
        resident_blocks=res.resident,
        occupancy=min(1.0, res.occupancy_blocks * wpb / prof.max_warps_per_sm),
        occupancy_limiter=res.limiter,
        l1_hit_rate=float(np.sum(mem.l1) / reads) if reads else 0.0,
        l2_hit_rate=float(np.sum(mem.l2) / max(1e-9, np.sum(mem.l2) + np.sum(mem.dram)))
        if reads
        else 0.0,
        dram_bytes_per_warp=float(round(dram.bytes_per_warp, 2)),
        sass_per_warp=float(round(warp.sass_per_warp, 2)),
        shared_wavefronts_per_warp=float(round(warp.shared_units * dram.scale, 2)),
        work_scale=float(round(dram.scale, 3)),
        dram_efficiency=float(round(dram.efficiency, 4)),
        counts={k: float(round(v, 3)) for k, v in sorted(warp.by_class.items())},
        arch=prof.name,
    )
