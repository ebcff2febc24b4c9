"""Memory instructions: ld/ldu, st, prefetch and cp.async (copies, commit and wait groups).

Each handler hands the access to the Machine (`load`, `store`, `prefetch`, `cp_async`), which
routes it to its state space, checks bounds, alignment and races, and records it in the
trace; the `MemAccess` on the Op tells the cost model what the instruction moves.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate.decode.base import BOOL, I64, U32, Decoded, Handler, mask_lanes
from chronos.emulate.operands import DTYPES, Reader, parse_immediate, unsupported
from chronos.emulate.program import MemAccess
from chronos.ptx import Instruction
from chronos.ptx.model import split_vector

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

IGNORED_MEM_MODS = re.compile(
    r"^\.(?:weak|volatile|relaxed|acquire|release|mmio|cta|cluster|gpu|sys|nc|ca|cg|cs|lu|cv|wb|wt"
    r"|L1::\w+|L2::\w+|level::\w+|unified)$"
)
"""Ordering, scope and cache modifiers: they change no value the emulator computes."""


def _mem_space(ins: Instruction) -> str:
    space = ins.space or ".generic"
    for mod in ins.modifiers:
        if mod in DTYPES or mod in (".v2", ".v4", ".v8") or mod == space:
            continue
        if mod.startswith(".shared::") or mod.startswith(".global"):
            continue
        if not IGNORED_MEM_MODS.match(mod):
            raise unsupported(f"memory modifier {mod}", ins)
    return space


def _vector(ins: Instruction, text: str) -> list[str]:
    """The registers of a (vector) value operand, as many as the instruction's .vN says."""
    regs = split_vector(text)
    if len(regs) != ins.vector_width:
        raise unsupported("vector width does not match its operand", ins)
    return regs


def _cls(prefix: str, space: str) -> str:
    """The cost model's class of a load or store: `ld`/`st`, with its space unless generic."""
    return prefix + ("" if space == ".generic" else space)


def _ld(d: Decoder, ins: Instruction) -> Decoded:
    space = _mem_space(ins)
    if ins.has(".shared::cluster"):
        raise unsupported("cluster shared memory", ins)
    dt = d.typed(ins)
    ops = d.ops(ins, 2)
    dsts = _vector(ins, ops[0])
    width = len(dsts)
    writers = [d.write(x, dt) for x in dsts]
    addr = d.address(ops[1])
    nbytes = dt.itemsize * width

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lanes = mask_lanes(mask)
        a = addr(m, lanes)
        vals = m.load(space, a, lanes, dt, width, nbytes)
        for w, v in zip(writers, vals, strict=True):
            w.scatter(m, lanes, v)

    return Decoded(fn, _cls("ld", space), mem=MemAccess(space, True, False, dt.itemsize, width))


def _st(d: Decoder, ins: Instruction) -> Decoded:
    space = _mem_space(ins)
    if space in (".param", ".const"):
        raise unsupported(f"store to {space}", ins)
    dt = d.typed(ins)
    ops = d.ops(ins, 2)
    srcs = _vector(ins, ops[1])
    width = len(srcs)
    readers = [d.read(s, dt) for s in srcs]
    addr = d.address(ops[0])
    nbytes = dt.itemsize * width

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lanes = mask_lanes(mask)
        a = addr(m, lanes)
        vals = []
        for r in readers:
            v = np.asarray(r(m))
            if v.ndim == 0:
                v = np.full(len(a), v, dt)
            elif lanes is not None:
                v = v[lanes]
            vals.append(v)
        m.store(space, a, lanes, dt, vals, nbytes)

    return Decoded(fn, _cls("st", space), mem=MemAccess(space, False, True, dt.itemsize, width))


def _prefetch(d: Decoder, ins: Instruction) -> Decoded:
    d.ops(ins, 1)
    space = ins.space or ".generic"
    addr = d.address(ins.operands[0])

    def fn(m: Any, mask: np.ndarray | None) -> None:
        # A hint: no value changes, never a fault; the trace keeps its global address
        # so the cost model sees the cache fill.
        lanes = mask_lanes(mask)
        m.prefetch(space, addr(m, lanes), lanes)

    return Decoded(fn, "prefetch")


def _cp(d: Decoder, ins: Instruction) -> Decoded:
    mods = ins.modifiers
    if not mods or mods[0] != ".async":
        raise unsupported(f"{ins.mnemonic}", ins)
    group = _cp_async_group(d, ins)
    if group is not None:
        return group
    if any(m.startswith(".bulk") or m.startswith(".mbarrier") for m in mods):
        raise unsupported(f"{ins.mnemonic}", ins)
    if not (ins.has(".ca") or ins.has(".cg")):
        raise unsupported(f"{ins.mnemonic}", ins)
    return _cp_async_copy(d, ins)


def _cp_async_group(d: Decoder, ins: Instruction) -> Decoded | None:
    """cp.async.commit_group / wait_group / wait_all; None for a copy."""
    if ins.has(".commit_group"):
        return Decoded(lambda m, mask: m.cp_async_commit(mask), "cp.async.commit")
    if ins.has(".wait_group"):
        n_imm = parse_immediate(d.ops(ins, 1)[0], I64)
        if n_imm is None:
            raise unsupported("cp.async.wait_group with a non-immediate count", ins)
        n = int(n_imm)
        return Decoded(lambda m, mask: m.cp_async_wait(mask, n), "cp.async.wait", barrier_count=n)
    if ins.has(".wait_all"):

        def wait_all(m: Any, mask: np.ndarray | None) -> None:
            m.cp_async_commit(mask)
            m.cp_async_wait(mask, 0)

        return Decoded(wait_all, "cp.async.wait", barrier_count=0)
    return None


def _cp_async_copy(d: Decoder, ins: Instruction) -> Decoded:
    """cp.async.{ca,cg}.shared.global [dst], [src], size[, src-size | ignore-src]."""
    ops = d.ops(ins, 3)
    dst = d.address(ops[0])
    src = d.address(ops[1])
    size_imm = parse_immediate(ops[2], I64)
    if size_imm is None or int(size_imm) not in (4, 8, 16):
        raise unsupported("cp.async size must be 4, 8 or 16", ins)
    size = int(size_imm)
    src_size: Reader | None = None
    ignore: Reader | None = None
    if len(ops) > 3 and not ins.has(".L2::cache_hint"):
        extra = ops[3].strip()
        idx = d.reg(extra.lstrip("!"))
        if idx is not None and d.reg_dtypes[idx].kind == "b":
            ignore = d.read(extra, BOOL)
        else:
            src_size = d.read(extra, U32)
    elif len(ops) > 4:
        src_size = d.read(ops[3], U32)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lanes = mask_lanes(mask)
        n_src = None
        if src_size is not None:
            n_src = np.asarray(src_size(m))
        if ignore is not None:
            ig = np.asarray(ignore(m))
            n_src = np.where(ig, 0, size)
        if n_src is not None and n_src.ndim and lanes is not None:
            n_src = n_src[lanes]
        m.cp_async(dst(m, lanes), src(m, lanes), lanes, size, n_src)

    return Decoded(fn, "cp.async", mem=MemAccess(".global", True, True, size, 1))


HANDLERS: dict[str, Handler] = {
    "ld": _ld,
    "ldu": _ld,
    "st": _st,
    "prefetch": _prefetch,
    "prefetchu": _prefetch,
    "cp": _cp,
}
