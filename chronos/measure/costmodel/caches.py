"""Stage 2 of the cost model, the memory hierarchy: where each global access is served.

L1 (per block) and L2 (shared) hits come from the trace's 32-byte sectors in execution order
under each access's cache policy (a reuse-distance LRU, shrunk when the footprint exceeds the
capacity); what misses L2 is DRAM traffic, split into reads and write-backs because the DRAM
bus reaches a different share of its peak for each (chronos.measure.costmodel.wave).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from chronos.arch import ArchProfile
from chronos.emulate.program import Program
from chronos.emulate.trace import Trace

L2_USABLE_FRACTION = 0.75
"""Share of L2 a footprint may occupy before it spills (set conflicts, the other L2
partition's copies on A100/H100). A chosen modelling constant."""
L2_LINE_BYTES = 128
"""An L2 line (four 32-byte sectors; NVIDIA's Nsight Compute "Memory Tables"): what a
`prefetch` brings ("the cache line containing the address", PTX ISA, prefetch)."""
FILL_LEAD_STEPS = 128
"""A prefetch or an `L2::NB` chunk fetched from DRAM is complete this many of the warp's
instructions later: a warp issues about one instruction every 4-5 cycles in memory-bound
code, and a DRAM fill takes 500-650 cycles. A demand access to such a sector sooner waits for
the fill (a hit on a miss in flight: the DRAM latency, no DRAM traffic of its own). A chosen
modelling constant; `emulated-cost-4` served it at the L2 latency, which made `L2::256B` and
a prefetch right before a load look like 19% wins on a cold fp16 stream."""
REPLAY_CYCLES = 2
"""Extra latency per additional 128-byte line or shared-memory wavefront of one instruction."""


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
class MemFigures:
    """Per PTX pc: sector accesses and where they were served (summed over warps)."""

    sectors: np.ndarray
    l1: np.ndarray
    l2: np.ndarray
    dram: np.ndarray
    dram_total: float
    l2_total: float
    l1_total: float
    distinct: float = 0.0
    dram_written: float = 0.0
    """Of `dram_total`, the sectors written back (the rest are read fetches)."""
    inflight: np.ndarray | None = None
    """Per PTX pc: of its L2-served sectors, those that wait for a DRAM fill still in flight
    (the other sectors of a chunk its own access fetched, a recent prefetch's line)."""


@dataclass
class _Accesses:
    """Every sector the trace's global accesses touch, in trace order, with its access's
    cache policy (one row per sector)."""

    order: np.ndarray  # the access's index in trace.sectors
    sector: np.ndarray
    block: np.ndarray
    pc: np.ndarray
    steps: np.ndarray  # per access: its trace step
    lookup: np.ndarray
    alloc: np.ndarray
    l1pri: np.ndarray  # "normal", "first" or "last", as fixed-width strings (fast compares)
    l2pri: np.ndarray
    chunk: np.ndarray  # sectors an L2::NB miss (or prefetch) fetches
    is_pf: np.ndarray
    is_st: np.ndarray


def _accesses(program: Program, trace: Trace) -> _Accesses:
    n_ops = len(program.ops)
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
    code = np.concatenate(parts_code)
    pc_of = np.concatenate(parts_pc)

    def per_pc(attr: str, dtype: type | str) -> np.ndarray:
        table = np.zeros(n_ops, dtype)
        for p, pol in pols.items():
            table[p] = getattr(pol, attr)
        return table[pc_of]

    return _Accesses(
        order=np.concatenate(parts_order),
        sector=code & ((1 << 40) - 1),
        block=(code >> 40) // trace.warps_per_block,
        pc=pc_of,
        steps=np.asarray([st for st, _ in trace.sectors], np.int64),
        lookup=per_pc("l1_lookup", bool),
        alloc=per_pc("l1_allocate", bool),
        l1pri=per_pc("l1_priority", "U6"),
        l2pri=per_pc("l2_priority", "U6"),
        chunk=np.maximum(1, per_pc("l2_prefetch_bytes", np.int64) // 32),
        is_pf=per_pc("prefetch", bool),
        is_st=per_pc("store", bool),
    )


def _line_use(sector: np.ndarray) -> float:
    """The share of their 128-byte lines the touched sectors fill: both caches allocate
    lines (four sectors), so a footprint that uses fewer of a line's sectors (a chase, a
    column walk) fills them at 128 bytes per line it touches."""
    return distinct_count(sector) / max(1, distinct_count(sector // 4)) / 4.0


def _l1_hits(acc: _Accesses, l1_bytes_per_block: float, line_use: float) -> np.ndarray:
    """Per sector, 1.0 where L1 serves it. L1 is per block, shared by its warps: an access
    hits when, since the same block's last allocating access to the sector, the block
    allocated at most its L1 share (a reuse-distance LRU over fills: a store, an
    `L1::no_allocate` or `.cg` load and a prefetch to L2 displace nothing); evict-first lines
    survive a quarter of that distance, evict-last lines twice it."""
    bkey = (acc.block << 40) | acc.sector
    pos, fills = _stream_position(acc.block, acc.order, acc.alloc)
    prev = _previous(bkey, pos, acc.alloc)
    cap = l1_bytes_per_block / 32.0 * line_use
    pri = acc.l1pri
    reach = np.where(pri == "first", cap / 4, np.where(pri == "last", 2 * cap, cap))
    since = fills - fills[np.maximum(_index_at(acc.block, pos, prev), 0)]
    return (acc.lookup & (prev >= 0) & (since <= reach)).astype(np.float64)


def _chunk_pool(acc: _Accesses) -> tuple[np.ndarray, np.ndarray]:
    """(sector, access order) of everything that brought a sector into L2: an L2::NB access
    (and a prefetch) brings its whole N-byte chunk."""
    pool_k, pool_o = [acc.sector], [acc.order]
    wide = acc.chunk > 1
    if wide.any():
        chunk = acc.chunk[wide]
        width = int(acc.chunk.max())
        offs = np.arange(width)[None, :]
        base = (acc.sector[wide] // chunk) * chunk
        valid = (offs < chunk[:, None]).ravel()
        pool_k.append((base[:, None] + offs).ravel()[valid])
        pool_o.append(np.repeat(acc.order[wide], width)[valid])
    return np.concatenate(pool_k), np.concatenate(pool_o)


def _l2_reuse(
    acc: _Accesses,
    all_k: np.ndarray,
    all_o: np.ndarray,
    room: float,
    concurrency: float,
    line_use: float,
) -> np.ndarray:
    """Per sector: whether a re-access hits L2. It does when the sectors the whole GPU
    touched since (the small problem's count scaled by the full grid's concurrent warps over
    the emulated warps) fit in the usable L2 (evict-first lines a quarter of it, evict-last
    twice)."""
    order = acc.order
    prev_o = _previous_of(acc.sector, order, all_k, all_o)
    cum = np.r_[0, np.cumsum(np.bincount(order, minlength=int(order.max()) + 1))]
    dist = (cum[order] - cum[np.maximum(prev_o, 0)]) * 32.0 * concurrency
    lines_room = room * line_use  # the distance counts sectors, L2 holds lines
    pri = acc.l2pri
    reach = np.where(
        pri == "first", lines_room / 4, np.where(pri == "last", 2 * lines_room, lines_room)
    )
    return (prev_o >= 0) & (dist <= reach)


def _chunk_mates(acc: _Accesses) -> np.ndarray:
    """The sectors an L2::NB access fetched along with its chunk's first (they hit): one
    access fetches each chunk once."""
    wide = acc.chunk > 1
    if not wide.any():
        return np.zeros(len(acc.sector), bool)
    group = (acc.order << 24) ^ (acc.sector // acc.chunk)
    first = np.zeros(len(acc.sector), bool)
    first[np.unique(group, return_index=True)[1]] = True
    return wide & ~first & ~acc.is_st


def simulate_caches(
    program: Program,
    trace: Trace,
    prof: ArchProfile,
    l1_bytes_per_block: float,
    footprint_bytes: float,
    concurrency: float = 1.0,
    l2: str = "cold",
) -> MemFigures:
    """L1/L2 service of every global access (reuse distances with capacity scaling).

    `l2` is the harness's mode: "cold" (its default: L2 flushed before every timed launch)
    serves every first touch from DRAM; "hot" (the previous launch's data resident) serves
    first touches from L2 with the share of the full footprint that stays resident."""
    n = len(program.ops)
    out = MemFigures(*(np.zeros(n) for _ in range(4)), 0.0, 0.0, 0.0)
    if not trace.sectors:
        return out
    acc = _accesses(program, trace)
    sector, is_st = acc.sector, acc.is_st
    line_use = _line_use(sector)
    served_l1 = _l1_hits(acc, l1_bytes_per_block, line_use)

    # L2, shared by all blocks. With a cold L2 (the harness flushed it) a first touch comes
    # from DRAM; with a hot one it (or a re-access that did not fit) still hits with the
    # share of the full footprint that stays resident.
    room = prof.l2_bytes * L2_USABLE_FRACTION
    all_k, all_o = _chunk_pool(acc)
    reuse = _l2_reuse(acc, all_k, all_o, room, concurrency, line_use)
    hot = l2 == "hot"
    warm = _warm_shares(sector, acc.l2pri, room, footprint_bytes) if hot else None
    first_touch = warm if warm is not None else np.zeros(len(sector))
    served_l2 = np.where(is_st, 1.0, (1.0 - served_l1) * np.where(reuse, 1.0, first_touch))
    mates = _chunk_mates(acc)
    served_l2 = np.where(mates, 1.0 - served_l1, served_l2)
    # A hit whose sector's first fill (cold: from DRAM) came fewer than FILL_LEAD_STEPS steps
    # before waits for it; so do the other sectors of the chunk the access itself fetched.
    fill_o = _first_of(sector, all_k, all_o)
    lead = acc.steps[acc.order] - acc.steps[np.maximum(fill_o, 0)]
    recent = (fill_o >= 0) & (lead < FILL_LEAD_STEPS)
    waits = ~is_st & (mates | (reuse & recent & (l2 == "cold")))
    served_dram = np.where(is_st, 0.0, 1.0 - served_l1 - served_l2)

    demand = ~acc.is_pf
    out.sectors = np.bincount(acc.pc, weights=demand * 1.0, minlength=n)
    out.l1 = np.bincount(acc.pc, weights=demand * served_l1, minlength=n)
    out.l2 = np.bincount(acc.pc, weights=demand * served_l2, minlength=n)
    out.dram = np.bincount(acc.pc, weights=demand * served_dram, minlength=n)
    out.inflight = np.bincount(acc.pc, weights=demand * waits * served_l2, minlength=n)
    fetches = _merged_fetches(acc.order, sector, served_dram * acc.chunk)
    # DRAM traffic: each read miss (prefetches included) fetches its chunk (one sector, or
    # N/32 for L2::NB) once however many warps missed on it in the same step (L2 merges
    # misses to a sector in flight); every distinct written sector is written back once
    # unless it stays (the share of the footprint that fits, in either mode). A cold launch
    # writes back every sector it writes within its span: its own, or a dirty line of the
    # harness's flush memset that its allocation displaced from L2.
    kept = float(np.mean(warm[is_st])) if warm is not None and is_st.any() else 0.0
    out.dram_written = distinct_count(sector[is_st]) * (1.0 - kept)
    out.dram_total = float(np.sum(fetches)) + out.dram_written
    out.distinct = float(distinct_count(sector))
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
    total = max(1, distinct_count(sector))
    keep: dict[str, float] = {}
    left = room
    for pri in ("last", "normal", "first"):
        f = footprint * distinct_count(sector[priority == pri]) / total
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


def _ranked(keys: np.ndarray, span: int) -> np.ndarray:
    """Order-preserving int64 ids of `keys` whose products with `span` fit in int64: the keys
    themselves where they do (sector codes do, with a block's or an access's count), which
    saves `np.unique`'s sort of every key; their ranks among the distinct keys otherwise."""
    if len(keys) and int(keys.min()) >= 0 and int(keys.max()) < (1 << 62) // span:
        return keys.astype(np.int64, copy=False)
    return np.unique(keys, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _previous(keys: np.ndarray, pos: np.ndarray, where: np.ndarray) -> np.ndarray:
    """For each element, the largest `pos` < its own of an element with the same key and
    `where` set (-1 when none)."""
    if not where.any():
        return np.full(len(keys), -1, np.int64)
    span = int(pos.max()) + 2
    kid = _ranked(keys, span)
    code = kid * span + pos
    pool = np.sort(code[where])
    j = np.searchsorted(pool, code, side="left") - 1
    found = j >= 0
    cand = pool[np.maximum(j, 0)]
    ok = found & (cand // span == kid)
    return np.where(ok, cand % span, -1)


def _first_of(keys: np.ndarray, pool_keys: np.ndarray, pool_order: np.ndarray) -> np.ndarray:
    """For each key, the smallest pool order with that key (-1: none)."""
    if not len(pool_keys):
        return np.full(len(keys), -1, np.int64)
    idx = np.lexsort((pool_order, pool_keys))
    pk, po = pool_keys[idx], pool_order[idx]
    starts = np.r_[0, np.flatnonzero(pk[1:] != pk[:-1]) + 1]
    uk, first = pk[starts], po[starts]
    j = np.minimum(np.searchsorted(uk, keys), len(uk) - 1)
    return np.where(uk[j] == keys, first[j], -1)


def distinct_count(keys: np.ndarray) -> int:
    """How many distinct keys: a mask over their range where it is dense (sector numbers of a
    kernel's buffers are), a quarter of `np.unique`'s cost; `np.unique` otherwise."""
    if not len(keys):
        return 0
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo < 8 * len(keys) + 4096:
        seen = np.zeros(hi - lo + 1, bool)
        seen[keys - lo] = True
        return int(np.count_nonzero(seen))
    return int(len(np.unique(keys)))


def _previous_of(
    keys: np.ndarray, order: np.ndarray, pool_keys: np.ndarray, pool_order: np.ndarray
) -> np.ndarray:
    """For each (key, order), the largest pool order < it with the same key (-1: none)."""
    if not len(pool_keys):
        return np.full(len(keys), -1, np.int64)
    span = int(max(order.max(), pool_order.max())) + 2
    ids = _ranked(np.concatenate([keys, pool_keys]), span)
    qid, pid = ids[: len(keys)], ids[len(keys) :]
    pool = np.sort(pid * span + pool_order)
    code = qid * span + order
    j = np.searchsorted(pool, code, side="left") - 1
    cand = pool[np.maximum(j, 0)]
    ok = (j >= 0) & (cand // span == qid)
    return np.where(ok, cand % span, -1)


def l2_hit_latency(prof: ArchProfile, footprint_bytes: float) -> float:
    """An L2 hit's latency: the near partition's while the footprint fits one partition (half
    the L2 of a split-L2 part, where A100 and H100 keep data near the SM that asked), the far
    one's beyond (the pointer-chase plateaus of gpu-benches: A100 ~211 / ~423, H100 ~265 /
    ~475 cycles)."""
    if prof.l2_far_latency is None or footprint_bytes <= prof.l2_bytes / 2:
        return prof.l2_latency
    return prof.l2_far_latency
