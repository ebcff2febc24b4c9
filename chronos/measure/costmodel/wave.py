"""Stages 3 and 4 of the cost model: occupancy and waves, and the combine.

A wave is the blocks one SM holds at once (the occupancy calculator's rules). Its time is the
p-norm of one warp's latency and the SM's throughput bounds (issue, LSU, L1/shared, L2, DRAM):
the largest dominates, and the others move it the less the more warps overlap them. The span
the `cupy` harness times is the busiest SM's waves one after the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chronos.arch import ArchProfile, occupancy
from chronos.emulate.trace import Trace
from chronos.measure.costmodel.caches import distinct_count

SMOOTH_MAX_P_MAX = 8.0
"""The wave combines its latency and throughput bounds in a p-norm with p = 1 + 2 x resident
warps per scheduler (at most this): a scheduler with one warp overlaps little of that warp's
latency with the SM's throughput limits (p = 3), one with many overlaps nearly all (p -> max).
A chosen modelling constant (Volkov 2016: latency is hidden in proportion to the warps
available). `emulated-cost-4` took 1 + warps per scheduler; gpu-benches' L1 sweep (8 warps
per SM, 32 independent loads each, 98% of the L1 peak) showed that too soft: the change was
made after seeing that curve (docs/emulator.md)."""
DRAM_QUEUE = 1.3
"""A DRAM access under load waits `dram_latency x (1 + DRAM_QUEUE x u^2)`, u the wave's DRAM
utilization (its DRAM bound over its time): the memory controllers' queueing delay grows with
the load (PPT-GPU's DRAM queue term; an M/D/1 wait starts like this). FITTED, not derived:
the value that brings gpu-benches' stream curves on A100, H100 PCIe and H200 (12 curves,
loaded latency 1.2-1.45x the unloaded at 45-70% of the plateau) within 15% median error
(0.6 .. 1.3 tried, with u and u^1.5; docs/emulator.md)."""
BLOCK_TURNAROUND_CYCLES = 350.0
"""Cycles between a block's last exit and the next block's first issue on its SM (retire,
launch, the S2R of its indices), paid once per wave. Read off gpu-benches' store-only stream
(`init`) at one block pair per SM, where nothing else bounds: a block lives ~450 (H100 PCIe)
to ~490 (A100) cycles, of which the model's warp walk is ~100; docs/emulator.md."""
PARTITIONED_SHARING = 1.5
"""A buffer whose sectors the small problem's warps touch at most this many times each on
average (summed over warps, over distinct sectors) is partitioned among the warps: each warp
works through its own share, so a warp of the full problem works through its share of the
full buffer. Gemm's A and B tiles (every block of a row or column reads them) are shared, a
stream's input and a stencil's (halos: a little over 1) are partitioned. A chosen modelling
constant."""


@dataclass(frozen=True)
class Residency:
    """How the full grid sits on the busiest SM."""

    resident: int
    """Blocks one SM holds at once (occupancy, capped by the blocks it gets)."""
    per_sm: int
    """Blocks the busiest SM runs in all."""
    active_sms: int
    occupancy_blocks: int
    limiter: str

    @property
    def waves(self) -> tuple[int, int]:
        """(full waves, blocks in the last partial wave)."""
        return divmod(self.per_sm, self.resident)


