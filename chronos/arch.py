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
    """SM and memory figures the model needs; docs/emulator.md gives the source of each.

    Latencies are cycles at the SM clock. `dram_gb_per_s` is the data-sheet peak; what a
    stream reaches of it (`dram_read_efficiency`, `dram_write_efficiency`) and the cost of
    mixing reads and writes on the bus (`dram_turnaround`) are measured plateaus."""

    name: str
    sm: str
    sms: int
    clock_mhz: float
    max_warps_per_sm: int
    max_blocks_per_sm: int
    shared_per_sm: int
    fp64_lanes_per_scheduler: int
    dram_gb_per_s: float
    l2_bytes: int
    l2_bytes_per_clk_per_sm: float
    l1_shared_bytes: int
    l1_latency: float
    l2_latency: float
    dram_latency: float
    l2_far_latency: float | None = None
    """Hit latency in the far partition of a split L2 (A100, H100), where a footprint larger
    than one partition lands; None: one L2 (the near latency everywhere)."""
    dram_read_efficiency: float = 0.96
    dram_write_efficiency: float = 0.98
    dram_turnaround: float = 0.26
    schedulers: int = 4
    regs_per_sm: int = 65536
    reg_alloc_unit: int = 256
    shared_reserved_per_block: int = 1024
    shared_alloc_unit: int = 128
    fp32_lanes_per_scheduler: int = 32
    l1_bytes_per_clk: float = 128.0
    lsu_units_per_clk: float = 1.0
    shared_latency: float = 23.0
    const_latency: float = 8.0
    sfu_latency: float = 20.0
    s2r_latency: float = 24.0
    shfl_latency: float = 24.0
    mma_latency: float = 32.0

    @property
    def dram_bytes_per_clk(self) -> float:
        """The data-sheet DRAM peak in bytes per SM clock (decimal GB/s)."""
        return self.dram_gb_per_s * 1e9 / (self.clock_mhz * 1e6)

    @property
    def peak_fp32_flops_per_clk(self) -> float:
        """FP32 FMA lanes of the whole GPU, two FLOPs each."""
        return 2.0 * self.sms * self.schedulers * self.fp32_lanes_per_scheduler


_A100_40 = dict(
    sm="sm_80", sms=108, clock_mhz=1410.0, max_warps_per_sm=64, max_blocks_per_sm=32,
    shared_per_sm=167936, fp32_lanes_per_scheduler=16, fp64_lanes_per_scheduler=8,
    dram_gb_per_s=1555.0, l2_bytes=40 * 2**20, l2_bytes_per_clk_per_sm=35.5,
    l1_shared_bytes=192 * 1024, l1_latency=36.0, l2_latency=213.0, l2_far_latency=423.0,
    dram_latency=572.0, dram_read_efficiency=0.96, dram_write_efficiency=0.97,
)  # fmt: skip
_GH100 = dict(
    sm="sm_90", max_warps_per_sm=64, max_blocks_per_sm=32, shared_per_sm=233472,
    fp64_lanes_per_scheduler=16, l2_bytes=50 * 2**20, l1_shared_bytes=256 * 1024,
    l1_latency=34.0, l2_latency=265.0, l2_far_latency=475.0, dram_latency=650.0,
    shared_latency=29.0,
)  # fmt: skip

_GB202 = dict(
    sm="sm_120", max_warps_per_sm=48, max_blocks_per_sm=32, shared_per_sm=102400,
    fp64_lanes_per_scheduler=1, dram_gb_per_s=1792.0, l2_bytes_per_clk_per_sm=16.0,
    l1_shared_bytes=128 * 1024, l1_latency=43.0, l2_latency=273.0, dram_latency=541.0,
    shared_latency=30.0,
)  # fmt: skip
"""GB202 (RTX 5090, RTX PRO 6000): consumer-Blackwell SM rules; on-chip latencies are Ada's
(no measured curve yet)."""

