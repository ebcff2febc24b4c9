"""Special-function-unit instructions: rcp, sqrt, rsqrt, sin, cos, lg2, ex2, tanh.

The IEEE-rounded forms are exact; the `.approx` forms go through chronos.emulate.approx,
which computes them nominally or pushes them to their PTX ISA error bound (`Machine.approx`),
so verification can check that a kernel's outputs do not hinge on how a GPU approximates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import approx as ax
from chronos.emulate import numerics as nx
from chronos.emulate.decode.base import F32, F64, Decoded, Handler, float_wrap, rounding
from chronos.emulate.operands import unsupported
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder


def _sfu(
    d: Decoder,
    ins: Instruction,
    f32: Callable[[np.ndarray], np.ndarray],
    f64: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Decoded:
    dt = d.typed(ins)
    if dt == F32:
        f = float_wrap(ins, dt, f32)
    elif dt == F64 and f64 is not None:
        f = float_wrap(ins, dt, f64)
    else:
        raise unsupported(f"{ins.mnemonic}", ins)
    return d.unary(ins, f, dt, cls="sfu")


def approx(d: Decoder, ins: Instruction, op: str, n: int) -> Decoded:
    """An f32 approximate instruction (chronos.emulate.approx): nominal or pushed to its
    bound by the run's `Machine.approx`, with `.ftz` on inputs and result."""
    if d.typed(ins) != F32:
        raise unsupported(f"{ins.mnemonic}", ins)
    ops = d.ops(ins, n + 1)
    readers = [d.read(o, F32) for o in ops[1 : n + 1]]
    w = d.write(ops[0], F32)
    ftz, sat = ins.has(".ftz"), ins.has(".sat")

    def fn(m: Any, mask: np.ndarray | None) -> None:
        args = tuple(r(m) for r in readers)
        if ftz:
            args = tuple(nx.ftz32(a) for a in args)
        r = ax.evaluate(op, args, m.approx)
        if ftz:
            r = nx.ftz32(r)
        if sat:
            r = nx.sat01(r)
        w.put(m, mask, r)

    return Decoded(fn, "sfu")


def _approx_f64(d: Decoder, ins: Instruction, f: Callable[[np.ndarray], np.ndarray]) -> Decoded:
    """`rcp/rsqrt.approx.f64`: IEEE-rounded nominally; the ISA bounds neither."""
    ops = d.ops(ins, 2)
    ra = d.read(ops[1], F64)
    w = d.write(ops[0], F64)
    return Decoded(lambda m, mask: w.put(m, mask, ax.unbounded_f64(f(ra(m)), m.approx)), "sfu")


def _rcp(d: Decoder, ins: Instruction) -> Decoded:
    if ins.has(".approx"):
        if ins.type == ".f64":
            return _approx_f64(d, ins, lambda a: nx.div_f64(np.float64(1.0), a))
        return approx(d, ins, "rcp", 1)
    mode = rounding(ins)
    one32 = np.float32(1.0)
    return _sfu(
        d,
        ins,
        lambda a: nx.div_f32(one32, a, mode),
        lambda a: nx.div_f64(np.float64(1.0), a, mode),
    )


def _sqrt(d: Decoder, ins: Instruction) -> Decoded:
    if ins.has(".approx"):
        return approx(d, ins, "sqrt", 1)
    mode = rounding(ins)
    if ins.type == ".f64" and mode != "rn":
        raise unsupported("directed-rounding sqrt.f64", ins)
    return _sfu(d, ins, lambda a: nx.sqrt_f32(a, mode), np.sqrt)


def _rsqrt(d: Decoder, ins: Instruction) -> Decoded:
    if ins.type == ".f64":
        return _approx_f64(d, ins, _rsqrt64)
    return approx(d, ins, "rsqrt", 1)


def _rsqrt64(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(np.asarray(a, np.float64))


def _approx_only(op: str) -> Handler:
    """The handler of an instruction that PTX defines only as `.approx.f32`."""

    def handler(d: Decoder, ins: Instruction) -> Decoded:
        return approx(d, ins, op, 1)

    return handler


HANDLERS: dict[str, Handler] = {
    "rcp": _rcp,
    "sqrt": _sqrt,
    "rsqrt": _rsqrt,
    **{op: _approx_only(op) for op in ("sin", "cos", "lg2", "ex2", "tanh")},
}