def residency(
    prof: ArchProfile, threads_per_block: int, registers: int, shared: int, blocks: int
) -> Residency:
    """Blocks per SM from the CUDA occupancy calculator's rules, over a grid of `blocks`."""
    occ_blocks, limiter = occupancy(prof, threads_per_block, registers, shared)
    occ_blocks = max(1, occ_blocks)
    per_sm = max(1, -(-blocks // prof.sms))
    return Residency(
        min(occ_blocks, per_sm), per_sm, min(prof.sms, max(1, blocks)), occ_blocks, limiter
    )


def dram_efficiency(prof: ArchProfile, read_bytes: float, write_bytes: float) -> float:
    """The share of the DRAM peak a stream with this read/write mix reaches.

    Read-only and write-only streams plateau at the profile's measured efficiencies; a bus
    that alternates pays a turnaround per switch, which costs most at a 1:1 mix (gpu-benches
    `scale` plateaus 84-89% of the data sheet, `triad` at 2:1 87-90%, `read` 95-96%, `init`
    97-99% on A100, H100 PCIe and V100): time per byte = r/e_read + w/e_write +
    turnaround x min(r, w), with r + w = 1."""
    total = read_bytes + write_bytes
    if total <= 0:
        return prof.dram_read_efficiency
    r, w = read_bytes / total, write_bytes / total
    per_byte = r / prof.dram_read_efficiency + w / prof.dram_write_efficiency
    return 1.0 / (per_byte + prof.dram_turnaround * min(r, w))


@dataclass(frozen=True)
class WarpWork:
    """One full-problem warp's demands on its SM, the inputs of a wave's bounds."""

    latency: float
    issue: float
    lsu_units: float
    l1_bytes: float
    l2_bytes: float
    dram_bytes: float
    dram_efficiency: float
    latency_loaded: float = 0.0
    """The warp's latency with every DRAM access waiting dram_latency x (1 + DRAM_QUEUE):
    the latency at full utilization (it moves linearly with the DRAM latency)."""

    def latency_at(self, u: float) -> float:
        """The warp's latency at DRAM utilization u."""
        loaded = max(self.latency_loaded, self.latency)
        return self.latency + (loaded - self.latency) * min(1.0, u) ** 2


def wave_parts(
    prof: ArchProfile, work: WarpWork, warps: int, active_sms: int, u: float = 0.0
) -> dict[str, float]:
    """The latency and throughput bounds of one wave of `warps` resident warps, in cycles.

    Throughput bounds are the SM's share of each pipe at its peak: no bytes-in-flight term,
    because the latency part already holds Little's law (a warp's loads take their latency,
    so `warps` warps move at most warps x bytes / latency), and counting it twice halved
    bandwidth at the occupancy Little's law names (`emulated-cost-4`)."""
    dram_peak = prof.dram_bytes_per_clk / active_sms * work.dram_efficiency
    return {
        "latency": work.latency_at(u) + BLOCK_TURNAROUND_CYCLES,
        "issue": math.ceil(warps / prof.schedulers) * work.issue,
        "lsu": warps * work.lsu_units / prof.lsu_units_per_clk,
        "l1": warps * work.l1_bytes / prof.l1_bytes_per_clk,
        "l2": warps * work.l2_bytes / prof.l2_bytes_per_clk_per_sm,
        "dram": warps * work.dram_bytes / dram_peak,
    }


PIPELINE_STAGES = (("lsu", "l1"),)
"""Parts that are stages of one pipeline, which runs at its slowest stage: the L1TEX unit's
tag stage (lines and wavefronts per cycle, `lsu`) and its data stage (bytes per cycle, `l1`).
`emulated-cost-4` combined them as two parts, which charged a stream of full lines 1.26-1.44x
its L1 rate (gpu-benches measures 98% of 128 B/cycle at 8 warps per SM)."""


def combine(parts: dict[str, float], warps: int, schedulers: int) -> float:
    """A wave's time: the p-norm of its parts (the stages of one pipeline taken as their
    maximum), p = 1 + 2 x warps per scheduler (at most SMOOTH_MAX_P_MAX). Never below the
    largest part, so no bound is ever beaten."""
    merged = dict(parts)
    for stages in PIPELINE_STAGES:
        merged[stages[0]] = max(merged.pop(s, 0.0) for s in stages)
    p = min(SMOOTH_MAX_P_MAX, 1.0 + 2.0 * warps / schedulers)
    top = max(merged.values()) or 1.0
    return top * sum((v / top) ** p for v in merged.values()) ** (1.0 / p)


def span(
    prof: ArchProfile, work: WarpWork, res: Residency, wpb: int
) -> tuple[float, float, dict[str, float]]:
    """The busiest SM's span over all its waves, the full wave's time and its parts."""
    n_full, rest = res.waves

    def wave(blocks: int) -> tuple[float, dict[str, float]]:
        w = blocks * wpb

        def at(u: float) -> tuple[float, dict[str, float]]:
            parts = wave_parts(prof, work, w, res.active_sms, u)
            return combine(parts, w, prof.schedulers), parts

        # The DRAM utilization u = dram bound / wave time is a fixed point (the queueing delay
        # lengthens the wave, which lowers u): bisect u - dram / T(u), increasing in u.
        lo, hi = 0.0, 1.0
        for _ in range(30 if work.latency_loaded > work.latency else 0):
            mid = 0.5 * (lo + hi)
            t, parts = at(mid)
            if mid < parts["dram"] / t:
                lo = mid
            else:
                hi = mid
        return at(lo)

    full, parts = wave(res.resident)
    return n_full * full + (wave(rest)[0] if rest else 0.0), full, parts


def work_scale(
    trace: Trace,
    buffers: dict[str, tuple[int, int, int]],
    full_warps: int,
) -> float:
    """How many times a small-problem warp's work a full-problem warp does (at least 1).

    The trace is the small problem's, but a grid-stride loop, a row reduction or a stencil
    marching through z runs longer per warp on the full problem: its warps each own more of
    the data. `buffers` maps a name to (base address, small bytes, full bytes). For each
    buffer the small problem's warps partition (`PARTITIONED_SHARING`) the ratio of the full to
    the small bytes per warp is how much longer a warp's share is; the work follows the
    largest. Buffers every block shares (a gemm's A and B tiles, a matvec's x) say nothing
    about a warp's share, and a gemm's partitioned C keeps the same bytes per warp: 1."""
    if not trace.sectors or not buffers:
        return 1.0
    codes = np.concatenate([c for _, c in trace.sectors])
    addr = (codes & ((1 << 40) - 1)) << 5
    small_warps = max(1, trace.n_warps)
    scale = 1.0
    for base, small_bytes, full_bytes in buffers.values():
        if small_bytes <= 0 or full_bytes <= 0:
            continue
        inside = (addr >= base) & (addr < base + small_bytes)
        if not inside.any():
            continue
        # Distinct (warp, sector) pairs as warp * span + sector offset: a dense range.
        sector = codes[inside] & ((1 << 40) - 1)
        lo = int(sector.min())
        span = int(sector.max()) - lo + 1
        pairs = distinct_count((codes[inside] >> 40) * span + (sector - lo))
        sectors = distinct_count(addr[inside])
        if pairs / sectors > PARTITIONED_SHARING:
            continue
        scale = max(scale, (full_bytes / max(1, full_warps)) / (small_bytes / small_warps))
    return scale