ARCHS: dict[str, ArchProfile] = {
    "sm_80": ArchProfile("sm_80 (A100 SXM4 40 GB)", **_A100_40),
    "sm_86": ArchProfile(
        "sm_86 (GA10x, A40)",
        sm="sm_86",
        sms=84,
        clock_mhz=1700.0,
        max_warps_per_sm=48,
        max_blocks_per_sm=16,
        shared_per_sm=102400,
        fp64_lanes_per_scheduler=1,
        dram_gb_per_s=696.0,
        l2_bytes=6 * 2**20,
        l2_bytes_per_clk_per_sm=24.0,
        l1_shared_bytes=128 * 1024,
        l1_latency=33.0,
        l2_latency=210.0,
        dram_latency=500.0,
    ),
    "sm_89": ArchProfile(
        "sm_89 (L4)",
        sm="sm_89",
        sms=58,
        clock_mhz=2040.0,
        max_warps_per_sm=48,
        max_blocks_per_sm=24,
        shared_per_sm=102400,
        fp64_lanes_per_scheduler=1,
        dram_gb_per_s=300.0,
        l2_bytes=48 * 2**20,
        l2_bytes_per_clk_per_sm=16.0,
        l1_shared_bytes=128 * 1024,
        l1_latency=43.0,
        l2_latency=273.0,
        dram_latency=541.0,
        shared_latency=30.0,
    ),
    "sm_90": ArchProfile(
        "sm_90 (H100 SXM5)",
        sms=132,
        clock_mhz=1980.0,
        dram_gb_per_s=3352.0,
        l2_bytes_per_clk_per_sm=38.0,
        **_GH100,
    ),
    "sm_100": ArchProfile(
        "sm_100 (B200)",
        sms=148,
        clock_mhz=1965.0,
        dram_gb_per_s=8000.0,
        l2_bytes_per_clk_per_sm=38.0,
        **{**_GH100, "sm": "sm_100", "l2_bytes": 126 * 2**20},
    ),
    "sm_120": ArchProfile(
        "sm_120 (RTX 5090)", sms=170, clock_mhz=2407.0, l2_bytes=96 * 2**20, **_GB202
    ),
}
"""One profile per target arch: the device its figures describe is named in `name`."""

DEVICES: dict[str, ArchProfile] = {
    "a100": ARCHS["sm_80"],
    "a40": ARCHS["sm_86"],
    "l4": ARCHS["sm_89"],
    "h100": ARCHS["sm_90"],
    "h100_pcie": ArchProfile(
        "sm_90 (H100 PCIe 80 GB)",
        sms=114,
        clock_mhz=1755.0,
        dram_gb_per_s=2039.0,
        l2_bytes_per_clk_per_sm=35.0,
        dram_read_efficiency=0.95,
        dram_write_efficiency=0.99,
        **_GH100,
    ),
    "h200": ArchProfile(
        "sm_90 (H200)",
        sms=132,
        clock_mhz=1980.0,
        dram_gb_per_s=4800.0,
        l2_bytes_per_clk_per_sm=38.0,
        dram_read_efficiency=0.81,
        dram_write_efficiency=0.81,
        dram_turnaround=0.45,
        **_GH100,
    ),
    "b200": ARCHS["sm_100"],
    "rtx5090": ARCHS["sm_120"],
    "rtx_pro_6000": ArchProfile(
        "sm_120 (RTX PRO 6000 Blackwell)", sms=188, clock_mhz=2617.0, l2_bytes=128 * 2**20, **_GB202
    ),
}
"""Profiles by device name (`arch=h200`): the same SM rules as their sm, their own memory."""


def arch_profile(arch: str) -> ArchProfile:
    """The profile for `arch`: a device name (`h200`, `b200`) or an sm (sm_90a -> sm_90;
    an unknown sm uses the closest older one)."""
    key = arch.lower().replace("-", "_")
    if key in DEVICES:
        return DEVICES[key]
    base = key.rstrip("af")
    if base in ARCHS:
        return ARCHS[base]
    try:
        n = int(base.split("_")[1])
    except (IndexError, ValueError):
        names = ", ".join([*ARCHS, *DEVICES])
        raise ValueError(f"unknown arch {arch!r} (known: {names})") from None
    older = [a for a in ARCHS if int(a[3:]) <= n]
    return ARCHS[max(older, key=lambda a: int(a[3:]))] if older else ARCHS["sm_80"]


def ptxas_arch(arch: str) -> str:
    """The ptxas target of `arch` (a device name maps to its sm; an sm stays as written)."""
    key = arch.lower().replace("-", "_")
    return DEVICES[key].sm if key in DEVICES else arch


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
