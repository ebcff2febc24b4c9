"""Hardware figures of the NVIDIA architectures Chronos targets, and the occupancy rules.

One place for SM counts, schedulers, register files, shared memory and CTA limits, read by the
transforms (launch bounds sized for an occupancy target) and by the cost model alike. Figures
come from NVIDIA's data sheets, the CUDA C Programming Guide's "Compute Capabilities" table and
the CUDA occupancy calculator; docs/emulator.md cites them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArchProfile:
    """SM figures the model needs (public data sheets and the CUDA occupancy calculator)."""

    name: str
    sms: int
    clock_mhz: float
    schedulers: int
    max_warps_per_sm: int
    max_blocks_per_sm: int
    regs_per_sm: int
    reg_alloc_unit: int
    shared_per_sm: int
    shared_reserved_per_block: int
    shared_alloc_unit: int
    fp32_lanes_per_scheduler: int
    fp64_lanes_per_scheduler: int
    l2_bytes_per_clk_per_sm: float
    # Memory hierarchy and variable latencies (cycles at the SM clock) for the cost model;
    # docs/emulator.md gives the source of each figure.
    l1_shared_bytes: int = 196608
    l2_bytes: int = 40 * 2**20
    dram_bytes_per_clk: float = 1000.0
    l1_bytes_per_clk: float = 128.0
    lsu_units_per_clk: float = 1.0
    l1_latency: float = 33.0
    shared_latency: float = 23.0
    l2_latency: float = 200.0
    dram_latency: float = 470.0
    const_latency: float = 8.0
    sfu_latency: float = 20.0
    s2r_latency: float = 24.0
    shfl_latency: float = 24.0
    mma_latency: float = 32.0


_GB = 1e9
"""Data-sheet DRAM bandwidths are decimal GB/s; x 0.85 is the fraction a streaming kernel
reaches (docs/emulator.md)."""
_ACHIEVED = 0.85


def _dram(gb_per_s: float, mhz: float) -> float:
    return gb_per_s * _GB * _ACHIEVED / (mhz * 1e6)


ARCHS: dict[str, ArchProfile] = {
    "sm_80": ArchProfile(
        "sm_80 (A100)",
        108,
        1410.0,
        4,
        64,
        32,
        65536,
        256,
        167936,
        1024,
        128,
        16,
        8,
        40.0,
        l1_shared_bytes=192 * 1024,
        l2_bytes=40 * 2**20,
        dram_bytes_per_clk=_dram(1555, 1410.0),
        l1_latency=33.0,
        shared_latency=23.0,
        l2_latency=200.0,
        dram_latency=466.0,
        mma_latency=32.0,
    ),
    "sm_86": ArchProfile(
        "sm_86 (GA10x)",
        84,
        1700.0,
        4,
        48,
        16,
        65536,
        256,
        102400,
        1024,
        128,
        32,
        1,
        24.0,
        l1_shared_bytes=128 * 1024,
        l2_bytes=6 * 2**20,
        dram_bytes_per_clk=_dram(696, 1700.0),
        l1_latency=33.0,
        shared_latency=23.0,
        l2_latency=210.0,
        dram_latency=500.0,
        mma_latency=32.0,
    ),
    "sm_89": ArchProfile(
        "sm_89 (L4)",
        58,
        2040.0,
        4,
        48,
        24,
        65536,
        256,
        102400,
        1024,
        128,
        32,
        1,
        16.0,
        l1_shared_bytes=128 * 1024,
        l2_bytes=48 * 2**20,
        dram_bytes_per_clk=_dram(300, 2040.0),
        l1_latency=43.0,
        shared_latency=30.0,
        l2_latency=273.0,
        dram_latency=541.0,
        mma_latency=32.0,
    ),
    "sm_90": ArchProfile(
        "sm_90 (H100 SXM)",
        132,
        1980.0,
        4,
        64,
        32,
        65536,
        256,
        233472,
        1024,
        128,
        32,
        16,
        32.0,
        l1_shared_bytes=256 * 1024,
        l2_bytes=50 * 2**20,
        dram_bytes_per_clk=_dram(3352, 1980.0),
        l1_latency=40.0,
        shared_latency=29.0,
        l2_latency=263.0,
        dram_latency=479.0,
        mma_latency=32.0,
    ),
}


def arch_profile(arch: str) -> ArchProfile:
    """The profile for `arch` (sm_90a -> sm_90; unknown archs use the closest older one)."""
    base = arch.rstrip("af")
    if base in ARCHS:
        return ARCHS[base]
    try:
        n = int(base.split("_")[1])
    except (IndexError, ValueError):
        raise ValueError(f"unknown arch {arch!r}") from None
    older = [a for a in ARCHS if int(a[3:]) <= n]
    return ARCHS[max(older, key=lambda a: int(a[3:]))] if older else ARCHS["sm_80"]


def occupancy(
    prof: ArchProfile, threads_per_block: int, registers: int, shared_bytes: int
) -> tuple[int, str]:
    """(blocks per SM, limiting resource) from the CUDA occupancy calculator's rules."""
    warps = -(-threads_per_block // 32)
    limits = {"blocks": prof.max_blocks_per_sm, "warps": prof.max_warps_per_sm // warps}
    if registers > 0:
        per_warp = -(-registers * 32 // prof.reg_alloc_unit) * prof.reg_alloc_unit
        limits["registers"] = prof.regs_per_sm // (per_warp * warps)
    smem = shared_bytes + prof.shared_reserved_per_block
    smem = -(-smem // prof.shared_alloc_unit) * prof.shared_alloc_unit
    limits["shared"] = prof.shared_per_sm // smem
    limiter = min(limits, key=lambda k: limits[k])
    return max(0, limits[limiter]), limiter
