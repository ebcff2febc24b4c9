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


ARCHS: dict[str, ArchProfile] = {
    "sm_80": ArchProfile(
        "sm_80 (A100)", 108, 1410.0, 4, 64, 32, 65536, 256, 167936, 1024, 128, 16, 8, 40.0
    ),
    "sm_86": ArchProfile(
        "sm_86 (GA10x)", 84, 1700.0, 4, 48, 16, 65536, 256, 102400, 1024, 128, 32, 1, 24.0
    ),
    "sm_89": ArchProfile(
        "sm_89 (L4)", 58, 2040.0, 4, 48, 24, 65536, 256, 102400, 1024, 128, 32, 1, 16.0
    ),
    "sm_90": ArchProfile(
        "sm_90 (H100 SXM)", 132, 1980.0, 4, 64, 32, 65536, 256, 233472, 1024, 128, 32, 16, 32.0
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
