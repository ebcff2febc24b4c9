"""The one dispatch table: PTX opcode -> the handler of its instruction family.

Each family module lists its opcodes in `HANDLERS`; an opcode in no list is unsupported (the
decoder raises UnsupportedInstruction rather than guess), and one in two lists is a bug.
"""

from __future__ import annotations

from chronos.emulate.decode import (
    arith,
    atomic,
    bits,
    compare,
    control,
    convert,
    memory,
    sfu,
    tensor,
    warp,
)
from chronos.emulate.decode.base import Handler

FAMILIES = (arith, sfu, bits, compare, convert, memory, atomic, control, warp, tensor)


def _build() -> dict[str, Handler]:
    table: dict[str, Handler] = {}
    for family in FAMILIES:
        for opcode, handler in family.HANDLERS.items():
            if opcode in table:
                raise AssertionError(f"opcode {opcode} claimed by two families")
            table[opcode] = handler
    return table


DISPATCH: dict[str, Handler] = _build()
"""Every supported opcode (`Instruction.opcode`, e.g. "ld", "mma") and its handler."""
