"""Moves and conversions: mov (with vector pack/unpack and generic(sym)), cvt between every
integer and float type (f16x2/bf16x2 packing included), cvta between state-space windows,
and isspacep.

Register bits never change on a move; a cvt rounds as its modifiers say (.rn/.rz/.rm/.rp
for floats, .rni/.rzi/.rmi/.rpi to integers) and saturates only where PTX asks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.decode.base import (
    BOOL,
    F32,
    F64,
    I64,
    IROUND_MODS,
    U32,
    Decoded,
    Handler,
    rounding,
    types,
)
from chronos.emulate.operands import DTYPES, UNSIGNED, unsupported
from chronos.ptx import Instruction
from chronos.ptx.model import split_vector

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

SPACES = (".global", ".shared", ".local", ".const", ".param")
_GENERIC = re.compile(r"^generic\(\s*([A-Za-z_$][\w$]*)\s*\)$")


def _mov(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    ops = d.ops(ins, 2)
    dst, src = ops[0].strip(), ops[1].strip()
    if dst.startswith("{"):
        parts = split_vector(dst)
        return _unpack(d, parts, src, dt)
    if src.startswith("{"):
        parts = split_vector(src)
        return _pack(d, dst, parts, dt)
    gm = _GENERIC.match(src)
    if gm:
        name = gm.group(1)
        w = d.write(dst, dt)
        if not d.is_symbol(name):
            raise unsupported(f"unknown symbol {name}", ins)
        return Decoded(lambda m, mask: w.put(m, mask, np.array(m.generic_symbol(name), dt)), "alu")
    ra = d.read(src, dt)
    w = d.write(dst, dt)
    return Decoded(lambda m, mask: w.put(m, mask, ra(m)), "alu")


def _unpack(d: Decoder, parts: list[str], src: str, dt: np.dtype) -> Decoded:
    n = len(parts)
    piece = UNSIGNED[dt.itemsize // n]
    ra = d.read(src, UNSIGNED[dt.itemsize])
    writers = [d.write(p, piece) for p in parts]
    shift = dt.itemsize * 8 // n
    u = UNSIGNED[dt.itemsize]

    def fn(m: Any, mask: np.ndarray | None) -> None:
        v = np.asarray(ra(m))
        for k, w in enumerate(writers):
            w.put(m, mask, ((v >> u.type(k * shift)) & u.type((1 << shift) - 1)).astype(piece))

    return Decoded(fn, "alu")


def _pack(d: Decoder, dst: str, parts: list[str], dt: np.dtype) -> Decoded:
    n = len(parts)
    piece = UNSIGNED[dt.itemsize // n]
    readers = [d.read(p, piece) for p in parts]
    u = UNSIGNED[dt.itemsize]
    shift = dt.itemsize * 8 // n
    w = d.write(dst, u)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        acc = np.asarray(readers[0](m)).astype(u)
        for k in range(1, n):
            acc = acc | (np.asarray(readers[k](m)).astype(u) << u.type(k * shift))
        w.put(m, mask, acc)

    return Decoded(fn, "alu")


def _cvt(d: Decoder, ins: Instruction) -> Decoded:
    names = types(ins)
    if len(names) != 2:
        raise unsupported("cvt needs two types", ins)
    dname, sname = names
    if dname in (".f16x2", ".bf16x2"):
        return _cvt_pack(d, ins, dname, sname)
    ddt, sdt = DTYPES[dname], DTYPES[sname]
    f = _converter(ins, dname, sname)
    ops = d.ops(ins, 2)
    ra = d.read(ops[1], sdt)
    w = d.write(ops[0], ddt)
    sfloat = sdt.kind == "f" or sname == ".bf16"
    dfloat = ddt.kind == "f" or dname == ".bf16"
    cls = "conv" if (sfloat or dfloat) and sname != dname else "alu"
    return Decoded(lambda m, mask: w.put(m, mask, f(ra(m))), cls)


def _converter(ins: Instruction, dname: str, sname: str) -> Callable[[np.ndarray], np.ndarray]:
    """The value function of `cvt.dname.sname` with `ins`'s rounding, .ftz and .sat."""
    ddt, sdt = DTYPES[dname], DTYPES[sname]
    ftz = ins.has(".ftz")
    sat = ins.has(".sat")
    irnd = next((IROUND_MODS[m] for m in ins.modifiers if m in IROUND_MODS), None)
    frnd = rounding(ins)
    sfloat = sdt.kind == "f" or sname == ".bf16"
    dfloat = ddt.kind == "f" or dname == ".bf16"

    def to_float_value(a: np.ndarray) -> np.ndarray:
        if sname == ".bf16":
            return nx.bf16_bits_to_f32(a)
        v = np.asarray(a)
        if ftz and v.dtype == F32:
            v = nx.ftz32(v)
        return v

    def f(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        if not sfloat and not dfloat:
            return _int_to_int(a, ddt) if sat else a.astype(ddt)
        if not sfloat and dfloat:
            if dname == ".bf16":
                return nx.f32_to_bf16_bits(nx.int_to_float(a, F32, frnd), frnd)
            return _post_float(nx.int_to_float(a, ddt, frnd), ddt, ftz, sat)
        v = to_float_value(a)
        if sfloat and not dfloat:
            return nx.float_to_int(v, ddt, irnd or "rzi")
        if irnd is not None:
            if dname != sname:
                raise unsupported("integer rounding between different float types", ins)
            r = nx.round_to_int_float(v, irnd).astype(v.dtype)
            return _post_float(r, ddt, ftz, sat)
        if dname == ".bf16":
            return nx.f32_to_bf16_bits(np.asarray(v, np.float32), frnd)
        if ddt == F32:
            r = nx.f64_to_f32(np.asarray(v, np.float64), frnd)
        elif ddt == F64:
            r = np.asarray(v, np.float64)
        else:
            r = nx.f64_to_f16(np.asarray(v, np.float64), frnd)
        return _post_float(r, ddt, ftz, sat)

    return f


def _int_to_int(a: np.ndarray, ddt: np.dtype) -> np.ndarray:
    """`cvt.sat` between integer types: clamp to the destination's range."""
    info = np.iinfo(ddt)
    if a.dtype.kind == "u":
        return (
            np.minimum(a, np.array(info.max).astype(a.dtype)).astype(ddt)
            if info.max < np.iinfo(a.dtype).max
            else a.astype(ddt)
        )
    lo = max(info.min, np.iinfo(a.dtype).min)
    hi = min(info.max, np.iinfo(a.dtype).max)
    return np.clip(a, lo, hi).astype(ddt)


def _post_float(r: np.ndarray, dt: np.dtype, ftz: bool, sat: bool) -> np.ndarray:
    r = np.asarray(r, dt)
    if ftz and dt == F32:
        r = nx.ftz32(r)
    if sat:
        r = nx.sat01(r)
    return r


def _cvt_pack(d: Decoder, ins: Instruction, dname: str, sname: str) -> Decoded:
    if sname != ".f32":
        raise unsupported(f"{ins.mnemonic}", ins)
    mode = rounding(ins)
    ops = d.ops(ins, 3)
    ra, rb = d.read(ops[1], F32), d.read(ops[2], F32)
    w = d.write(ops[0], U32)

    def half(x: np.ndarray) -> np.ndarray:
        if dname == ".bf16x2":
            return nx.f32_to_bf16_bits(x, mode).astype(np.uint32)
        return (
            np.asarray(nx.f64_to_f16(np.asarray(x, np.float64), mode))
            .view(np.uint16)
            .astype(np.uint32)
        )

    return Decoded(
        lambda m, mask: w.put(m, mask, (half(ra(m)) << np.uint32(16)) | half(rb(m))), "conv"
    )


def _cvta(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    to = ins.has(".to")
    space = ins.space
    if space not in SPACES:
        raise unsupported(f"{ins.mnemonic}", ins)
    u = UNSIGNED[dt.itemsize]

    def f(m: Any, a: np.ndarray) -> np.ndarray:
        base = np.array(m.window(space), np.uint64).astype(u)
        return (a - base) if to else (a + base)

    ops = d.ops(ins, 2)
    ra = d.read(ops[1], u)
    w = d.write(ops[0], u)
    return Decoded(lambda m, mask: w.put(m, mask, f(m, np.asarray(ra(m)))), "alu")


def _isspacep(d: Decoder, ins: Instruction) -> Decoded:
    space = next((m for m in ins.modifiers if m in SPACES), None)
    if space is None:
        raise unsupported(f"{ins.mnemonic}", ins)
    ops = d.ops(ins, 2)
    ra = d.read(ops[1], I64)
    w = d.write(ops[0], BOOL)
    return Decoded(lambda m, mask: w.put(m, mask, m.in_space(space, ra(m))), "alu")


HANDLERS: dict[str, Handler] = {
    "mov": _mov,
    "cvt": _cvt,
    "cvta": _cvta,
    "isspacep": _isspacep,
}
