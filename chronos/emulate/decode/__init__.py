"""PTX instruction -> NumPy closure, once per PTX text (cached by the text's hash).

Each instruction becomes an `Op` whose `fn(machine, mask)` computes the instruction for every
emulated thread at once and writes the lanes in `mask`. Operand lookup, type conversions and
modifier parsing happen here, once, so the executor's inner loop is a list walk and a call.

Anything outside the supported subset raises `UnsupportedInstruction` with its line: the
decoder never guesses what an instruction means.

Layout: `decoder.Decoder` walks a function and owns registers, operands and guards; it looks
each opcode up in `table.DISPATCH`, which the instruction families fill: `arith` (integer and
float arithmetic), `sfu` (rcp/sqrt/transcendentals and their approximations), `bits`,
`compare` (setp/set/selp/slct), `convert` (mov/cvt/cvta/isspacep), `memory` (ld/st/prefetch/
cp.async), `atomic` (atom/red), `control` (branches, exits, barriers, fences, trap), `warp`
(shfl/vote/activemask) and `tensor` (ldmatrix/mma).
"""

from __future__ import annotations

from chronos.caching import BoundedCache
from chronos.emulate.decode.base import Decoded
from chronos.emulate.decode.decoder import Decoder
from chronos.emulate.decode.table import DISPATCH
from chronos.emulate.errors import EmulationError
from chronos.emulate.program import Program
from chronos.ptx import parse, ptx_sha256

__all__ = ["DISPATCH", "Decoded", "Decoder", "cache_clear", "decode"]

_CACHE: BoundedCache[Program] = BoundedCache(256, name="decode")


def _decode(ptx: str, entry: str | None) -> Program:
    module = parse(ptx)
    try:
        func = module.entry(entry)
    except (KeyError, ValueError) as exc:
        raise EmulationError(str(exc)) from None
    return Decoder(module, func).decode()


def decode(ptx: str, entry: str | None = None) -> Program:
    """The decoded Program of `entry` (the only entry when None), cached by PTX hash."""
    return _CACHE.get((ptx_sha256(ptx), entry), lambda: _decode(ptx, entry))


def cache_clear() -> None:
    """Forget every decoded program (for cold timings)."""
    _CACHE.clear()
