"""Instruction effects and dependences: what may move past what inside a basic block.

Scheduling and vectorizing move instructions, which is only legal when nothing observes the
new order. An instruction is classified once (registers read and written, memory read or
written and where, or a *fence* that nothing may cross: barriers, ordered atomics, branches,
volatile and ordered accesses, carry chains, anything not known to be plain). A relaxed atomic
(`atom`/`red` without `.acquire`/`.release`/... : PTX's default semantics) orders nothing but
its own location (PTX ISA, "Memory Consistency Model"), so it is a read and a write of its
address like any other access, not a fence. Two memory accesses
conflict unless they are provably disjoint: different state spaces, the same base register
(same definition) with non-overlapping byte ranges, or bases rooted in different allocations.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from chronos.ptx import BasicBlock, Instruction, split_vector, type_bytes

from .alignment import PointerAnalysis

PURE_OPCODES = frozenset(
    "add sub mul mad fma mov cvt cvta shl shr and or xor not neg abs min max selp setp set slct "
    "div rem sqrt rsqrt rcp ex2 lg2 sin cos tanh copysign bfe bfi brev popc clz prmt lop3 "
    "dp4a dp2a testp bmsk szext shf mul24 mad24 sad cnot fns isspacep".split()
)
"""Register-only instructions with no side effects (unless they use a carry, see below)."""

_ORDERED = frozenset(".volatile .relaxed .acquire .release .sc .acq_rel .mmio .weak".split())
_READ_ONLY_SPACES = frozenset({".param", ".const"})


@dataclass(frozen=True)
class Access:
    """Where a memory instruction reads or writes: space, base register and its definition."""

    space: str | None
    base: str
    version: int
    offset: int
    size: int
    roots: frozenset[str] | None


@dataclass(frozen=True)
class Effect:
    instr: Instruction
    index: int
    reads: frozenset[str]
    writes: frozenset[str]
    mem_read: bool
    mem_write: bool
    fence: bool
    access: Access | None


def access_size(instr: Instruction) -> int:
    """Bytes touched by a load/store (vector width times element size)."""
    t = instr.type
    if t is None:
        return 0
    try:
        return type_bytes(t) * instr.vector_width
    except ValueError:
        return 0


def is_global_load(instr: Instruction) -> bool:
    return instr.opcode in ("ld", "ldu") and instr.space == ".global"


def is_plain_access(instr: Instruction) -> bool:
    """A weak load or store (no volatile/ordering semantics) that is safe to reorder."""
    return instr.opcode in ("ld", "st") and not (set(instr.modifiers) & _ORDERED)


def _relaxed_atomic(instr: Instruction) -> bool:
    """An atomic with PTX's default (relaxed) semantics: no ordering beyond its address."""
    return (
        instr.opcode in ("atom", "red")
        and not (set(instr.modifiers) & _ORDERED)
        and access_size(instr) > 0  # a size we know, so disjointness can be proved
    )


def classify(
    instr: Instruction, index: int, versions: dict[str, int], info: PointerAnalysis | None
) -> Effect:
    """Effects of one instruction; `versions` counts definitions of each register so far."""
    reads = set(instr.registers_read())
    writes = set(instr.dests)
    if instr.guard is not None:
        reads |= writes  # a predicated write keeps the old value when the guard is false
    op = instr.opcode
    fence = False
    mem_read = mem_write = False
    access = None
    carry = ".cc" in instr.modifiers or op in ("addc", "subc", "madc")
    if op in PURE_OPCODES and not carry:
        pass
    elif op == "prefetch" or op == "prefetchu":
        pass  # a hint: no observable effect, orders with nothing
    elif (op in ("ld", "ldu", "st") and is_plain_access(instr)) or _relaxed_atomic(instr):
        space = instr.space
        if op in ("ld", "ldu") and space in _READ_ONLY_SPACES:
            pass
        elif space in (".global", ".shared", ".local", None):
            addr = instr.address()
            if addr is None:
                fence = True
            else:
                roots = info.address(instr).roots if info is not None else None
                access = Access(
                    space,
                    addr.base,
                    versions.get(addr.base, 0),
                    addr.offset,
                    access_size(instr),
                    roots,
                )
                mem_read = op != "st"
                mem_write = op not in ("ld", "ldu")
        else:
            fence = True
    else:
        fence = True
    return Effect(
        instr, index, frozenset(reads), frozenset(writes), mem_read, mem_write, fence, access
    )


def effects(instrs: Sequence[Instruction], info: PointerAnalysis | None) -> list[Effect]:
    """Classify a straight-line run in order, tracking register definitions."""
    versions: dict[str, int] = {}
    out = []
    for i, instr in enumerate(instrs):
        e = classify(instr, i, versions, info)
        out.append(e)
        for w in e.writes:
            versions[w] = versions.get(w, 0) + 1
    return out


def block_effects(block: BasicBlock, info: PointerAnalysis | None) -> list[Effect]:
    return effects(block.instructions, info)


def may_alias(a: Access | None, b: Access | None) -> bool:
    """False only when the two accesses provably touch disjoint bytes."""
    if a is None or b is None:
        return True
    if a.space is not None and b.space is not None and a.space != b.space:
        return False
    if a.base == b.base and a.version == b.version:
        return a.offset < b.offset + b.size and b.offset < a.offset + a.size
    if a.roots and b.roots and not (a.roots & b.roots):
        return False  # rooted in different allocations
    return True


def conflict(a: Effect, b: Effect) -> bool:
    """Must `a` and `b` keep their relative order?"""
    if a.fence or b.fence:
        return True
    if a.writes & (b.reads | b.writes) or a.reads & b.writes:
        return True
    if (a.mem_write and (b.mem_read or b.mem_write)) or (a.mem_read and b.mem_write):
        return may_alias(a.access, b.access)
    return False


def segments(effs: Sequence[Effect]) -> list[list[Effect]]:
    """Maximal fence-free runs: the units inside which instructions may be permuted."""
    out: list[list[Effect]] = []
    cur: list[Effect] = []
    for e in effs:
        if e.fence:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(e)
    if cur:
        out.append(cur)
    return out


def vector_regs(operand: str) -> list[str]:
    """Registers named by a scalar or `{...}` vector operand."""
    return [r for r in split_vector(operand) if re.match(r"^%[\w$.]+$", r)]
