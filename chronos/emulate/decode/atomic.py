"""Atomics: atom (returns the old value) and red (does not), 32- and 64-bit.

The Machine applies them one address at a time where lanes collide (`Machine.atomic`), so a
histogram's colliding increments all land, in thread order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate.decode.base import Decoded, Handler, mask_lanes
from chronos.emulate.operands import unsupported
from chronos.emulate.program import MemAccess
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

ATOMIC_OPS = ("add", "min", "max", "and", "or", "xor", "exch", "cas", "inc", "dec")


def _atomic_op(d: Decoder, ins: Instruction) -> tuple[str, np.dtype, str]:
    space = ins.space or ".generic"
    opname = next((m[1:] for m in ins.modifiers if m[1:] in ATOMIC_OPS), None)
    if opname is None:
        raise unsupported(f"{ins.mnemonic}", ins)
    dt = d.typed(ins)
    if dt.itemsize < 4 or ins.type in (".f16x2", ".bf16x2"):
        raise unsupported(f"{ins.mnemonic}", ins)
    return space, dt, opname


def _red(d: Decoder, ins: Instruction) -> Decoded:
    space, dt, opname = _atomic_op(d, ins)
    if opname in ("cas", "exch"):
        raise unsupported(f"{ins.mnemonic}", ins)
    ops = d.ops(ins, 2)
    addr = d.address(ops[0])
    rb = d.read(ops[1], dt)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lanes = mask_lanes(mask)
        a = addr(m, lanes)
        b = _lanes_of(np.asarray(rb(m)), lanes, len(a), dt)
        m.atomic(space, opname, dt, a, lanes, b, None, want_old=False)

    return Decoded(fn, "atom", mem=MemAccess(space, True, True, dt.itemsize, 1))


def _atom(d: Decoder, ins: Instruction) -> Decoded:
    space, dt, opname = _atomic_op(d, ins)
    ops = d.ops(ins, 4 if opname == "cas" else 3)
    w = d.write(ops[0], dt)
    addr = d.address(ops[1])
    rb = d.read(ops[2], dt)
    rc = d.read(ops[3], dt) if opname == "cas" else None

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lanes = mask_lanes(mask)
        a = addr(m, lanes)
        b = _lanes_of(np.asarray(rb(m)), lanes, len(a), dt)
        c = _lanes_of(np.asarray(rc(m)), lanes, len(a), dt) if rc is not None else None
        old = m.atomic(space, opname, dt, a, lanes, b, c, want_old=True)
        w.scatter(m, lanes, old)

    return Decoded(fn, "atom", mem=MemAccess(space, True, True, dt.itemsize, 1))


def _lanes_of(v: np.ndarray, lanes: np.ndarray | None, n: int, dt: np.dtype) -> np.ndarray:
    """An operand's values at `lanes` (a 0-d immediate broadcast to `n`)."""
    if v.ndim == 0:
        return np.full(n, v, dt)
    return v if lanes is None else v[lanes]


HANDLERS: dict[str, Handler] = {"atom": _atom, "red": _red}
