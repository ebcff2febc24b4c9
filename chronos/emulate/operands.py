"""Operand access: typed readers and writers over the register file, immediates and symbols.

Registers are stored as NumPy arrays over all emulated threads, one array per register, in an
unsigned storage type of the declared width (predicates as bool). Instructions read them
through a view in their own type (`add.s32` sees int32, `fma.rn.f32` float32), so moving bits
between `%r` and `%f` registers is free and exact. Register arrays are never modified in
place: a write replaces the array, so registers may share memory safely.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from chronos.emulate.errors import UnsupportedInstruction

DTYPES: dict[str, np.dtype] = {
    ".pred": np.dtype(bool),
    ".b8": np.dtype(np.uint8),
    ".u8": np.dtype(np.uint8),
    ".s8": np.dtype(np.int8),
    ".b16": np.dtype(np.uint16),
    ".u16": np.dtype(np.uint16),
    ".s16": np.dtype(np.int16),
    ".f16": np.dtype(np.float16),
    ".bf16": np.dtype(np.uint16),
    ".b32": np.dtype(np.uint32),
    ".u32": np.dtype(np.uint32),
    ".s32": np.dtype(np.int32),
    ".f32": np.dtype(np.float32),
    ".f16x2": np.dtype(np.uint32),
    ".bf16x2": np.dtype(np.uint32),
    ".b64": np.dtype(np.uint64),
    ".u64": np.dtype(np.uint64),
    ".s64": np.dtype(np.int64),
    ".f64": np.dtype(np.float64),
}
UNSIGNED = {
    1: np.dtype(np.uint8),
    2: np.dtype(np.uint16),
    4: np.dtype(np.uint32),
    8: np.dtype(np.uint64),
}
SIGNED = {1: np.dtype(np.int8), 2: np.dtype(np.int16), 4: np.dtype(np.int32), 8: np.dtype(np.int64)}

SPECIAL_REGISTERS = frozenset(
    "tid.x tid.y tid.z ntid.x ntid.y ntid.z ctaid.x ctaid.y ctaid.z nctaid.x nctaid.y "
    "nctaid.z laneid warpid nwarpid smid nsmid gridid lanemask_eq lanemask_le lanemask_lt "
    "lanemask_ge lanemask_gt clock clock_hi clock64 globaltimer globaltimer_lo globaltimer_hi "
    "dynamic_smem_size total_smem_size".split()
)
DYNAMIC_SPECIAL = frozenset(
    "clock clock_hi clock64 globaltimer globaltimer_lo globaltimer_hi".split()
)

Reader = Callable[[Any], np.ndarray]

_INT_RE = re.compile(r"^(-?)(0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]+|\d+)U?$")
_FLOAT_RE = re.compile(r"^-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")


def convert(v: np.ndarray, src: np.dtype, dst: np.dtype) -> np.ndarray:
    """Reinterpret or resize a value between register and instruction types (PTX's rules).

    Same width: the bits are reinterpreted. Narrower to wider: sign-extended when the source
    is signed, else zero-extended. Wider to narrower: truncated to the low bits.
    """
    if src == dst:
        return v
    if dst.kind == "b":
        return v != 0
    if src.kind == "b":
        return v.astype(dst)
    if src.itemsize == dst.itemsize:
        return v.view(dst) if v.ndim else np.asarray(v).view(dst)
    if src.kind == "f":
        v = v.view(UNSIGNED[src.itemsize]) if v.ndim else np.asarray(v).view(UNSIGNED[src.itemsize])
        src = UNSIGNED[src.itemsize]
    if dst.itemsize > src.itemsize:
        wide = v.astype(SIGNED[dst.itemsize] if src.kind == "i" else UNSIGNED[dst.itemsize])
    else:
        wide = v.astype(UNSIGNED[dst.itemsize])
    return wide.view(dst) if wide.ndim else np.asarray(wide).view(dst)


def parse_immediate(text: str, dt: np.dtype) -> np.ndarray | None:
    """A 0-d array of dtype `dt` for a PTX literal, or None when `text` is not one."""
    t = text.strip()
    if t[:2] in ("0f", "0F") and len(t) == 10:
        bits = np.array(int(t[2:], 16), np.uint32)
        val = bits.view(np.float32)
        return _cast_float(val, dt, bits)
    if t[:2] in ("0d", "0D") and len(t) == 18:
        bits = np.array(int(t[2:], 16), np.uint64)
        val = bits.view(np.float64)
        return _cast_float(val, dt, bits)
    m = _INT_RE.match(t)
    if m:
        digits = m.group(2)
        if digits[:2] in ("0b", "0B"):
            n = int(digits[2:], 2)
        elif digits[:2] in ("0x", "0X"):
            n = int(digits, 16)
        elif len(digits) > 1 and digits[0] == "0":
            n = int(digits, 8)
        else:
            n = int(digits)
        if m.group(1):
            n = -n
        if dt.kind == "f":
            return np.array(float(n), dt)
        if dt.kind == "b":
            return np.array(n != 0)
        bits = dt.itemsize * 8
        return np.array(n % (1 << bits), UNSIGNED[dt.itemsize]).view(dt)
    if _FLOAT_RE.match(t):
        if dt.kind != "f":
            return None
        return np.array(float(t), dt)
    return None


def _cast_float(val: np.ndarray, dt: np.dtype, bits: np.ndarray) -> np.ndarray:
    if dt.kind == "f":
        return np.asarray(val.astype(dt))
    if dt.itemsize == bits.dtype.itemsize:
        return bits.view(dt)
    return np.asarray(bits.astype(UNSIGNED[dt.itemsize]).view(dt))


class Writer:
    """Writes values of an instruction type into one register, for a lane mask or lane list."""

    __slots__ = ("index", "src", "storage")

    def __init__(self, index: int | None, src: np.dtype, storage: np.dtype):
        self.index = index
        self.src = src
        self.storage = storage

    def put(self, m: Any, mask: np.ndarray | None, v: Any) -> None:
        """Write `v` (length N or scalar) where `mask` is set (everywhere when None)."""
        i = self.index
        if i is None:
            return
        v = np.asarray(v)
        if v.dtype != self.src:
            v = v.astype(self.src)
        v = convert(v, self.src, self.storage)
        if mask is None:
            if v.shape != (m.N,):
                v = np.full(m.N, v, self.storage)
            m.R[i] = v
        else:
            m.R[i] = np.where(mask, v, m.R[i])

    def scatter(self, m: Any, lanes: np.ndarray | None, v: np.ndarray) -> None:
        """Write `v[k]` to lane `lanes[k]`; lanes None means `v` covers every thread."""
        i = self.index
        if i is None:
            return
        v = convert(np.asarray(v, self.src), self.src, self.storage)
        if lanes is None:
            m.R[i] = v if v.shape == (m.N,) else np.full(m.N, v, self.storage)
            return
        new = m.R[i].copy()
        new[lanes] = v
        m.R[i] = new


def sink_writer(dt: np.dtype) -> Writer:
    """The `_` operand: results are discarded."""
    return Writer(None, dt, dt)


def unsupported(msg: str, ins: Any) -> UnsupportedInstruction:
    return UnsupportedInstruction(msg, ins.line, ins.text)
