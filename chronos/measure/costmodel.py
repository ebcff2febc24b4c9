"""A deterministic cycle ESTIMATE from the SASS ptxas produced and the emulator's trace.

This is a model, not a measurement. It estimates what the `cupy` harness measures: the
kernel's span on the busiest SM over the whole "full" grid (all its waves). The equations,
constants and their sources are in docs/emulator.md; in short:

* **What runs.** The SASS of the measured PTX (chronos.assemble.disasm): each instruction's
  class, the stall cycles and scoreboards ptxas put in its control codes, and its PTX line.
  An instruction executes as often per warp as the PTX instruction on its line did in the
  emulated "small" problem (the trace); spills are real LDL/STL instructions.
* **One warp alone** (`latency`): walk the SASS in order, issuing each instruction after the
  previous one's stall count and after the scoreboards it waits on are released; a
  variable-latency result (memory, MUFU, S2R, shuffles, tensor ops) releases its scoreboard
  after its latency, a load's being the mix of L1, L2 and DRAM latencies its hit rates give.
* **Memory hierarchy**: L1 (per block) and L2 (shared) hit rates come from the trace's 32-byte
  sectors in execution order under each access's cache policy (`.ca/.cg/.cs/.lu/.nc`,
  `L1::evict_*`, `L1::no_allocate`, `prefetch`, `L2::256B`), shrunk when the footprint exceeds
  the capacity; DRAM traffic is what misses L2.
* **One SM, W resident warps** (a wave): the warp latency and the throughput bounds (issue per
  scheduler, LSU transactions, L1, L2 and DRAM bandwidth, the last two as loaded by the
  warps' bytes in flight: `loaded_bandwidth`) combine in a p-norm, p = 1 + W / 4:
  every part moves the estimate, the largest dominates, and the fewer warps a scheduler holds
  the less of the latency hides behind the throughput limits.
* **The grid**: a full-problem warp does `work_scale` times a small-problem warp's work (its
  share of the buffers the warps partition is that much longer); blocks per SM from occupancy
  (SASS registers, shared memory, threads), waves = blocks on the busiest SM / resident
  blocks; the span is the sum over waves.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from chronos.arch import ArchProfile, arch_profile, occupancy
from chronos.assemble.disasm import SassInstruction
from chronos.emulate.program import Program
from chronos.emulate.trace import Trace
from chronos.measure.cupy_harness import L2_MODES

MODEL_VERSION = "emulated-cost-4"

SMOOTH_MAX_P_MAX = 8.0
"""The wave combines its latency and throughput bounds in a p-norm with p = 1 + resident warps
per scheduler (at most this): a scheduler with one warp overlaps little of that warp's latency
with the SM's throughput limits (p = 2), one with many overlaps nearly all (p -> max). A chosen
modelling constant (Volkov 2016: latency is hidden in proportion to the warps available)."""
NO_SCOREBOARD = 7
READ_SCOREBOARD_CYCLES = 4
"""A store's source registers are read this many cycles after issue (its read scoreboard)."""
BARRIER_CYCLES = 20
L2_USABLE_FRACTION = 0.75
"""Share of L2 a footprint may occupy before it spills (set conflicts, the other L2
partition's copies on A100/H100). A chosen modelling constant."""
L2_LINE_BYTES = 128
"""An L2 line (four 32-byte sectors; NVIDIA's Nsight Compute "Memory Tables"): what a
`prefetch` brings ("the cache line containing the address", PTX ISA, prefetch)."""
REPLAY_CYCLES = 2
"""Extra latency per additional 128-byte line or shared-memory wavefront of one instruction."""
PARTITIONED_SHARING = 1.5
"""A buffer whose sectors the small problem's warps touch at most this many times each on
average (summed over warps, over distinct sectors) is partitioned among the warps: each warp
works through its own share, so a warp of the full problem works through its share of the
full buffer. Gemm's A and B tiles (every block of a row or column reads them) are shared, a
stream's input and a stencil's (halos: a little over 1) are partitioned. A chosen modelling
constant."""

