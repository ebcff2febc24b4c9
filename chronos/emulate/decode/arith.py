"""Integer and float arithmetic: add/sub/mul/mad (and their 24-bit, wide and hi forms), fma,
div/rem, abs/neg/min/max, copysign and testp.

Float results are rounded exactly as PTX says (chronos.emulate.numerics); f16 and f16x2 are
computed exactly in float64 and rounded once (round to odd, then to f16).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.batch import FMA_F32
from chronos.emulate.decode.base import (
    BOOL,
    F32,
    F64,
    U32,
    Decoded,
    Handler,
    float_cls,
    float_wrap,
    rounding,
)
from chronos.emulate.decode.sfu import approx
from chronos.emulate.operands import SIGNED, UNSIGNED, unsupported
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder


def _f16(d: Decoder, ins: Instruction, f64op: Callable[..., np.ndarray], n: int) -> Decoded:
    """f16 / f16x2 arithmetic: exact in float64, one rounding (round to odd, then f16)."""
    t = ins.type
    packed = t == ".f16x2"
    mode = rounding(ins)
    ops = d.ops(ins, n + 1)
    carrier = U32 if packed else np.dtype(np.uint16)
    readers = [d.read(o, carrier) for o in ops[1 : n + 1]]
    w = d.write(ops[0], carrier)
    sat = ins.has(".sat")

    def one(vals: list[np.ndarray]) -> np.ndarray:
        s, e = f64op(*[v.view(np.float16).astype(np.float64) for v in vals])
        r = nx.f64_to_f16(nx.round_odd(np.asarray(s, np.float64), np.asarray(e, np.float64)), mode)
        if sat:
            r = nx.sat01(r)
        return np.asarray(r, np.float16).view(np.uint16)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        vals = [np.atleast_1d(np.asarray(r(m))) for r in readers]
        if packed:
            lo = one([(v & 0xFFFF).astype(np.uint16) for v in vals]).astype(np.uint32)
            hi = one([(v >> 16).astype(np.uint16) for v in vals]).astype(np.uint32)
            w.put(m, mask, lo | (hi << np.uint32(16)))
        else:
            w.put(m, mask, one(vals))

    return Decoded(fn, "fp16")


def _add(d: Decoder, ins: Instruction) -> Decoded:
    return _addsub(d, ins, 1)


def _sub(d: Decoder, ins: Instruction) -> Decoded:
    return _addsub(d, ins, -1)


def _addsub(d: Decoder, ins: Instruction, sign: int) -> Decoded:
    if ins.has(".cc"):
        raise unsupported("carry-chain arithmetic (.cc)", ins)
    dt = d.typed(ins)
    t = ins.type
    if t in (".f16", ".f16x2"):
        return _f16(d, ins, lambda a, b: nx.two_sum(a, sign * b), 2)
    if dt.kind == "f":
        mode = rounding(ins)
        if dt == F32:
            base = nx.add_f32
        elif dt == F64:
            base = nx.add_f64
        else:
            raise unsupported(f"{ins.mnemonic}", ins)
        f = float_wrap(ins, dt, lambda a, b: base(a, b if sign > 0 else -b, mode))
        return d.binary(ins, f, dt, cls=float_cls(dt))
    if ins.has(".sat"):
        if dt != np.dtype(np.int32):
            raise unsupported("saturating add/sub on a type other than .s32", ins)

        def sat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            r = a.astype(np.int64) + sign * np.asarray(b).astype(np.int64)
            return np.clip(r, -(2**31), 2**31 - 1).astype(np.int32)

        return d.binary(ins, sat, dt)
    if sign > 0:
        return d.binary(ins, np.add, dt)
    return d.binary(ins, np.subtract, dt)


def _wide(dt: np.dtype) -> np.dtype | None:
    """The integer type twice as wide as `dt` (same signedness); None for 64-bit `dt`."""
    if dt.itemsize >= 8:
        return None
    return np.dtype(SIGNED[dt.itemsize * 2] if dt.kind == "i" else UNSIGNED[dt.itemsize * 2])


def _mul(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    t = ins.type
    if t in (".f16", ".f16x2"):
        return _f16(d, ins, lambda a, b: (a * b, np.zeros_like(a)), 2)
    if dt.kind == "f":
        mode = rounding(ins)
        base = nx.mul_f32 if dt == F32 else nx.mul_f64
        f = float_wrap(ins, dt, lambda a, b: base(a, b, mode))
        return d.binary(ins, f, dt, cls=float_cls(dt))
    wide = _wide(dt)
    if ins.has(".wide"):
        if wide is None:
            raise unsupported("mul.wide on 64-bit operands", ins)
        return d.binary(
            ins,
            lambda a, b: a.astype(wide) * np.asarray(b).astype(wide),
            dt,
            out_dt=wide,
            cls="imul",
        )
    if ins.has(".hi"):
        return d.binary(ins, lambda a, b: _mul_hi(a, b, dt, wide), dt, cls="imul")
    return d.binary(ins, np.multiply, dt, cls="imul")


def _mad(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if dt.kind == "f":
        return _fma(d, ins)
    if ins.has(".cc") or ins.opcode == "madc":
        raise unsupported("carry-chain arithmetic (.cc)", ins)
    wide = _wide(dt)
    if ins.has(".wide"):
        if wide is None:
            raise unsupported("mad.wide on 64-bit operands", ins)
        return d.ternary(
            ins,
            lambda a, b, c: a.astype(wide) * np.asarray(b).astype(wide) + c,
            dt,
            out_dt=wide,
            cls="imul",
        )
    if ins.has(".hi"):
        if ins.has(".sat"):
            raise unsupported("mad.hi.sat", ins)
        return d.ternary(ins, lambda a, b, c: _mul_hi(a, b, dt, wide) + c, dt, cls="imul")
    return d.ternary(ins, lambda a, b, c: a * b + c, dt, cls="imul")


def _mul24(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if ins.has(".hi"):
        raise unsupported("mul24.hi", ins)

    def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _mul24_lo(a, b, dt)

    return d.binary(ins, f, dt, cls="imul")


def _mad24(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if ins.has(".hi") or ins.has(".sat"):
        raise unsupported("mad24.hi / mad24.sat", ins)

    def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return _mul24_lo(a, b, dt) + c

    return d.ternary(ins, f, dt, cls="imul")


def _fma(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    t = ins.type
    if t in (".f16", ".f16x2"):
        return _f16(d, ins, lambda a, b, c: nx.two_sum(a * b, c), 3)
    mode = rounding(ins)
    if dt == F32:
        f = float_wrap(ins, dt, lambda a, b, c: nx.fma_f32(a, b, c, mode))
    elif dt == F64:
        f = float_wrap(ins, dt, lambda a, b, c: nx.fma_f64(a, b, c, mode))
    else:
        raise unsupported(f"{ins.mnemonic}", ins)
    decoded = d.ternary(ins, f, dt, cls=float_cls(dt))
    if dt == F32 and mode == "rn" and not ins.has(".ftz") and not ins.has(".sat"):
        regs = [d.reg(t.strip()) for t in ins.operands[:4]]
        if all(i is not None and d.reg_dtypes[i] == U32 for i in regs):
            decoded.batch = (FMA_F32, tuple(regs))  # type: ignore[arg-type]
    return decoded


def _sad(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)

    def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        wide = np.int64 if dt.itemsize <= 4 else dt
        diff = np.abs(np.asarray(a).astype(wide) - np.asarray(b).astype(wide))
        return (diff.astype(dt) + c).astype(dt)

    return d.ternary(ins, f, dt)


def _div(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if dt == F32 and ins.has(".approx"):
        return approx(d, ins, "div.approx", 2)
    if dt == F32 and ins.has(".full"):
        return approx(d, ins, "div.full", 2)
    if dt.kind == "f":
        mode = rounding(ins)
        if dt == F32:
            f = float_wrap(ins, dt, lambda a, b: nx.div_f32(a, b, mode))
        else:
            f = float_wrap(ins, dt, lambda a, b: nx.div_f64(a, b, mode))
        return d.binary(ins, f, dt, cls="sfu")
    return d.binary(ins, lambda a, b: nx.trunc_div(a, b)[0], dt, cls="idiv")


def _rem(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.binary(ins, lambda a, b: nx.trunc_div(a, b)[1], dt, cls="idiv")


def _float_bits(
    d: Decoder, ins: Instruction, dt: np.dtype, op: Callable[..., np.ndarray], clear: bool
) -> Decoded:
    """abs (`clear`: and with all but the sign bit) or neg (xor with the sign bit) of a float,
    on its unsigned view: exact for every value, NaN payloads included."""
    u = UNSIGNED[dt.itemsize]
    bit = 1 << (8 * dt.itemsize - 1)
    const = np.array(bit - 1 if clear else bit, u)
    f = float_wrap(ins, dt, lambda a: op(np.asarray(a).view(u), const).view(dt))
    return d.unary(ins, f, dt, cls=float_cls(dt))


def _abs(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if dt.kind == "f":
        return _float_bits(d, ins, dt, np.bitwise_and, clear=True)
    return d.unary(ins, np.abs, dt)


def _neg(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if dt.kind == "f":
        return _float_bits(d, ins, dt, np.bitwise_xor, clear=False)
    return d.unary(ins, np.negative, dt)


def _minmax(d: Decoder, ins: Instruction, is_max: bool) -> Decoded:
    dt = d.typed(ins)
    if dt.kind == "f":
        nan = ins.has(".NaN")
        f = float_wrap(ins, dt, lambda a, b: nx.fminmax(a, b, is_max, nan))
        return d.binary(ins, f, dt, cls=float_cls(dt))
    return d.binary(ins, np.maximum if is_max else np.minimum, dt)


def _min(d: Decoder, ins: Instruction) -> Decoded:
    return _minmax(d, ins, False)


def _max(d: Decoder, ins: Instruction) -> Decoded:
    return _minmax(d, ins, True)


def _copysign(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.binary(ins, lambda a, b: np.copysign(b, a), dt, cls=float_cls(dt))


def _testp(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    tiny = np.finfo(dt).tiny
    tests: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        ".finite": np.isfinite,
        ".infinite": np.isinf,
        ".number": lambda a: ~np.isnan(a),
        ".notanumber": np.isnan,
        ".normal": lambda a: np.isfinite(a) & (np.abs(a) >= tiny),
        ".subnormal": lambda a: (a != 0) & (np.abs(a) < tiny),
    }
    for mod, f in tests.items():
        if ins.has(mod):
            return d.unary(ins, f, dt, out_dt=BOOL)
    raise unsupported(f"{ins.mnemonic}", ins)


def _mul_hi(a: np.ndarray, b: np.ndarray, dt: np.dtype, wide: np.dtype | None) -> np.ndarray:
    if wide is None:
        return nx.mul_hi64(a, b, dt.kind == "i").astype(dt)
    p = np.asarray(a).astype(wide) * np.asarray(b).astype(wide)
    return (p >> (dt.itemsize * 8)).astype(dt)


def _mul24_lo(a: np.ndarray, b: np.ndarray, dt: np.dtype) -> np.ndarray:
    """The low 32 bits of the product of the low 24 bits of `a` and `b`, as `dt`."""
    return (_low24(a, dt) * _low24(b, dt)).astype(np.uint64).astype(np.uint32).view(dt)


def _low24(a: np.ndarray, dt: np.dtype) -> np.ndarray:
    v = np.asarray(a).view(UNSIGNED[4]).astype(np.int64) & 0xFFFFFF
    if dt.kind == "i":
        v = np.where(v & 0x800000, v - 0x1000000, v)
    return v


HANDLERS: dict[str, Handler] = {
    "add": _add,
    "sub": _sub,
    "mul": _mul,
    "mad": _mad,
    "mul24": _mul24,
    "mad24": _mad24,
    "fma": _fma,
    "sad": _sad,
    "div": _div,
    "rem": _rem,
    "abs": _abs,
    "neg": _neg,
    "min": _min,
    "max": _max,
    "copysign": _copysign,
    "testp": _testp,
}
