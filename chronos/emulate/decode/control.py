"""Control flow and synchronisation: bra, ret/exit, bar/barrier, membar/fence, nanosleep,
trap/brkpt.

Branches, exits and barriers have no closure: the executor acts on their Op kind (BRA, EXIT,
BAR). Memory fences and sleeps change nothing in a lockstep emulator, so they are no-ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate.decode.base import I64, Decoded, Handler
from chronos.emulate.errors import TrapExecuted
from chronos.emulate.operands import parse_immediate, unsupported
from chronos.emulate.program import BAR, BRA, EXIT
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder


def _nothing(m: Any, mask: np.ndarray | None) -> None:
    """What a fence, sleep or warp barrier computes in lockstep: nothing."""


def _no_op(cls: str) -> Handler:
    def handler(d: Decoder, ins: Instruction) -> Decoded:
        return Decoded(_nothing, cls)

    return handler


def _bra(d: Decoder, ins: Instruction) -> Decoded:
    ops = d.ops(ins, 1)
    return Decoded(None, "branch", kind=BRA, target=ops[0].strip())


def _ret(d: Decoder, ins: Instruction) -> Decoded:
    if not d.func.is_entry:
        raise unsupported("ret from a device function", ins)
    return Decoded(None, "branch", kind=EXIT)


def _barrier(d: Decoder, ins: Instruction) -> Decoded:
    if ins.has(".arrive") or ins.has(".red"):
        raise unsupported(f"{ins.mnemonic}", ins)
    if ins.guard:
        raise unsupported("predicated barrier", ins)
    count = None
    if len(ins.operands) > 1:
        imm = parse_immediate(ins.operands[1], I64)
        if imm is None:
            raise unsupported("barrier with a register thread count", ins)
        count = int(imm)
    return Decoded(None, "barrier", kind=BAR, barrier_count=count)


def _bar(d: Decoder, ins: Instruction) -> Decoded:
    if ins.has(".warp"):
        return Decoded(_nothing, "alu")
    return _barrier(d, ins)


def _trap(d: Decoder, ins: Instruction) -> Decoded:
    line, text = ins.line, ins.text

    def fn(m: Any, mask: np.ndarray | None) -> None:
        raise TrapExecuted("trap executed", line, text)

    return Decoded(fn, "branch")


HANDLERS: dict[str, Handler] = {
    "bra": _bra,
    "ret": _ret,
    "exit": _ret,
    "bar": _bar,
    "barrier": _barrier,
    "membar": _no_op("membar"),
    "fence": _no_op("membar"),
    "nanosleep": _no_op("alu"),
    "trap": _trap,
    "brkpt": _trap,
}
