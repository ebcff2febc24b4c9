"""What every instruction family's handlers share: the `Decoded` result, the handler type,
modifier parsing and the float wrappers (.ftz/.sat) that several families apply alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.operands import DTYPES
from chronos.emulate.program import OP, MemAccess
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

Fn = Callable[[Any, np.ndarray | None], None]
"""A decoded instruction: `fn(machine, mask)` runs it for the lanes in `mask` (None: all)."""

ROUND_MODS = {".rn": "rn", ".rz": "rz", ".rm": "rm", ".rp": "rp"}
IROUND_MODS = {".rni": "rni", ".rzi": "rzi", ".rmi": "rmi", ".rpi": "rpi"}

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
BOOL = np.dtype(bool)
U32 = np.dtype(np.uint32)
I64 = np.dtype(np.int64)


@dataclass
class Decoded:
    """What a handler returns; the decoder adds position, guard and register sets."""

    fn: Fn | None
    cls: str
    kind: int = OP
    mem: MemAccess | None = None
    target: str | None = None
    barrier_count: int | None = None
    batch: tuple[str, tuple[int, ...]] | None = None
    """(kind, registers) of an instruction that a run of its kind may execute in one call
    (chronos.emulate.batch); None for all others."""


Handler = Callable[["Decoder", Instruction], Decoded]
"""Decodes one instruction of its family (the dispatch table maps opcodes to these)."""


def types(ins: Instruction) -> list[str]:
    """The type modifiers of `ins`, in order (cvt/set/slct name two)."""
    return [m for m in ins.modifiers if m in DTYPES]


def rounding(ins: Instruction, default: str = "rn") -> str:
    """The IEEE rounding mode of `ins` (.rn/.rz/.rm/.rp), `default` when it names none."""
    for m in ins.modifiers:
        if m in ROUND_MODS:
            return ROUND_MODS[m]
    return default


def float_cls(dt: np.dtype) -> str:
    """The cost model's unit class of a float instruction of type `dt`."""
    return "fp64" if dt == F64 else ("fp16" if dt.itemsize == 2 else "fma")


def float_wrap(
    ins: Instruction, dt: np.dtype, f: Callable[..., np.ndarray]
) -> Callable[..., np.ndarray]:
    """Apply .ftz to inputs and output, and .sat to the output, around a float op."""
    ftz = ins.has(".ftz") and dt == F32
    sat = ins.has(".sat")
    if not ftz and not sat:
        return f

    def wrapped(*args: np.ndarray) -> np.ndarray:
        if ftz:
            args = tuple(nx.ftz32(a) for a in args)
        r = f(*args)
        if ftz:
            r = nx.ftz32(r)
        if sat:
            r = nx.sat01(r)
        return r

    return wrapped


def mask_lanes(mask: np.ndarray | None) -> np.ndarray | None:
    """The thread indices a mask selects (None: every thread)."""
    return None if mask is None else np.flatnonzero(mask)
