"""Bit operations: and/or/xor/not/cnot/lop3, shifts (shl/shr/shf), counts (popc/clz/bfind),
brev, bit fields (bfe/bfi) and byte permutes (prmt).

Shift amounts past the width saturate as PTX defines (zero, or the sign for signed shr),
rather than wrapping as NumPy's shifts would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.decode.base import U32, Decoded, Handler
from chronos.emulate.operands import UNSIGNED, parse_immediate, unsupported
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

PRMT_MODES = (".f4e", ".b4e", ".rc8", ".ecl", ".ecr", ".rc16")


def _logic(f: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Handler:
    """The handler of a bitwise binary operation on `ins`'s own type."""

    def handler(d: Decoder, ins: Instruction) -> Decoded:
        return d.binary(ins, f, d.typed(ins))

    return handler


def _not(d: Decoder, ins: Instruction) -> Decoded:
    return d.unary(ins, np.invert, d.typed(ins))


def _cnot(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.unary(ins, lambda a: (a == 0).astype(dt), dt)


def _lop3(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    ops = d.ops(ins, 5)
    lut_imm = parse_immediate(ops[4], U32)
    if lut_imm is None:
        raise unsupported("lop3 with a non-immediate LUT", ins)
    lut = int(lut_imm)

    def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        r = np.zeros(np.broadcast(a, b, c).shape, dt)
        for i in range(8):
            if lut >> i & 1:
                r = r | ((a if i & 4 else ~a) & (b if i & 2 else ~b) & (c if i & 1 else ~c))
        return r

    return d.ternary(ins, f, dt)


def _shl(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    bits = dt.itemsize * 8
    u = UNSIGNED[dt.itemsize]

    def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        amt = np.asarray(b, np.uint32)
        r = np.asarray(a).view(u) << np.minimum(amt, bits - 1).astype(u)
        return np.where(amt >= bits, u.type(0), r).astype(u).view(dt)

    return d.binary(ins, f, dt, b_dt=U32)


def _shr(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    bits = dt.itemsize * 8

    def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        amt = np.asarray(b, np.uint32)
        r = np.asarray(a) >> np.minimum(amt, bits - 1).astype(dt)
        if dt.kind == "i":
            return r
        return np.where(amt >= bits, dt.type(0), r).astype(dt)

    return d.binary(ins, f, dt, b_dt=U32)


def _shf(d: Decoder, ins: Instruction) -> Decoded:
    left = ins.has(".l")
    clamp = ins.has(".clamp")
    return d.ternary(ins, lambda a, b, c: nx.funnel_shift(a, b, c, left, clamp), U32)


def _popc(d: Decoder, ins: Instruction) -> Decoded:
    return d.unary(ins, nx.popc, d.typed(ins), out_dt=U32)


def _clz(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.unary(ins, lambda a: nx.clz(a, dt.itemsize * 8), dt, out_dt=U32)


def _bfind(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    shift = ins.has(".shiftamt")
    return d.unary(
        ins, lambda a: nx.bfind(a, dt.itemsize * 8, dt.kind == "i", shift), dt, out_dt=U32
    )


def _brev(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.unary(ins, lambda a: nx.brev(a, dt.itemsize * 8), dt)


def _bfe(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    ops = d.ops(ins, 4)
    ra = d.read(ops[1], dt)
    rb, rc = d.read(ops[2], U32), d.read(ops[3], U32)
    w = d.write(ops[0], dt)
    bits, signed = dt.itemsize * 8, dt.kind == "i"
    return Decoded(lambda m, mask: w.put(m, mask, nx.bfe(ra(m), rb(m), rc(m), bits, signed)), "alu")


def _bfi(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    ops = d.ops(ins, 5)
    ra, rb = d.read(ops[1], dt), d.read(ops[2], dt)
    rc, rd = d.read(ops[3], U32), d.read(ops[4], U32)
    w = d.write(ops[0], dt)
    bits = dt.itemsize * 8
    return Decoded(
        lambda m, mask: w.put(m, mask, nx.bfi(ra(m), rb(m), rc(m), rd(m), bits).view(dt)), "alu"
    )


def _prmt(d: Decoder, ins: Instruction) -> Decoded:
    mode = next((m[1:] for m in ins.modifiers if m in PRMT_MODES), None)
    return d.ternary(ins, lambda a, b, c: nx.prmt(a, b, c, mode), U32)


HANDLERS: dict[str, Handler] = {
    "and": _logic(np.bitwise_and),
    "or": _logic(np.bitwise_or),
    "xor": _logic(np.bitwise_xor),
    "not": _not,
    "cnot": _cnot,
    "lop3": _lop3,
    "shl": _shl,
    "shr": _shr,
    "shf": _shf,
    "popc": _popc,
    "clz": _clz,
    "bfind": _bfind,
    "brev": _brev,
    "bfe": _bfe,
    "bfi": _bfi,
    "prmt": _prmt,
}
