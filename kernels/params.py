"""The one encoder of kernel scalar arguments: a value and its PTX parameter type -> bytes.

The emulator writes these bytes into its `.param` space and the GPU harness passes the same
bytes to the driver, so that both run the kernel with the same arguments. A value that does
not fit its parameter (a float for an integer type, an integer out of range, the wrong byte
count) is an error, never a silent truncation.

Types: `.u8`..`.u64`, `.s8`..`.s64`, `.b8`..`.b64`, `.f16`, `.bf16`, `.f32`, `.f64`, and
`.b8` arrays of any size (`.param .align 2 .b8 h[2]`, nvcc's way of passing a `half`). A
Python float for a 2-, 4- or 8-byte `.b8` array is encoded as f16, f32 or f64; pass a NumPy
scalar (`np.float16`, `bfloat16_bits(x)`) or `bytes` to choose the encoding explicitly.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

ScalarValue = int | float | np.generic | bytes
"""What `Problem.scalars` may hold."""

_INT_BYTES = {"8": 1, "16": 2, "32": 4, "64": 8}
_FLOAT_FORMAT = {2: "<e", 4: "<f", 8: "<d"}


class ParamEncodingError(ValueError):
    """A scalar argument that its PTX parameter type cannot hold exactly."""


def type_size(ptx_type: str) -> int:
    """Bytes of one element of a PTX parameter type (".u32" -> 4, ".bf16" -> 2)."""
    if ptx_type == ".bf16":
        return 2
    if len(ptx_type) >= 3 and ptx_type[1] in "usbf" and ptx_type[2:] in _INT_BYTES:
        return _INT_BYTES[ptx_type[2:]]
    raise ParamEncodingError(f"unsupported parameter type {ptx_type!r}")


def bfloat16_bits(x: float) -> np.uint16:
    """The bfloat16 nearest to `x` (round to nearest even), as its 16 bits."""
    bits = int(np.array(x, np.float32).view(np.uint32))
    if np.isnan(np.float32(x)):
        return np.uint16((bits >> 16) | 0x40)
    bits += 0x7FFF + ((bits >> 16) & 1)
    return np.uint16((bits >> 16) & 0xFFFF)


def _float_bytes(value: float, nbytes: int, bf16: bool, where: str) -> bytes:
    if bf16:
        return bfloat16_bits(value).tobytes()
    if nbytes not in _FLOAT_FORMAT:
        raise ParamEncodingError(f"{where}: no {nbytes}-byte float encoding")
    try:
        return struct.pack(_FLOAT_FORMAT[nbytes], value)
    except OverflowError:
        raise ParamEncodingError(f"{where}: {value!r} overflows a {nbytes}-byte float") from None


def _int_bytes(value: int, nbytes: int, kind: str, where: str) -> bytes:
    bits = 8 * nbytes
    lo = 0 if kind == "u" else -(1 << (bits - 1))
    hi = (1 << bits) - 1 if kind != "s" else (1 << (bits - 1)) - 1
    if not lo <= value <= hi:
        raise ParamEncodingError(f"{where}: {value} does not fit .{kind}{bits} [{lo}, {hi}]")
    return (value % (1 << bits)).to_bytes(nbytes, "little")


def encode_scalar(value: Any, ptx_type: str, nbytes: int | None = None, name: str = "") -> bytes:
    """The bytes of `value` as a parameter of `ptx_type` (`nbytes`: the whole parameter's
    size, element size times array length; defaults to one element)."""
    size = type_size(ptx_type)
    nbytes = size if nbytes is None else int(nbytes)
    where = f"scalar {name or '?'} ({ptx_type}{'' if nbytes == size else f'[{nbytes // size}]'})"
    if nbytes <= 0 or nbytes % size:
        raise ParamEncodingError(f"{where}: {nbytes} bytes is not a whole number of elements")
    if isinstance(value, bytes | bytearray):
        if len(value) != nbytes:
            raise ParamEncodingError(f"{where}: got {len(value)} bytes, needs {nbytes}")
        return bytes(value)
    kind = ptx_type[1]
    if isinstance(value, np.generic):
        dk = value.dtype.kind
        exact_bits = value.dtype.itemsize == nbytes and (
            (kind in "us" and dk in "iu")
            or kind == "b"
            or (ptx_type == ".bf16" and dk in "uV")
            or (kind == "f" and ptx_type != ".bf16" and dk == "f")
        )
        if exact_bits:
            return value.tobytes()
        value = value.item()
    if isinstance(value, bool):
        value = int(value)
    if ptx_type in (".f16", ".f32", ".f64", ".bf16"):
        if not isinstance(value, int | float):
            raise ParamEncodingError(f"{where}: {value!r} is not a number")
        if nbytes != size:
            raise ParamEncodingError(f"{where}: array float parameters need bytes")
        return _float_bytes(float(value), nbytes, ptx_type == ".bf16", where)
    if isinstance(value, float):
        if kind == "b" and nbytes in _FLOAT_FORMAT:
            return _float_bytes(value, nbytes, False, where)
        raise ParamEncodingError(f"{where}: {value!r} is a float, the parameter is an integer")
    if not isinstance(value, int):
        raise ParamEncodingError(f"{where}: {type(value).__name__} {value!r} is not a number")
    return _int_bytes(value, nbytes, kind, where)


def launch_scalar(raw: bytes) -> np.generic:
    """A NumPy scalar holding exactly `raw` (what CuPy passes by value to a kernel): unsigned
    ints for 1/2/4/8 bytes, a structured void of `len(raw)` bytes otherwise."""
    dtype = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}.get(len(raw))
    if dtype is not None:
        return np.frombuffer(raw, dtype)[0]
    return np.frombuffer(raw, np.dtype([("bytes", np.uint8, (len(raw),))]))[0]
