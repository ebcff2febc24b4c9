"""Stage 1 of the cost model, issue: what one warp executes and how long it takes alone.

The SASS of the measured PTX (chronos.assemble.disasm), each instruction executed as often per
warp as its PTX line was in the emulated problem; the walk issues them in order under
ptxas's control codes (stall counts, scoreboards), a variable-latency result releasing its
scoreboard after its latency (memory latencies from stage 2, chronos.measure.costmodel.caches).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from chronos.arch import ArchProfile
from chronos.assemble.disasm import SassInstruction
from chronos.emulate.program import Program

NO_SCOREBOARD = 7
READ_SCOREBOARD_CYCLES = 4
"""A store's source registers are read this many cycles after issue (its read scoreboard)."""
BARRIER_CYCLES = 20

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


def issue_cycles(cls: str, prof: ArchProfile) -> float:
    """Scheduler cycles one warp instruction of class `cls` occupies."""
    if cls == "fp32":
        return max(1.0, 32 / prof.fp32_lanes_per_scheduler)
    if cls == "fp64":
        return max(1.0, 32 / prof.fp64_lanes_per_scheduler)
    if cls == "fp16":
        return max(1.0, 16 / prof.fp32_lanes_per_scheduler)
    return ISSUE_CYCLES.get(cls, 1.0)


_WIDE_INT = re.compile(
    r"(@!?%\w+\s+)?(add|sub|addc|subc|neg|min|max|selp|and|or|xor|not|setp\.\w+)(\.cc)?\.[sub]64\b"
)
"""PTX integer operations on 64 bits, which ptxas writes as two 32-bit SASS instructions."""


def counts_per_sass(
    sass: list[SassInstruction], program: Program, per_pc: np.ndarray
) -> tuple[np.ndarray, list[int | None]]:
    """Executions per warp of each SASS instruction, and the PTX pc on its line.

    An instruction runs as often as its PTX line, divided by the line's replication: when
    ptxas unrolls a loop (or duplicates a block), one PTX line has several copies of the same
    opcode, which together run as often as the line did. The replication is the largest number
    of instructions with one opcode on the line, a 64-bit integer operation's pair (IADD3 +
    IADD3.X, ISETP + ISETP.EX) counting as one copy (`emulated-cost-4` counted it as 2 and
    so ran half of a pointer chase's dependent adds, and half the load latency they wait
    for). A line that runs at most
    once per warp cannot have been unrolled: each of its copies runs as often as it did
    (`emulated-cost-4` halved a DSETP pair's count there, and with it the DRAM latency the
    first one waits for). Instructions without a line (ptxas's own code) take the count of
    the instruction before them.
    """
    by_line: dict[int, tuple[float, int]] = {}
    for op in program.ops:
        c = float(per_pc[op.index])
        prev = by_line.get(op.line)
        if prev is None or c > prev[0] or (op.mem is not None and c >= prev[0]):
            by_line[op.line] = (c, op.index)
    wide = {op.line for op in program.ops if _WIDE_INT.match(op.text)}
    copies: Counter[tuple[int | None, str]] = Counter((i.ptx_line, i.opcode) for i in sass)
    replication: dict[int | None, int] = {}
    for (line, _), n in copies.items():
        per_copy = 2 if line in wide and n % 2 == 0 else 1
        replication[line] = max(replication.get(line, 1), n // per_copy)
    counts = np.zeros(len(sass))
    pcs: list[int | None] = []
    last = 1.0
    for i, ins in enumerate(sass):
        hit = by_line.get(ins.ptx_line) if ins.ptx_line is not None else None
        if hit is None:
            counts[i] = last
            pcs.append(None)
        else:
            r = replication[ins.ptx_line] if hit[0] > 1.0 else 1
            counts[i] = last = hit[0] / r
            pcs.append(hit[1])
    return counts, pcs


def _wait_keep(text: str) -> int:
    m = re.search(r"wait_group\s+(\d+)", text)
    return int(m[1]) if m else 0


@dataclass
class WarpFigures:
    """One warp of the emulated problem, alone on its SM."""

    latency: float
    """Cycles from its first issue to its last result."""
    issue: float
    """Scheduler cycles it occupies (sum of count x issue cycles)."""
    lsu_units: float
    """128-byte lines and shared wavefronts its memory instructions cost the LSU."""
    shared_units: float
    """Shared-memory wavefronts alone."""
    sass_per_warp: float
    by_class: Counter[str] = field(default_factory=Counter)


def walk(
    sass: list[SassInstruction],
    counts: np.ndarray,
    sass_pc: list[int | None],
    program: Program,
    prof: ArchProfile,
    latency: np.ndarray,
    units: np.ndarray,
    shared_units: np.ndarray,
) -> WarpFigures:
    """Issue the SASS in order: each instruction `stall` cycles after the previous one and not
    before the scoreboards it waits on are released; per SASS instruction, `latency` is its
    result's latency, `units` and `shared_units` its LSU lines/wavefronts per execution."""
    sb = [0.0] * 6
    t_prev = stall_prev = cp_pending = total = issue = lsu = shared = 0.0
    cp_groups: list[float] = []
    by_class: Counter[str] = Counter()
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
            keep = _wait_keep(program.ops[pc].text) if pc is not None else 0
            groups = cp_groups[: len(cp_groups) - keep] if keep else cp_groups
            t = max(t, max(groups, default=0.0), cp_pending if keep == 0 else 0.0)
        if cls == "barrier":
            t += BARRIER_CYCLES
        total += c * (t - t_prev) if i else 0.0
        lat = float(latency[i])
        if cls in MEMORY_CLASSES:
            lsu += c * float(units[i])
            shared += c * float(shared_units[i])
        if cls == "cp.async":
            cp_pending = max(cp_pending, t + lat)
        elif cls == "cp.async.commit":
            cp_groups.append(cp_pending)
        if ctl.write_sb != NO_SCOREBOARD and ctl.write_sb < 6:
            sb[ctl.write_sb] = max(sb[ctl.write_sb], t + max(lat, 1.0))
        if ctl.read_sb != NO_SCOREBOARD and ctl.read_sb < 6:
            sb[ctl.read_sb] = max(sb[ctl.read_sb], t + READ_SCOREBOARD_CYCLES)
        issue += c * issue_cycles(cls, prof)
        stall_prev = float(max(1, ctl.stall))
        t_prev = t
    total += stall_prev + max([s - t_prev for s in sb if s > t_prev], default=0.0)
    return WarpFigures(total, issue, lsu, shared, float(counts.sum()), by_class)