# SASS opcode -> class. Fixed-latency classes need no latency: ptxas's stall counts hold it.
_CLASSES: dict[str, tuple[str, ...]] = {
    "fp32": ("FFMA", "FADD", "FMUL", "FMNMX", "FSETP", "FSEL", "FSET", "FCHK", "FSWZADD"),
    "fp16": ("HFMA2", "HADD2", "HMUL2", "HSETP2", "HMNMX2", "HSET2"),
    "fp64": ("DFMA", "DADD", "DMUL", "DSETP", "DMNMX"),
    "imad": ("IMAD", "IMUL", "IDP", "IMNMX", "IABS"),
    "sfu": ("MUFU",),
    "conv": ("F2F", "F2I", "I2F", "FRND", "I2FP", "F2IP", "F2FP"),
    "ld.global": ("LDG", "LD"),
    "st.global": ("STG", "ST"),
    "ld.shared": ("LDS", "LDSM"),
    "st.shared": ("STS",),
    "ld.local": ("LDL",),
    "st.local": ("STL",),
    "ld.const": ("LDC",),
    "atom": ("ATOM", "ATOMG", "RED", "ATOMS"),
    "cp.async": ("LDGSTS",),
    "cp.async.commit": ("LDGDEPBAR",),
    "cp.async.wait": ("DEPBAR",),
    "prefetch": ("CCTL",),
    "shfl": ("SHFL",),
    "mma": ("HMMA", "IMMA", "DMMA", "HGMMA"),
    "s2r": ("S2R", "CS2R.32"),
    "barrier": ("BAR",),
    "membar": ("MEMBAR", "FENCE", "ERRBAR", "CCTL.IVALL"),
    "branch": ("BRA", "BRX", "EXIT", "RET", "CALL", "BSSY", "BSYNC", "WARPSYNC", "JMP"),
    "nop": ("NOP",),
}
SASS_CLASS = {op: cls for cls, ops in _CLASSES.items() for op in ops}
MEMORY_LOADS = frozenset({"ld.global", "ld.local", "atom", "cp.async"})
MEMORY_CLASSES = MEMORY_LOADS | {"st.global", "st.local", "ld.shared", "st.shared", "prefetch"}

ISSUE_CYCLES: dict[str, float] = {
    "alu": 2.0,
    "imad": 2.0,
    "sfu": 8.0,
    "conv": 8.0,
    "shfl": 2.0,
    "mma": 8.0,
    "branch": 2.0,
}
"""Scheduler cycles per warp instruction: 32 lanes over the units one scheduler feeds (INT32:
16, MUFU and conversions: 4, per sub-partition; fp32/fp64 come from the ArchProfile). Memory
instructions issue in 1 cycle and are charged to the LSU bound instead."""


def sass_class(opcode: str) -> str:
    return SASS_CLASS.get(opcode, "alu")


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
    counts: dict[str, float] = field(default_factory=dict)
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
            "counts_per_warp": dict(self.counts),
            "arch": self.arch,
            "model": self.version,
        }


