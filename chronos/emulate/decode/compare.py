"""Comparison and selection: setp, set, selp, slct.

Float comparisons follow PTX's ordered/unordered rules (`lt` is false on NaN, `ltu` true);
`lo/ls/hi/hs` compare the unsigned view whatever the declared type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.decode.base import BOOL, F32, Decoded, Handler, float_cls, types
from chronos.emulate.operands import DTYPES, UNSIGNED, Reader, unsupported
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

_ORDERED = {
    "eq": np.equal,
    "ne": np.not_equal,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
}
_UNSIGNED_ONLY = {
    "lo": np.less,
    "ls": np.less_equal,
    "hi": np.greater,
    "hs": np.greater_equal,
}
_FLOAT_CMPS = frozenset("eq ne lt le gt ge equ neu ltu leu gtu geu num nan".split())
_COMBINE = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}


def _float_compare(ins: Instruction, cmp: str, dt: np.dtype) -> Callable[..., np.ndarray]:
    ftz = ins.has(".ftz") and dt == F32
    base = cmp.rstrip("u") if cmp not in ("num", "nan") else cmp
    unordered = cmp.endswith("u") and cmp not in ("num",)

    def fcmp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if ftz:
            a, b = nx.ftz32(a), nx.ftz32(b)
        nan = np.isnan(a) | np.isnan(b)
        if base == "num":
            return ~nan
        if base == "nan":
            return nan
        r = _ORDERED[base](a, b)
        return (r | nan) if unordered else (r & ~nan)

    if cmp not in _FLOAT_CMPS:
        raise unsupported(f"comparison {cmp} on floats", ins)
    return fcmp


def _compare(ins: Instruction, cmp: str, dt: np.dtype) -> Callable[..., np.ndarray]:
    if dt.kind == "f":
        return _float_compare(ins, cmp, dt)
    if cmp in _ORDERED:
        return _ORDERED[cmp]
    if cmp in _UNSIGNED_ONLY:
        f = _UNSIGNED_ONLY[cmp]
        u = UNSIGNED[dt.itemsize]
        return lambda a, b: f(np.asarray(a).view(u), np.asarray(b).view(u))
    raise unsupported(f"comparison {cmp}", ins)


def _cmp_and_bool(ins: Instruction) -> tuple[str, str | None]:
    names = [m[1:] for m in ins.modifiers if m not in DTYPES and m != ".ftz"]
    if not names:
        raise unsupported("comparison without an operator", ins)
    cmp = names[0]
    boolop = names[1] if len(names) > 1 else None
    if boolop not in (None, "and", "or", "xor"):
        raise unsupported(f"boolean operator {boolop}", ins)
    return cmp, boolop


def _sources(
    d: Decoder, ops: tuple[str, ...], dt: np.dtype, boolop: str | None
) -> tuple[Reader, Reader, Reader | None, Callable[..., np.ndarray] | None]:
    """Readers of the two compared operands and of the predicate `c` a boolean operator
    (and/or/xor) combines the result with, and that operator (None without one)."""
    ra, rb = d.read(ops[1], dt), d.read(ops[2], dt)
    rc = d.read(ops[3], BOOL) if boolop else None
    return ra, rb, rc, _COMBINE.get(boolop or "")


def _setp(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    if ins.type in (".f16x2", ".bf16x2", ".f16", ".bf16"):
        raise unsupported("half-precision setp", ins)
    cmp, boolop = _cmp_and_bool(ins)
    f = _compare(ins, cmp, dt)
    ops = d.ops(ins, 3)
    dests = [x.strip() for x in ops[0].split("|")]
    wp = d.write(dests[0], BOOL)
    wq = d.write(dests[1], BOOL) if len(dests) > 1 else None
    ra, rb, rc, comb = _sources(d, ops, dt, boolop)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        t = f(ra(m), rb(m))
        if comb is not None and rc is not None:
            c = rc(m)
            p, q = comb(t, c), comb(~t, c)
        else:
            p, q = t, ~t
        wp.put(m, mask, p)
        if wq is not None:
            wq.put(m, mask, q)

    return Decoded(fn, float_cls(dt) if dt.kind == "f" else "alu")


def _set(d: Decoder, ins: Instruction) -> Decoded:
    names = types(ins)
    if len(names) != 2:
        raise unsupported("set needs destination and source types", ins)
    ddt, sdt = DTYPES[names[0]], DTYPES[names[1]]
    cmp, boolop = _cmp_and_bool(ins)
    f = _compare(ins, cmp, sdt)
    ops = d.ops(ins, 3)
    ra, rb, rc, comb = _sources(d, ops, sdt, boolop)
    w = d.write(ops[0], ddt)
    true = np.array(1.0, ddt) if ddt.kind == "f" else np.array(-1).astype(ddt)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        t = f(ra(m), rb(m))
        if comb is not None and rc is not None:
            t = comb(t, rc(m))
        w.put(m, mask, np.where(t, true, ddt.type(0)).astype(ddt))

    return Decoded(fn, "alu")


def _selp(d: Decoder, ins: Instruction) -> Decoded:
    dt = d.typed(ins)
    return d.ternary(ins, lambda a, b, c: np.where(c, a, b).astype(dt), dt, c_dt=BOOL)


def _slct(d: Decoder, ins: Instruction) -> Decoded:
    names = types(ins)
    ddt, cdt = DTYPES[names[0]], DTYPES[names[-1]]
    ftz = ins.has(".ftz")

    def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        if ftz and cdt == F32:
            c = nx.ftz32(c)
        ge = (c >= 0) if cdt.kind == "i" else ~(np.asarray(c) < 0) & ~np.isnan(c)
        return np.where(ge, a, b).astype(ddt)

    return d.ternary(ins, f, ddt, c_dt=cdt)


HANDLERS: dict[str, Handler] = {
    "setp": _setp,
    "set": _set,
    "selp": _selp,
    "slct": _slct,
}
