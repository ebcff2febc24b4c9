"""A deterministic cycle ESTIMATE from the emulator's dynamic trace and ptxas's figures.

This is a model, not a measurement: it is meant to move in the same direction as the GPU
when a transform changes the instruction stream (fewer, wider memory instructions; loads
hoisted above the stores that consume them; spills), not to predict absolute cycles. The
equations and constants are in docs/emulator.md; in short:

* Per warp, in-order issue with a register scoreboard: an instruction issues when its
  source registers are ready and the warp's previous instruction has issued; its results
  are ready `latency` cycles later (longer by `REPLAY_CYCLES` per extra memory transaction).
  `bar.sync` releases when every warp of the block has arrived and its shared stores have
  landed; `cp.async.wait_group` waits for the copy groups it names.
* Per SM, the warps of the co-resident blocks share the issue slots (4 schedulers), the
  load/store unit (one transaction per cycle) and the L2 bandwidth. The estimate is the
  largest of the critical path and these throughput bounds: the same per-warp elapsed time
  that the `cupy` backend's %clock64 harness measures.
* Occupancy (registers, shared memory, threads and the grid) limits co-resident blocks.
* Spills reported by ptxas become local loads and stores, executed as often as the
  kernel's average instruction, each load exposing the local-memory latency.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from chronos.arch import ArchProfile, arch_profile, occupancy
from chronos.emulate.program import BAR, Op, Program
from chronos.emulate.trace import Trace

MODEL_VERSION = "emulated-cost-1"


LATENCY: dict[str, int] = {
    "alu": 4,
    "imul": 4,
    "fma": 4,
    "fp16": 4,
    "fp64": 8,
    "conv": 6,
    "sfu": 18,
    "idiv": 40,
    "shfl": 24,
    "mma": 32,
    "ld.global": 400,
    "ld": 400,
    "ld.local": 30,
    "ld.shared": 30,
    "ld.param": 8,
    "ld.const": 8,
    "st.shared": 20,
    "atom": 500,
    "cp.async": 400,
    "membar": 200,
}
"""Cycles from issue until the destination registers can be read."""

ISSUE: dict[str, int] = {
    "alu": 1,
    "imul": 2,
    "fp16": 1,
    "conv": 4,
    "sfu": 8,
    "idiv": 20,
    "shfl": 2,
    # m16n8k16 f16 is 2048 FMAs; an A100 SM sub-partition's tensor core does 256 per cycle.
    "mma": 8,
    "branch": 2,
    "barrier": 1,
}
"""Cycles a warp occupies its scheduler per instruction (fma/fp64 come from the lanes)."""

MEMORY_CLASSES = frozenset(
    "ld ld.global ld.local ld.shared st st.global st.local st.shared atom cp.async prefetch".split()
)
REPLAY_CYCLES = 2
"""Extra latency per additional transaction of one memory instruction (lines, wavefronts)."""
BARRIER_LATENCY = 20
LSU_UNITS_PER_CLK = 1.0
SECTOR_BYTES = 32
SPILL_BYTES_PER_OP = 4


@dataclass
class CostEstimate:
    """The estimate and its parts, in model cycles (see the module docstring)."""

    estimate: float
    critical_path: float
    issue_bound: float
    lsu_bound: float
    l2_bound: float
    bound: str
    resident_blocks: int
    occupancy: float
    occupancy_limiter: str
    spill_ops_per_warp: float
    counts: dict[str, float] = field(default_factory=dict)
    arch: str = ""
    version: str = MODEL_VERSION

    def as_dict(self) -> dict[str, object]:
        return {
            "estimate": self.estimate,
            "critical_path": self.critical_path,
            "issue_bound": self.issue_bound,
            "lsu_bound": self.lsu_bound,
            "l2_bound": self.l2_bound,
            "bound": self.bound,
            "resident_blocks": self.resident_blocks,
            "occupancy": self.occupancy,
            "occupancy_limiter": self.occupancy_limiter,
            "spill_ops_per_warp": self.spill_ops_per_warp,
            "counts_per_warp": dict(self.counts),
            "arch": self.arch,
            "model": self.version,
        }


def instruction_class(op: Op) -> str:
    """Reporting class: memory ops by space and width (`ld.global.b128`), else the op class."""
    if op.mem is not None and op.cls not in ("cp.async", "atom"):
        return f"{op.cls}.b{op.mem.bytes * 8}"
    return op.cls


def _latency(op: Op) -> int:
    return LATENCY.get(op.cls, LATENCY["alu"])


def _issue(op: Op, prof: ArchProfile) -> int:
    if op.cls == "fma":
        return max(1, 32 // prof.fp32_lanes_per_scheduler)
    if op.cls == "fp64":
        return max(1, 32 // prof.fp64_lanes_per_scheduler)
    return ISSUE.get(op.cls, 1)


@dataclass
class _WarpState:
    t: float = 0.0
    ready: dict[int, float] = field(default_factory=dict)
    store_done: float = 0.0
    cp_pending: float = 0.0
    cp_groups: list[float] = field(default_factory=list)
    pos: int = 0


def _walk(
    steps: np.ndarray,
    st: _WarpState,
    static: list[tuple[int, int, tuple[int, ...], tuple[int, ...], int, str, int]],
    mem_units: dict[int, int],
) -> bool:
    """Advance one warp to its next barrier (True) or to its end (False)."""
    ready = st.ready
    t = st.t
    n = len(steps)
    i = st.pos
    while i < n:
        s = int(steps[i])
        lat, issue, srcs, dsts, kind, cls, keep = static[s]
        i += 1
        if kind == BAR:
            st.t = t
            st.pos = i
            return True
        start = t
        for r in srcs:
            rr = ready.get(r)
            if rr is not None and rr > start:
                start = rr
        units = mem_units.get(s)
        if units is not None and units > 1:
            lat += (units - 1) * REPLAY_CYCLES
        if cls == "cp.async":
            st.cp_pending = max(st.cp_pending, start + lat)
        elif cls == "cp.async.commit":
            st.cp_groups.append(st.cp_pending)
        elif cls == "cp.async.wait":
            groups = st.cp_groups[: len(st.cp_groups) - keep] if keep else st.cp_groups
            done = max(groups, default=0.0)
            if keep == 0:
                done = max(done, st.cp_pending)
            start = max(start, done)
        elif cls == "st.shared":
            st.store_done = max(st.store_done, start + LATENCY["st.shared"])
        t = start + issue
        for d in dsts:
            ready[d] = start + lat
    st.t = t
    st.pos = i
    return False


def estimate(
    program: Program,
    trace: Trace,
    threads_per_block: int,
    arch: str = "sm_90",
    registers: int = 0,
    spill_store_bytes: int = 0,
    spill_load_bytes: int = 0,
    shared_bytes: int | None = None,
    total_blocks: int | None = None,
) -> CostEstimate:
    """Estimate the per-warp elapsed cycles of a kernel from its emulated trace."""
    prof = arch_profile(arch)
    ops = program.ops
    n_steps = len(trace)
    activity = trace.warp_activity()
    n_warps = trace.n_warps
    wpb = trace.warps_per_block
    n_blocks = n_warps // wpb
    pcs = np.asarray(trace.pcs, np.int64)

    per_op = []
    for op in ops:
        per_op.append(
            (
                _latency(op),
                _issue(op, prof),
                op.srcs,
                op.dsts,
                op.kind,
                op.cls,
                op.barrier_count or 0,
            )
        )
    static = [per_op[int(pc)] for pc in pcs]

    # Per-warp memory units (lines for global/local, wavefronts for shared) and sectors.
    units = np.zeros((n_warps,), np.float64)
    sectors = np.zeros((n_warps,), np.float64)
    mem_steps = sorted(trace.mem)
    unit_matrix = np.zeros((len(mem_steps), n_warps), np.int64)
    for k, s in enumerate(mem_steps):
        ms = trace.mem[s]
        u = ms.lines + ms.wavefronts
        unit_matrix[k] = u
        units += u
        sectors += ms.sectors
    issue_cost = np.array([per_op[int(pc)][1] for pc in pcs], np.float64)
    issue_per_warp = issue_cost @ activity if n_steps else np.zeros(n_warps)

    # Group identical warps and blocks, then walk each distinct block once.
    sig = []
    for w in range(n_warps):
        sig.append(hash((activity[:, w].tobytes(), unit_matrix[:, w].tobytes())))
    block_sigs: dict[tuple[int, ...], int] = {}
    for b in range(n_blocks):
        block_sigs.setdefault(tuple(sig[b * wpb : (b + 1) * wpb]), b)
    mem_index = {s: k for k, s in enumerate(mem_steps)}
    critical = 0.0
    for first_block in block_sigs.values():
        warps = list(range(first_block * wpb, (first_block + 1) * wpb))
        unique: dict[int, int] = {}
        for w in warps:
            unique.setdefault(sig[w], w)
        states = {w: _WarpState() for w in unique.values()}
        seqs = {w: np.flatnonzero(activity[:, w]) for w in unique.values()}
        mems = {
            w: {int(s): int(unit_matrix[mem_index[int(s)], w]) for s in mem_steps}
            for w in unique.values()
        }
        active = set(unique.values())
        while active:
            at_barrier = []
            for w in sorted(active):
                if _walk(seqs[w], states[w], static, mems[w]):
                    at_barrier.append(w)
            if not at_barrier:
                break
            release = max(max(states[w].t, states[w].store_done) for w in states)
            for w in states:
                states[w].t = release + BARRIER_LATENCY
            active = set(at_barrier)
        critical = max(critical, max(s.t for s in states.values()))

    # Spills: local traffic at the kernel's average execution frequency.
    dyn_per_warp = float(activity.sum()) / max(1, n_warps)
    freq = dyn_per_warp / max(1, program.static_instructions)
    spill_ld = spill_load_bytes / SPILL_BYTES_PER_OP * freq
    spill_st = spill_store_bytes / SPILL_BYTES_PER_OP * freq
    critical += spill_ld * LATENCY["ld.local"] + spill_st
    spill_ops = spill_ld + spill_st

    # Co-residency and throughput bounds.
    smem = shared_bytes if shared_bytes is not None else _static_shared(program)
    occ_blocks, limiter = occupancy(prof, threads_per_block, registers, smem)
    want = total_blocks if total_blocks is not None else n_blocks
    resident = max(1, min(occ_blocks or 1, -(-want // prof.sms)))
    resident_warps = resident * wpb
    mean_issue = float(issue_per_warp.mean()) + spill_ops if n_warps else 0.0
    issue_bound = math.ceil(resident_warps / prof.schedulers) * mean_issue
    mean_units = float(units.mean()) + spill_ops if n_warps else 0.0
    lsu_bound = resident_warps * mean_units / LSU_UNITS_PER_CLK
    mean_sectors = float(sectors.mean()) + spill_ops * 4 if n_warps else 0.0
    l2_bound = resident_warps * mean_sectors * SECTOR_BYTES / prof.l2_bytes_per_clk_per_sm
    parts = {"latency": critical, "issue": issue_bound, "lsu": lsu_bound, "l2": l2_bound}
    bound = max(parts, key=lambda k: parts[k])

    counts: Counter[str] = Counter()
    per_pc = np.bincount(pcs, weights=activity.sum(1), minlength=len(ops)) if n_steps else []
    for pc, n in enumerate(per_pc):
        if n:
            counts[instruction_class(ops[pc])] += float(n) / n_warps
    if spill_ld:
        counts["spill.ld.local"] += spill_ld
    if spill_st:
        counts["spill.st.local"] += spill_st

    occ = min(1.0, occ_blocks * wpb / prof.max_warps_per_sm) if occ_blocks else 0.0
    return CostEstimate(
        estimate=float(round(parts[bound], 1)),
        critical_path=float(round(critical, 1)),
        issue_bound=float(round(issue_bound, 1)),
        lsu_bound=float(round(lsu_bound, 1)),
        l2_bound=float(round(l2_bound, 1)),
        bound=bound,
        resident_blocks=resident,
        occupancy=occ,
        occupancy_limiter=limiter,
        spill_ops_per_warp=spill_ops,
        counts=dict(sorted(counts.items())),
        arch=prof.name,
    )


def _static_shared(program: Program) -> int:
    return sum(v.size for v in program.variables if v.space == ".shared")