# --- cache policies -------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """How one memory instruction uses the caches (PTX ISA, "Cache operators" and
    "Cache eviction priority hints")."""

    l1_lookup: bool = True
    l1_allocate: bool = True
    l1_priority: str = "normal"  # normal | first | last
    l2_priority: str = "normal"
    l2_prefetch_bytes: int = 32
    store: bool = False
    prefetch: bool = False


_QUAL = re.compile(r"\.(ca|cg|cs|lu|cv|nc|wb|wt)\b|L1::(\w+)|L2::(\w+)")


def policy(text: str, cls: str) -> Policy:
    """The cache policy of one PTX memory instruction from its qualifiers."""
    head = text.split(None, 1)[0] if text else ""
    store = cls in ("st", "st.global") or head.startswith("st.")
    if head.startswith("prefetch"):
        return Policy(
            l1_lookup=False,
            l1_allocate="L1" in head,
            prefetch=True,
            l2_prefetch_bytes=L2_LINE_BYTES,
        )
    kw: dict[str, object] = {"store": store}
    if store:
        # Global stores write through L1 without allocating (sm_70+); L2 is write-back.
        kw.update(l1_lookup=False, l1_allocate=False)
    for m in _QUAL.finditer(head):
        op, l1, l2 = m.groups()
        if op in ("cg", "cv"):
            kw.update(l1_lookup=False, l1_allocate=False)
        elif op in ("cs", "lu"):
            kw.update(l1_priority="first", l2_priority="first")
        if l1 == "no_allocate":
            kw["l1_allocate"] = False
        elif l1 in ("evict_first", "evict_last", "evict_unchanged"):
            kw["l1_priority"] = {"evict_first": "first", "evict_last": "last"}.get(l1, "normal")
        if l2 in ("evict_first", "evict_last"):
            kw["l2_priority"] = "first" if l2 == "evict_first" else "last"
        elif l2 and l2.endswith("B") and l2[:-1].isdigit():
            kw["l2_prefetch_bytes"] = int(l2[:-1])
    if head.startswith("cp.async.cg"):
        kw.update(l1_lookup=False, l1_allocate=False)
    return Policy(**kw)  # type: ignore[arg-type]


@dataclass
class _MemFigures:
    """Per PTX pc: sector accesses and where they were served (summed over warps)."""

    sectors: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    dram: np.ndarray
    dram_total: float
    l2_total: float
    l1_total: float
    distinct: float = 0.0
    fetched: np.ndarray | None = None
    """Per PTX pc: sectors its DRAM misses fetch (a whole `L2::NB` chunk or prefetched line
    per miss; prefetches included), summed over warps."""


def _simulate_caches(
    program: Program,
    trace: Trace,
    prof: ArchProfile,
    l1_bytes_per_block: float,
    footprint_bytes: float,
    concurrency: float = 1.0,
    l2: str = "cold",
) -> _MemFigures:
    """L1/L2 service of every global access (reuse distances with capacity scaling).

    `l2` is the harness's mode: "cold" (its default: L2 flushed before every timed launch)
    serves every first touch from DRAM; "hot" (the previous launch's data resident) serves
    first touches from L2 with the share of the full footprint that stays resident."""
    n_ops = len(program.ops)
    out = _MemFigures(*(np.zeros(n_ops) for _ in range(4)), 0.0, 0.0, 0.0)
    if not trace.sectors:
        return out
    wpb = trace.warps_per_block
    pcs = np.asarray(trace.pcs, np.int64)
    pols = {}
    parts_order, parts_code, parts_pc = [], [], []
    for k, (step, codes) in enumerate(trace.sectors):
        pc = int(pcs[step])
        if pc not in pols:
            op = program.ops[pc]
            pols[pc] = policy(op.text, op.cls)
        parts_order.append(np.full(len(codes), k, np.int64))
        parts_code.append(codes)
        parts_pc.append(np.full(len(codes), pc, np.int64))
    order = np.concatenate(parts_order)
    code = np.concatenate(parts_code)
    pc_of = np.concatenate(parts_pc)
    sector = code & ((1 << 40) - 1)
    block = (code >> 40) // wpb

    def per_pc(attr: str, dtype: type) -> np.ndarray:
        table = np.zeros(n_ops, dtype)
        for p, pol in pols.items():
            table[p] = getattr(pol, attr)
        return table[pc_of]

    lookup = per_pc("l1_lookup", bool)
    alloc = per_pc("l1_allocate", bool)
    l1pri = per_pc("l1_priority", object)
    l2pri = per_pc("l2_priority", object)
    pf256 = per_pc("l2_prefetch_bytes", np.int64)
    is_pf = per_pc("prefetch", bool)
    is_st = per_pc("store", bool)

    # L1 (per block, shared by its warps): an access hits when, since the same block's last
    # allocating access to the sector, the block allocated at most its L1 share (a
    # reuse-distance LRU over fills: a store, an `L1::no_allocate` or `.cg` load and a
    # prefetch to L2 displace nothing); evict-first lines survive a quarter of that
    # distance, evict-last lines twice it.
    bkey = (block << 40) | sector
    pos, fills = _stream_position(block, order, alloc)
    prev = _previous(bkey, pos, alloc)
    cap = l1_bytes_per_block / 32.0
    reach = np.where(l1pri == "first", cap / 4, np.where(l1pri == "last", 2 * cap, cap))
    since = fills - fills[np.maximum(_index_at(block, pos, prev), 0)]
    l1_w = (lookup & (prev >= 0) & (since <= reach)).astype(np.float64)

    # L2: shared by all blocks; an L2::NB access (and a prefetch) brings its whole N-byte
    # chunk, so a sector is present after any earlier access or prefetch touched its chunk.
    chunk = np.maximum(1, pf256 // 32)
    pool_k, pool_o = [sector], [order]
    wide = chunk > 1
    if wide.any():
        width = int(chunk.max())
        offs = np.arange(width)[None, :]
        base = (sector[wide] // chunk[wide]) * chunk[wide]
        valid = (offs < chunk[wide][:, None]).ravel()
        pool_k.append((base[:, None] + offs).ravel()[valid])
        pool_o.append(np.repeat(order[wide], width)[valid])
    all_k, all_o = np.concatenate(pool_k), np.concatenate(pool_o)
    # A re-access hits when the sectors the whole GPU touched since (the small problem's
    # count scaled by the full grid's concurrent warps over the emulated warps) fit in the
    # usable L2 (evict-first lines a quarter of it, evict-last twice). With a cold L2 (the
    # harness flushed it) a first touch comes from DRAM; with a hot one it (or a re-access
    # that did not fit) still hits with the share of the full footprint that stays resident.
    room = prof.l2_bytes * L2_USABLE_FRACTION
    prev_o = _previous_of(sector, order, all_k, all_o)
    cum = np.r_[0, np.cumsum(np.bincount(order, minlength=int(order.max()) + 1))]
    dist = (cum[order] - cum[np.maximum(prev_o, 0)]) * 32.0 * concurrency
    l2_reach = np.where(l2pri == "first", room / 4, np.where(l2pri == "last", 2 * room, room))
    reuse = (prev_o >= 0) & (dist <= l2_reach)
    warm = _warm_shares(sector, l2pri, room, footprint_bytes)
    first_touch = warm if l2 == "hot" else np.zeros(len(sector))
    served_l1 = l1_w
    served_l2 = np.where(is_st, 1.0, (1.0 - served_l1) * np.where(reuse, 1.0, first_touch))
    if wide.any():
        # One access fetches each chunk once: the chunk's first sector pays for it, the
        # others of the same access hit.
        group = (order << 24) ^ (sector // chunk)
        first = np.zeros(len(sector), bool)
        first[np.unique(group, return_index=True)[1]] = True
        mates = wide & ~first & ~is_st
        served_l2 = np.where(mates, 1.0 - served_l1, served_l2)
    served_dram = np.where(is_st, 0.0, 1.0 - served_l1 - served_l2)
    n = n_ops
    demand = ~is_pf
    out.sectors = np.bincount(pc_of, weights=demand * 1.0, minlength=n)
    out.l1 = np.bincount(pc_of, weights=demand * served_l1, minlength=n)
    out.l2 = np.bincount(pc_of, weights=demand * served_l2, minlength=n)
    out.dram = np.bincount(pc_of, weights=demand * served_dram, minlength=n)
    fetches = _merged_fetches(order, sector, served_dram * chunk)
    out.fetched = np.bincount(pc_of, weights=fetches, minlength=n)
    # DRAM traffic: each read miss (prefetches included) fetches its chunk (one sector, or
    # N/32 for L2::NB) once however many warps missed on it in the same step (L2 merges
    # misses to a sector in flight); every distinct written sector is written back once
    # unless it stays (the share of the footprint that fits, in either mode).
    written = _footprint(sector[is_st])
    lost = 1.0 - (float(np.mean(warm[is_st])) if is_st.any() else 1.0)
    out.dram_total = float(np.sum(fetches)) + written * lost
    out.distinct = float(_footprint(sector))
    # SM <-> L2 traffic: demand accesses only (a prefetch's line goes DRAM -> L2, no data
    # comes back to the SM).
    out.l2_total = float(np.sum(demand * (1.0 - served_l1)))
    out.l1_total = float(np.sum(demand))
    return out


def _merged_fetches(order: np.ndarray, sector: np.ndarray, fetched: np.ndarray) -> np.ndarray:
    """Per access, the sectors its DRAM miss fetches, a sector missed by several warps in the
    same step charged once (to its first access, at the largest fetch): the bytes in flight."""
    out = np.zeros(len(sector))
    if not len(sector):
        return out
    key = (order << 40) | sector
    idx = np.argsort(key, kind="stable")
    k = key[idx]
    starts = np.r_[0, np.flatnonzero(k[1:] != k[:-1]) + 1]
    out[idx[starts]] = np.maximum.reduceat(fetched[idx], starts)
    return out


def _warm_shares(
    sector: np.ndarray, priority: np.ndarray, room: float, footprint: float
) -> np.ndarray:
    """Per access, the share of its data that stays in L2: a hot next launch finds it, and
    written data that stays is not written back within the span. The full footprint splits
    by eviction priority as the small problem's distinct sectors do, and the usable L2 goes
    to evict-last data first, then normal, then evict-first data."""
    if footprint <= 0:
        return np.ones(len(sector))
    total = max(1, _footprint(sector))
    keep: dict[str, float] = {}
    left = room
    for pri in ("last", "normal", "first"):
        f = footprint * _footprint(sector[priority == pri]) / total
        keep[pri] = min(1.0, left / f) if f > 0 else 1.0
        left = max(0.0, left - f)
    return np.select(
        [priority == "last", priority == "first"], [keep["last"], keep["first"]], keep["normal"]
    )


def _stream_position(
    group: np.ndarray, order: np.ndarray, counted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each element's index in its group's stream (elements sorted by `order`), and how many
    `counted` elements come before it in that stream."""
    idx = np.lexsort((order, group))
    g = group[idx]
    starts = np.r_[0, np.flatnonzero(g[1:] != g[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(g)])
    run = np.arange(len(g)) - np.repeat(starts, lengths)
    c = np.cumsum(counted[idx].astype(np.int64))
    before = c - counted[idx] - np.repeat(np.r_[0, c[starts[1:] - 1]], lengths)
    pos = np.empty(len(g), np.int64)
    pos[idx] = run
    fills = np.empty(len(g), np.int64)
    fills[idx] = before
    return pos, fills


def _index_at(group: np.ndarray, pos: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The element index of position `at` in each element's group stream (-1 for at < 0)."""
    span = int(pos.max()) + 2
    code = group.astype(np.int64) * span + pos
    idx = np.argsort(code, kind="stable")
    j = np.searchsorted(code[idx], group.astype(np.int64) * span + np.maximum(at, 0))
    return np.where(at >= 0, idx[np.minimum(j, len(idx) - 1)], -1)


def _previous(keys: np.ndarray, pos: np.ndarray, where: np.ndarray) -> np.ndarray:
    """For each element, the largest `pos` < its own of an element with the same key and
    `where` set (-1 when none)."""
    if not where.any():
        return np.full(len(keys), -1, np.int64)
    _, kid = np.unique(keys, return_inverse=True)
    span = int(pos.max()) + 2
    code = kid.astype(np.int64) * span + pos
    pool = np.sort(code[where])
    j = np.searchsorted(pool, code, side="left") - 1
    found = j >= 0
    cand = pool[np.maximum(j, 0)]
    ok = found & (cand // span == kid)
    return np.where(ok, cand % span, -1)


def _footprint(keys: np.ndarray) -> int:
    return int(len(np.unique(keys))) if len(keys) else 0


def _previous_of(
    keys: np.ndarray, order: np.ndarray, pool_keys: np.ndarray, pool_order: np.ndarray
) -> np.ndarray:
    """For each (key, order), the largest pool order < it with the same key (-1: none)."""
    if not len(pool_keys):
        return np.full(len(keys), -1, np.int64)
    uk, inv = np.unique(np.concatenate([keys, pool_keys]), return_inverse=True)
    qid, pid = inv[: len(keys)].astype(np.int64), inv[len(keys) :].astype(np.int64)
    span = int(max(order.max(), pool_order.max())) + 2
    pool = np.sort(pid * span + pool_order)
    code = qid * span + order
    j = np.searchsorted(pool, code, side="left") - 1
    cand = pool[np.maximum(j, 0)]
    ok = (j >= 0) & (cand // span == qid)
    return np.where(ok, cand % span, -1)


# --- the warp walk --------------------------------------------------------------------------


def _counts_per_sass(
    sass: list[SassInstruction], program: Program, per_pc: np.ndarray
) -> tuple[np.ndarray, list[int | None]]:
    """Executions per warp of each SASS instruction, and the PTX pc on its line.

    An instruction runs as often as its PTX line, divided by the line's replication: when
    ptxas unrolls a loop (or duplicates a block), one PTX line has several copies of the same
    opcode, which together run as often as the line did. The replication is the largest number
    of instructions with one opcode on the line (a 64-bit add's IADD3 + IADD3.X pair counts
    as 2: a small undercount of cheap integer work). Instructions without a line (ptxas's own
    code) take the count of the instruction before them.
    """
    by_line: dict[int, tuple[float, int]] = {}
    for op in program.ops:
        c = float(per_pc[op.index])
        prev = by_line.get(op.line)
        if prev is None or c > prev[0] or (op.mem is not None and c >= prev[0]):
            by_line[op.line] = (c, op.index)
    copies: Counter[tuple[int | None, str]] = Counter((i.ptx_line, i.opcode) for i in sass)
    replication: dict[int | None, int] = {}
    for (line, _), n in copies.items():
        replication[line] = max(replication.get(line, 1), n)
    counts = np.zeros(len(sass))
    pcs: list[int | None] = []
    last = 1.0
    for i, ins in enumerate(sass):
        hit = by_line.get(ins.ptx_line) if ins.ptx_line is not None else None
        if hit is None:
            counts[i] = last
            pcs.append(None)
        else:
            counts[i] = last = hit[0] / replication[ins.ptx_line]
            pcs.append(hit[1])
    return counts, pcs


def _wait_keep(text: str) -> int:
    m = re.search(r"wait_group\s+(\d+)", text)
    return int(m[1]) if m else 0


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
    ops = program.ops
    n_warps = max(1, trace.n_warps)
    wpb = trace.warps_per_block
    pcs = np.asarray(trace.pcs, np.int64)
    activity = trace.warp_activity()
    per_pc = (
        np.bincount(pcs, weights=activity.sum(1), minlength=len(ops)) / n_warps
        if len(pcs)
        else np.zeros(len(ops))
    )
    counts, sass_pc = _counts_per_sass(sass, program, per_pc)

    # Occupancy and the L1 share of a block.
    smem = shared_bytes if shared_bytes is not None else _static_shared(program)
    occ_blocks, limiter = occupancy(prof, threads_per_block, registers, smem)
    occ_blocks = max(1, occ_blocks)
    want = total_blocks if total_blocks is not None else n_warps // wpb
    per_sm = max(1, -(-want // prof.sms))
    resident = min(occ_blocks, per_sm)
    l1_data = max(prof.l1_shared_bytes - resident * smem, 16 * 1024)
    active_sms = min(prof.sms, max(1, want))
    concurrency = max(1.0, resident * wpb * active_sms / n_warps)
    mem = _simulate_caches(
        program, trace, prof, l1_data / resident, footprint_bytes, concurrency, l2
    )

    # DRAM: the small problem's blocks share less data than the full grid's, so its per-warp
    # traffic would overstate the full problem's. Scale the full problem's footprint by the
    # fraction of its buffers the small problem touched and by the small problem's DRAM
    # traffic per distinct sector (>1 with capacity misses or L2::256B over-fetch). The
    # loads' DRAM shares shrink by the same factor (the rest of those misses hit in L2,
    # fetched by another block of the full grid).
    full_warps = max(1, want * wpb)
    scale = work_scale(trace, buffers or {}, full_warps)
    small_dram = mem.dram_total * 32.0 / n_warps * scale
    if footprint_bytes > 0 and emulated_footprint_bytes > 0 and mem.distinct > 0:
        touched = min(1.0, mem.distinct * 32.0 / emulated_footprint_bytes)
        dram_bytes = footprint_bytes * touched * (mem.dram_total / mem.distinct) / full_warps
    else:
        dram_bytes = small_dram
    dram_scale = min(1.0, dram_bytes / small_dram) if small_dram > 0 else 1.0

    # Per-pc memory units (lines + wavefronts) per executed warp-instruction.
    units = np.zeros(len(ops))
    waves = np.zeros(len(ops))
    execs = np.bincount(pcs, weights=activity.sum(1), minlength=len(ops)) if len(pcs) else units
    for s, ms in trace.mem.items():
        units[int(pcs[s])] += float(np.sum(ms.lines + ms.wavefronts))
        waves[int(pcs[s])] += float(np.sum(ms.wavefronts))
    with np.errstate(invalid="ignore", divide="ignore"):
        units_per = np.where(execs > 0, units / np.maximum(execs, 1), 1.0)
        waves_per = np.where(execs > 0, waves / np.maximum(execs, 1), 0.0)
        acc = np.maximum(mem.sectors, 1e-9)
        f_l1 = np.where(mem.sectors > 0, mem.l1 / acc, 0.0)
        f_l2 = np.where(mem.sectors > 0, mem.l2 / acc, 1.0)
        f_dram = np.where(mem.sectors > 0, mem.dram / acc, 0.0) * dram_scale
        f_l2 = f_l2 + np.where(mem.sectors > 0, mem.dram / acc, 0.0) * (1.0 - dram_scale)
    # Per SASS instruction: its PTX line's transactions, re-counted at the SASS's own access
    # width (ptxas merges scalar LDS/LDG into .64/.128 forms: one instruction, and the bank
    # conflicts and lines of the wider access, not those of the PTX instructions it replaced).
    sass_ratio = np.ones(len(sass))
    for i, ins in enumerate(sass):
        width = ins.access_bytes
        if width is not None and sass_pc[i] is not None:
            sass_ratio[i] = trace.width_ratio(sass_pc[i], width)

    def sass_units(i: int, pc: int | None) -> float:
        return float(units_per[pc] * sass_ratio[i]) if pc is not None else 1.0

    def load_latency(i: int, pc: int | None, cls: str) -> float:
        if cls in ("ld.local", "st.local"):
            return prof.l1_latency
        u = sass_units(i, pc)
        if cls == "ld.shared":
            return prof.shared_latency + REPLAY_CYCLES * max(0.0, u - 1)
        if pc is None or mem.sectors[pc] == 0:
            lat = prof.l2_latency
        else:
            lat = (
                f_l1[pc] * prof.l1_latency
                + f_l2[pc] * prof.l2_latency
                + f_dram[pc] * prof.dram_latency
            )
        return lat + REPLAY_CYCLES * max(0.0, u - 1)

    fixed_var = {
        "sfu": prof.sfu_latency,
        "conv": prof.sfu_latency,
        "s2r": prof.s2r_latency,
        "shfl": prof.shfl_latency,
        "mma": prof.mma_latency,
        "ld.const": prof.const_latency,
        "st.shared": prof.shared_latency,
        "membar": prof.l2_latency,
        "fp64": 2 * prof.sfu_latency,
    }

    with np.errstate(invalid="ignore", divide="ignore"):
        sectors_per = np.where(execs > 0, mem.sectors / np.maximum(execs, 1), 0.0)
        fetched = mem.fetched if mem.fetched is not None else np.zeros(len(ops))
        fetched_per = np.where(execs > 0, fetched / np.maximum(execs, 1), 0.0) * dram_scale

    # One warp alone: in-order issue under the control codes. Loads in flight at once (bytes
    # served beyond L1, and from DRAM) are its memory-level parallelism.
    inflight: list[tuple[float, float, float]] = []
    mlp_l2 = mlp_dram = 0.0
    sb = [0.0] * 6
    t_prev = 0.0
    stall_prev = 0.0
    cp_pending = 0.0
    cp_groups: list[float] = []
    latency = 0.0
    issue = 0.0
    lsu_units = 0.0
    by_class: Counter[str] = Counter()
    shared_units = 0.0
    for i, ins in enumerate(sass):
        c = counts[i]
        cls = sass_class(ins.opcode)
        if c <= 0 or cls == "nop":
            continue
        by_class[cls] += c
        ctl = ins.control
        t = t_prev + stall_prev
        for k in range(6):
            if ctl.wait_mask >> k & 1:
                t = max(t, sb[k])
        pc = sass_pc[i]
        if cls == "cp.async.wait":
            keep = _wait_keep(ops[pc].text) if pc is not None else 0
            groups = cp_groups[: len(cp_groups) - keep] if keep else cp_groups
            t = max(t, max(groups, default=0.0), cp_pending if keep == 0 else 0.0)
        if cls == "barrier":
            t += BARRIER_CYCLES
        latency += c * (t - t_prev) if i else 0.0
        # Results: variable latency through the write scoreboard.
        if cls in MEMORY_CLASSES:
            lat = load_latency(i, pc, cls)
            lsu_units += c * sass_units(i, pc)
            if pc is not None:  # shared wavefronts (0 for other spaces)
                shared_units += c * float(waves_per[pc] * sass_ratio[i])
            # Bytes in flight: beyond L1, and fetched from DRAM (whole chunks and prefetched
            # lines; a prefetch's fill takes the DRAM latency though nothing waits on it).
            if cls == "prefetch" and pc is not None and fetched_per[pc] > 0:
                inflight = [x for x in inflight if x[0] > t]
                inflight.append((t + prof.dram_latency, 0.0, fetched_per[pc] * 32.0))
                mlp_dram = max(mlp_dram, sum(x[2] for x in inflight))
            if cls in MEMORY_LOADS and pc is not None and sectors_per[pc] > 0:
                inflight = [x for x in inflight if x[0] > t]
                b = sectors_per[pc] * 32.0
                inflight.append((t + lat, b * (1.0 - f_l1[pc]), fetched_per[pc] * 32.0))
                mlp_l2 = max(mlp_l2, sum(x[1] for x in inflight))
                mlp_dram = max(mlp_dram, sum(x[2] for x in inflight))
        else:
            lat = fixed_var.get(cls, 0.0)
        if cls == "cp.async":
            cp_pending = max(cp_pending, t + lat)
        elif cls == "cp.async.commit":
            cp_groups.append(cp_pending)
        if ctl.write_sb != NO_SCOREBOARD and ctl.write_sb < 6:
            sb[ctl.write_sb] = max(sb[ctl.write_sb], t + max(lat, 1.0))
        if ctl.read_sb != NO_SCOREBOARD and ctl.read_sb < 6:
            sb[ctl.read_sb] = max(sb[ctl.read_sb], t + READ_SCOREBOARD_CYCLES)
        issue += c * _issue(cls, prof)
        stall_prev = float(max(1, ctl.stall))
        t_prev = t
    latency += stall_prev + max([s - t_prev for s in sb if s > t_prev], default=0.0)
    sass_per_warp = float(counts.sum())

    # A full-problem warp does `scale` times a small-problem warp's work (its share of the
    # partitioned buffers is that much longer): its latency, issue and memory work grow alike;
    # the bytes it keeps in flight at once do not.
    latency *= scale
    issue *= scale
    lsu_units *= scale
    shared_units *= scale
    l1_sectors = mem.l1_total / n_warps * scale
    l2_sectors = mem.l2_total / n_warps * scale

    def bandwidth(peak: float, w: int, mlp: float, lat: float) -> float:
        """Bytes per cycle the SM gets from a pipe of `peak` when w warps keep `mlp` bytes
        each in flight: see `loaded_bandwidth`."""
        return loaded_bandwidth(peak, w * mlp / lat) if mlp > 0 else peak

    def wave(blocks: int) -> tuple[float, dict[str, float]]:
        w = blocks * wpb
        l2_bw = bandwidth(prof.l2_bytes_per_clk_per_sm, w, mlp_l2, prof.l2_latency)
        dram_bw = bandwidth(prof.dram_bytes_per_clk / active_sms, w, mlp_dram, prof.dram_latency)
        parts = {
            "latency": latency,
            "issue": math.ceil(w / prof.schedulers) * issue,
            "lsu": w * lsu_units / prof.lsu_units_per_clk,
            "l1": w * (l1_sectors * 32.0 + shared_units * 128.0) / prof.l1_bytes_per_clk,
            "l2": w * l2_sectors * 32.0 / l2_bw,
            "dram": w * dram_bytes / dram_bw,
        }
        p = min(SMOOTH_MAX_P_MAX, 1.0 + w / prof.schedulers)
        top = max(parts.values()) or 1.0
        total = top * sum((v / top) ** p for v in parts.values()) ** (1.0 / p)
        return total, parts

    full_wave, parts = wave(resident)
    n_full, rest = divmod(per_sm, resident)
    span = n_full * full_wave + (wave(rest)[0] if rest else 0.0)
    waves = n_full + (1 if rest else 0)
    bound = max(parts, key=lambda k: parts[k])

    reads = mem.l1_total
    occ = min(1.0, occ_blocks * wpb / prof.max_warps_per_sm)
    return CostEstimate(
        estimate=float(round(span, 1)),
        wave=float(round(full_wave, 1)),
        waves=waves,
        latency=float(round(latency, 1)),
        issue_bound=float(round(parts["issue"], 1)),
        lsu_bound=float(round(parts["lsu"], 1)),
        l1_bound=float(round(parts["l1"], 1)),
        l2_bound=float(round(parts["l2"], 1)),
        dram_bound=float(round(parts["dram"], 1)),
        bound=bound,
        resident_blocks=resident,
        occupancy=occ,
        occupancy_limiter=limiter,
        l1_hit_rate=float(np.sum(mem.l1) / reads) if reads else 0.0,
        l2_hit_rate=float(np.sum(mem.l2) / max(1e-9, np.sum(mem.l2) + np.sum(mem.dram)))
        if reads
        else 0.0,
        dram_bytes_per_warp=float(round(dram_bytes, 2)),
        sass_per_warp=float(round(sass_per_warp, 2)),
        shared_wavefronts_per_warp=float(round(shared_units, 2)),
        work_scale=float(round(scale, 3)),
        counts={k: float(round(v, 3)) for k, v in sorted(by_class.items())},
        arch=prof.name,
    )


def loaded_bandwidth(peak: float, supply: float) -> float:
    """Bandwidth achieved when the bytes in flight over the unloaded latency offer `supply`
    bytes per cycle to a pipe of `peak`: 1 / (1 / peak + 1 / supply).

    Little's law gives bandwidth = bytes in flight / latency, and a queue's latency grows as
    its utilization u = bandwidth / peak nears 1, latency = unloaded / (1 - u) (an M/M/1
    queue's response time; Kleinrock, Queueing Systems vol. 1, 1975). Solving the two gives
    this form: far below the peak the warps' bytes in flight decide, near it the peak does,
    and in between both move the figure: more bytes in flight (wider loads, L2::NB fetches,
    hoisted or prefetched loads) buy a little bandwidth even in a DRAM-bound kernel. A chosen
    modelling form with no free constant, not calibrated."""
    if supply <= 0:
        return 0.0
    return 1.0 / (1.0 / peak + 1.0 / supply)


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
        pairs = np.unique(codes[inside])
        sectors = len(np.unique(addr[inside]))
        if len(pairs) / sectors > PARTITIONED_SHARING:
            continue
        scale = max(scale, (full_bytes / max(1, full_warps)) / (small_bytes / small_warps))
    return scale


def _issue(cls: str, prof: ArchProfile) -> float:
    if cls == "fp32":
        return max(1.0, 32 / prof.fp32_lanes_per_scheduler)
    if cls == "fp64":
        return max(1.0, 32 / prof.fp64_lanes_per_scheduler)
    if cls == "fp16":
        return max(1.0, 16 / prof.fp32_lanes_per_scheduler)
    return ISSUE_CYCLES.get(cls, 1.0)


def _static_shared(program: Program) -> int:
    return sum(v.size for v in program.variables if v.space == ".shared")
