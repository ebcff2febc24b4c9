"""PTX floating-point and integer arithmetic with the exact semantics of the ISA.

NumPy's float32 `+ - * / sqrt` are IEEE round-to-nearest-even, so those are used as they are.
Everything NumPy lacks is built from exact float64 pieces:

* fma.f32: the product of two float32 is exact in float64 (24+24 bits fit in 53); the sum
  `p + c` is split into `s + e` with TwoSum, and rounding `s` to odd with the sign of `e` keeps
  enough information for one correct rounding to float32 (53 >= 24 + 2 bits).
* directed rounding (.rz/.rm/.rp): round to nearest first, then step one ulp when the sign of
  the exact residual says the nearest value lies on the wrong side.
* float64 fma and directed float64 arithmetic go through `fractions.Fraction` element by
  element: slow, exact, and absent from the corpus.

All functions take and return NumPy arrays (or 0-d values that broadcast).
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

import numpy as np

F32_MIN_NORMAL = np.float32(2.0**-126)
F64_MIN_NORMAL = 2.0**-1022
_F32_TIE_MASK = np.uint64((1 << 29) - 1)
_F32_TIE = np.uint64(1 << 28)
_F32_TINY = 2.0**-125
ROUNDINGS = ("rn", "rz", "rm", "rp")


def two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """s + e == a + b exactly, s = fl(a + b) (Knuth's TwoSum; no branches, any order)."""
    s = a + b
    bb = s - a
    e = (a - (s - bb)) + (b - bb)
    return s, e


def ftz32(x: np.ndarray) -> np.ndarray:
    """Flush float32 subnormals to a zero of the same sign (`.ftz`)."""
    x = np.asarray(x, np.float32)
    return np.where(np.abs(x) < F32_MIN_NORMAL, np.copysign(np.float32(0), x), x).astype(np.float32)


def sat01(x: np.ndarray) -> np.ndarray:
    """`.sat` for floats: clamp to [0, 1], NaN becomes +0."""
    dt = np.asarray(x).dtype
    return np.where(np.isnan(x), dt.type(0), np.clip(x, dt.type(0), dt.type(1))).astype(dt)


def _directed(r: np.ndarray, cmp: np.ndarray, mode: str) -> np.ndarray:
    """Move the nearest value `r` one ulp where the exact value lies on the other side.

    `cmp` is the sign of (exact - r); NaN results have cmp 0 and stay.
    """
    if mode == "rn":
        return r
    dt = r.dtype.type
    if mode == "rz":
        step = ((r > 0) & (cmp < 0)) | ((r < 0) & (cmp > 0))
        return np.where(step, np.nextafter(r, dt(0)), r).astype(r.dtype)
    if mode == "rm":
        return np.where(cmp < 0, np.nextafter(r, dt(-np.inf)), r).astype(r.dtype)
    if mode == "rp":
        return np.where(cmp > 0, np.nextafter(r, dt(np.inf)), r).astype(r.dtype)
    raise ValueError(f"unknown rounding mode {mode!r}")


def round_odd(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The float64 rounding to odd of the exact value s + e (s = fl(s + e))."""
    inexact = (e != 0) & np.isfinite(e)
    bits = s.view(np.uint64)
    even = (bits & np.uint64(1)) == 0
    away = (e > 0) == (s > 0)
    adj = np.where(away, bits + np.uint64(1), bits - np.uint64(1))
    return np.where(inexact & even, adj, bits).view(np.float64)


def round_sum_f32(s: np.ndarray, e: np.ndarray, mode: str = "rn") -> np.ndarray:
    """Round the exact value s + e (a TwoSum pair in float64) to float32 with `mode`."""
    s = np.asarray(s, np.float64)
    e = np.asarray(e, np.float64)
    r = round_odd(s, e).astype(np.float32)
    if mode == "rn":
        return r
    cmp = np.sign((s - r.astype(np.float64)) + e)
    cmp = np.where(np.isnan(cmp), 0.0, cmp)
    return _directed(r, cmp, mode)


def exact_zero_sign(r: np.ndarray, x: np.ndarray, y: np.ndarray, mode: str) -> np.ndarray:
    """IEEE sign of an exactly-zero sum x + y: -0 when rounding down, else +0.

    Two zeros of the same sign keep it; only a cancellation of nonzero (or unlike) terms
    depends on the rounding direction. `r` is the rounded sum.
    """
    if mode != "rm":
        return r
    same_zero = (x == 0) & (y == 0) & (np.signbit(x) == np.signbit(y))
    cancel = (r == 0) & (np.asarray(x) + np.asarray(y) == 0) & ~same_zero
    return np.where(cancel, r.dtype.type(-0.0), r).astype(r.dtype)


def f64_to_f32(x: np.ndarray, mode: str = "rn") -> np.ndarray:
    """cvt.f32.f64 with a rounding mode."""
    x = np.asarray(x, np.float64)
    if mode == "rn":
        return x.astype(np.float32)
    return round_sum_f32(x, np.zeros_like(x), mode)


def _tie_hazard(s: np.ndarray) -> bool:
    """Whether rounding a float64 to float32 could double-round somewhere: an exact tie, or a
    tiny nonzero value. Counts, not `any()`: fma runs once per step of a gemm's inner loop,
    and `np.count_nonzero` costs a quarter of `ndarray.any` on a block's lanes."""
    if np.count_nonzero((s.view(np.uint64) & _F32_TIE_MASK) == _F32_TIE):
        return True
    mag = np.abs(s)
    tiny = mag < _F32_TINY
    # Most sums have no value below the bound at all; zeros among them need the second test.
    return bool(np.count_nonzero(tiny)) and bool(np.count_nonzero(tiny & (mag != 0)))


def fma_f32(a: np.ndarray, b: np.ndarray, c: np.ndarray, mode: str = "rn") -> np.ndarray:
    """fma.f32: a*b + c with a single rounding."""
    # Products and sums of f32 values formed in float64 (each operand converted exactly).
    p = np.multiply(np.asarray(a, np.float32), np.asarray(b, np.float32), dtype=np.float64)
    c64 = np.asarray(c, np.float32).astype(np.float64)
    s = p + c64
    if mode == "rn":
        s = np.asarray(s)
        r = s.astype(np.float32)
        if not _tie_hazard(s):
            return r
    s, e = two_sum(p, c64)
    return exact_zero_sign(round_sum_f32(s, e, mode), p, c64, mode)


def fma_f32_rows(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """fma.rn.f32 of each row of three (n, N) arrays, bit for bit `fma_f32` row by row: one
    NumPy call for a run of independent fmas; a row with a double-rounding hazard takes
    `fma_f32`'s exact path, as it would alone."""
    p = np.multiply(a, b, dtype=np.float64)
    s = p + c.astype(np.float64)
    r = s.astype(np.float32)
    hazard = (s.view(np.uint64) & _F32_TIE_MASK) == _F32_TIE
    mag = np.abs(s)
    hazard |= (mag < _F32_TINY) & (mag != 0)
    for k in np.flatnonzero(np.count_nonzero(hazard, axis=1)):
        r[k] = fma_f32(a[k], b[k], c[k])
    return r


def add_f32(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if mode == "rn":
        return a + b
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    s, e = two_sum(a64, b64)
    return exact_zero_sign(round_sum_f32(s, e, mode), a64, b64, mode)


def mul_f32(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    if mode == "rn":
        return a * b
    p = a.astype(np.float64) * b.astype(np.float64)
    return round_sum_f32(p, np.zeros_like(p), mode)


def div_f32(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    """div.f32: the nearest quotient, corrected by the sign of a - r*b (exact in float64)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    r = np.asarray(a / b, np.float32)
    if mode == "rn":
        return r
    a64, b64, r64 = a.astype(np.float64), b.astype(np.float64), r.astype(np.float64)
    cmp = np.sign(a64 - r64 * b64) * np.sign(b64)
    cmp = np.where(np.isnan(cmp) | np.isinf(r64) & np.isinf(a64), 0.0, cmp)
    return _directed(r, cmp, mode)


def sqrt_f32(a: np.ndarray, mode: str = "rn") -> np.ndarray:
    a = np.asarray(a, np.float32)
    r = np.asarray(np.sqrt(a), np.float32)
    if mode == "rn":
        return r
    a64, r64 = a.astype(np.float64), r.astype(np.float64)
    cmp = np.sign(a64 - r64 * r64)
    cmp = np.where(np.isnan(cmp) | np.isinf(a64), 0.0, cmp)
    return _directed(r, cmp, mode)


def _fraction_round_f64(x: Fraction, mode: str) -> float:
    """Round an exact rational to float64 (float(Fraction) rounds to nearest even)."""
    r = float(x)
    if mode == "rn" or Fraction(r) == x:
        return r
    lo_side = Fraction(r) > x
    if mode == "rz":
        if (r > 0 and lo_side) or (r < 0 and not lo_side):
            return float(np.nextafter(r, 0.0))
        return r
    if mode == "rm":
        return float(np.nextafter(r, -np.inf)) if lo_side else r
    return r if lo_side else float(np.nextafter(r, np.inf))


def exact_f64(
    fn: Callable[..., Fraction], native: Callable[..., float], args: list[np.ndarray], mode: str
) -> np.ndarray:
    """Apply an exact rational function element by element; non-finite inputs use `native`."""
    arrs = np.broadcast_arrays(*[np.asarray(a, np.float64) for a in args])
    out = np.empty(arrs[0].shape, np.float64)
    for i, vals in enumerate(zip(*[a.ravel() for a in arrs], strict=True)):
        if all(np.isfinite(v) for v in vals):
            try:
                out.flat[i] = _fraction_round_f64(fn(*[Fraction(float(v)) for v in vals]), mode)
            except (OverflowError, ZeroDivisionError):
                out.flat[i] = native(*vals)
        else:
            out.flat[i] = native(*vals)
    return out


def fma_f64(a: np.ndarray, b: np.ndarray, c: np.ndarray, mode: str = "rn") -> np.ndarray:
    r = exact_f64(lambda x, y, z: x * y + z, lambda x, y, z: x * y + z, [a, b, c], mode)
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    zero = r == 0
    if zero.any():
        # The product's sign is exact even when its magnitude underflows.
        r = np.where(zero, np.where(np.signbit(p) & np.signbit(c), -0.0, 0.0), r)
        r = exact_zero_sign(r, p, np.asarray(c, np.float64), mode)
    return r


def add_f64(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    if mode == "rn":
        return np.asarray(a, np.float64) + np.asarray(b, np.float64)
    r = exact_f64(lambda x, y: x + y, lambda x, y: x + y, [a, b], mode)
    return exact_zero_sign(r, np.asarray(a, np.float64), np.asarray(b, np.float64), mode)


def mul_f64(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    if mode == "rn":
        return np.asarray(a, np.float64) * np.asarray(b, np.float64)
    return exact_f64(lambda x, y: x * y, lambda x, y: x * y, [a, b], mode)


def div_f64(a: np.ndarray, b: np.ndarray, mode: str = "rn") -> np.ndarray:
    if mode == "rn":
        return np.asarray(a, np.float64) / np.asarray(b, np.float64)
    return exact_f64(lambda x, y: x / y, lambda x, y: np.float64(x) / np.float64(y), [a, b], mode)


def int_to_float(x: np.ndarray, to: np.dtype, mode: str = "rn") -> np.ndarray:
    """cvt.f32/.f64 from any integer type with a rounding mode (64-bit sources split in two)."""
    x = np.asarray(x)
    to = np.dtype(to)
    if x.dtype.itemsize <= 4:
        exact = x.astype(np.float64)
        e = np.zeros_like(exact)
    else:
        signed = x.dtype.kind == "i"
        u = x.view(np.uint64) if signed else x
        hi = (u >> np.uint64(32)).astype(np.uint32)
        lo = (u & np.uint64(0xFFFFFFFF)).astype(np.float64)
        hi64 = (hi.view(np.int32) if signed else hi).astype(np.float64) * 2.0**32
        exact, e = two_sum(hi64, lo)
    if to == np.float32:
        return round_sum_f32(exact, e, mode)
    if to == np.float64:
        cmp = np.sign(e)
        return _directed(exact, cmp, mode)
    if to == np.float16:
        return f64_to_f16(exact + e, mode)
    raise ValueError(f"int -> {to} conversion")


def f64_to_f16(x: np.ndarray, mode: str = "rn") -> np.ndarray:
    """float64 -> float16; only round-to-nearest and toward zero are needed by nvcc output."""
    x = np.asarray(x, np.float64)
    r = x.astype(np.float16)
    if mode == "rn":
        return r
    cmp = np.sign(x - r.astype(np.float64))
    cmp = np.where(np.isnan(cmp), 0.0, cmp)
    return _directed(r, cmp, mode)


def f32_to_bf16_bits(x: np.ndarray, mode: str = "rn") -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), nearest-even or toward zero."""
    u = np.asarray(x, np.float32).view(np.uint32)
    if mode == "rz":
        out = u >> np.uint32(16)
    else:
        bias = np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
        out = (u + bias) >> np.uint32(16)
    nan = np.isnan(np.asarray(x, np.float32))
    out = np.where(nan, (u >> np.uint32(16)) | np.uint32(0x40), out)
    return out.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def round_to_int_float(x: np.ndarray, mode: str) -> np.ndarray:
    """.rni/.rzi/.rmi/.rpi: round a float to an integral value of the same type."""
    if mode == "rni":
        return np.rint(x)
    if mode == "rzi":
        return np.trunc(x)
    if mode == "rmi":
        return np.floor(x)
    if mode == "rpi":
        return np.ceil(x)
    raise ValueError(f"unknown integer rounding {mode!r}")


def float_to_int(x: np.ndarray, to: np.dtype, mode: str = "rzi") -> np.ndarray:
    """cvt.<int>.<float>: round, then saturate to the destination range; NaN becomes 0."""
    to = np.dtype(to)
    x = np.asarray(x).astype(np.float64)
    r = round_to_int_float(x, mode)
    info = np.iinfo(to)
    lo, hi = float(info.min), float(info.max) + 1.0  # hi is 2**bits or 2**(bits-1): exact
    nan = np.isnan(r)
    safe = np.where(nan | (r < lo) | (r >= hi), 0.0, r)
    out = safe.astype(to)
    out = np.where(r >= hi, info.max, out)
    out = np.where(r < lo, info.min, out)
    return np.where(nan, 0, out).astype(to)


def fminmax(a: np.ndarray, b: np.ndarray, is_max: bool, nan_prop: bool = False) -> np.ndarray:
    """min/max.f32/f64: a NaN operand yields the other one; -0 < +0."""
    a = np.asarray(a)
    b = np.asarray(b)
    dt = np.result_type(a, b)
    out = np.fmax(a, b) if is_max else np.fmin(a, b)
    both_zero = (a == 0) & (b == 0)
    if both_zero.any():
        sa, sb = np.signbit(a), np.signbit(b)
        neg = (sa & sb) if is_max else (sa | sb)
        out = np.where(both_zero, np.where(neg, dt.type(-0.0), dt.type(0.0)), out)
    if nan_prop:
        out = np.where(np.isnan(a) | np.isnan(b), dt.type(np.nan), out)
    return np.asarray(out, dt)


# --- integers ----------------------------------------------------------------------------------

_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}
_SIGNED = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}


def mul_hi64(a: np.ndarray, b: np.ndarray, signed: bool) -> np.ndarray:
    """High 64 bits of a 64x64-bit product, from 32-bit limbs."""
    ua = np.asarray(a).view(np.uint64) if signed else np.asarray(a, np.uint64)
    ub = np.asarray(b).view(np.uint64) if signed else np.asarray(b, np.uint64)
    ua, ub = np.broadcast_arrays(np.atleast_1d(ua), np.atleast_1d(ub))
    m32 = np.uint64(0xFFFFFFFF)
    s32 = np.uint64(32)
    a0, a1 = ua & m32, ua >> s32
    b0, b1 = ub & m32, ub >> s32
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1
    mid = (p00 >> s32) + (p01 & m32) + (p10 & m32)
    hi = p11 + (p01 >> s32) + (p10 >> s32) + (mid >> s32)
    if signed:
        hi = hi - np.where(np.asarray(a).view(np.int64) < 0, ub, 0).astype(np.uint64)
        hi = hi - np.where(np.asarray(b).view(np.int64) < 0, ua, 0).astype(np.uint64)
        return hi.view(np.int64)
    return hi


def trunc_div(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """C-style quotient and remainder (toward zero); division by zero gives all ones / a."""
    a = np.asarray(a)
    b = np.asarray(b)
    dt = np.result_type(a, b)
    zero = b == 0
    bs = np.where(zero, dt.type(1), b).astype(dt)
    if dt.kind == "u":
        q, r = a // bs, a % bs
    else:
        r = np.fmod(a, bs)
        q = ((a - r) // bs).astype(dt)
    q = np.where(zero, dt.type(-1) if dt.kind == "i" else np.iinfo(dt).max, q).astype(dt)
    r = np.where(zero, a, r).astype(dt)
    return q, r


def popc(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(np.asarray(x)).astype(np.uint32)


def highest_bit(u: np.ndarray, bits: int) -> np.ndarray:
    """Index of the most significant set bit of unsigned `u`, -1 for zero (as int64)."""
    u = np.asarray(u).astype(np.uint64)
    out = np.full(u.shape, -1, np.int64)
    rem = u.copy()
    pos = np.zeros(u.shape, np.int64)
    for shift in (32, 16, 8, 4, 2, 1):
        if shift >= bits:
            continue
        big = rem >> np.uint64(shift)
        has = big != 0
        rem = np.where(has, big, rem)
        pos = pos + np.where(has, shift, 0)
    return np.where(u != 0, pos, out)


def clz(x: np.ndarray, bits: int) -> np.ndarray:
    u = np.asarray(x).view(_UNSIGNED[bits // 8])
    return (bits - 1 - highest_bit(u, bits)).astype(np.uint32)


def bfind(x: np.ndarray, bits: int, signed: bool, shiftamt: bool) -> np.ndarray:
    """bfind: position of the most significant non-sign bit; 0xffffffff when there is none."""
    u = np.asarray(x).view(_UNSIGNED[bits // 8])
    if signed:
        neg = np.asarray(x).view(_SIGNED[bits // 8]) < 0
        u = np.where(neg, ~u, u)
    pos = highest_bit(u, bits)
    out = np.where(pos < 0, 0xFFFFFFFF, (bits - 1 - pos) if shiftamt else pos)
    return out.astype(np.uint64).astype(np.uint32)


_BREV8 = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], np.uint8)


def brev(x: np.ndarray, bits: int) -> np.ndarray:
    u = np.ascontiguousarray(np.asarray(x).view(_UNSIGNED[bits // 8]))
    b = _BREV8[u.view(np.uint8)].reshape(u.shape + (bits // 8,))[..., ::-1]
    return np.ascontiguousarray(b).view(_UNSIGNED[bits // 8]).reshape(u.shape)


def bfe(a: np.ndarray, pos: np.ndarray, length: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """bfe: extract `length` bits at `pos` (both clamped to 0..255), sign-extending for .s."""
    ut = _UNSIGNED[bits // 8]
    u = np.asarray(a).view(ut).astype(np.uint64)
    p = np.asarray(pos).astype(np.int64) & 0xFF
    n = np.asarray(length).astype(np.int64) & 0xFF
    p_c = np.minimum(p, bits)
    n_c = np.minimum(n, bits)
    shifted = np.where(p_c >= bits, 0, u >> np.minimum(p_c, 63).astype(np.uint64))
    mask = np.where(
        n_c >= 64,
        np.uint64(-1 & 0xFFFFFFFFFFFFFFFF),
        (np.uint64(1) << np.minimum(n_c, 63).astype(np.uint64)) - np.uint64(1),
    )
    field = shifted.astype(np.uint64) & mask.astype(np.uint64)
    if signed:
        top = np.minimum(p + n - 1, bits - 1)
        sbit = ((u >> top.astype(np.uint64)) & np.uint64(1)) == 1
        sbit = np.where(n == 0, False, sbit)
        ext = np.where(sbit & (n_c < bits), ~mask.astype(np.uint64), np.uint64(0))
        field = field | ext
    out = (field & np.uint64((1 << bits) - 1)).astype(ut)
    return out.view(_SIGNED[bits // 8]) if signed else out


def bfi(a: np.ndarray, b: np.ndarray, pos: np.ndarray, length: np.ndarray, bits: int) -> np.ndarray:
    """bfi: insert the low `length` bits of a into b at `pos`."""
    ut = _UNSIGNED[bits // 8]
    ua = np.asarray(a).view(ut).astype(np.uint64)
    ub = np.asarray(b).view(ut).astype(np.uint64)
    p = np.asarray(pos).astype(np.int64) & 0xFF
    n = np.asarray(length).astype(np.int64) & 0xFF
    n_c = np.minimum(n, bits)
    full = np.uint64((1 << bits) - 1)
    mask = np.where(
        n_c >= 64,
        np.uint64(0xFFFFFFFFFFFFFFFF),
        (np.uint64(1) << np.minimum(n_c, 63).astype(np.uint64)) - np.uint64(1),
    )
    sh = np.minimum(p, 63).astype(np.uint64)
    mask_at = np.where(p >= bits, np.uint64(0), (mask << sh) & full)
    out = (ub & ~mask_at) | ((ua << sh) & mask_at)
    return (out & full).astype(ut)


def prmt(a: np.ndarray, b: np.ndarray, c: np.ndarray, mode: str | None) -> np.ndarray:
    """prmt.b32: byte permute of {b, a}; default mode and the .f4e/.b4e/.rc8/.ecl/.ecr/.rc16."""
    ua = np.asarray(a, np.uint32).astype(np.uint64)
    ub = np.asarray(b, np.uint32).astype(np.uint64)
    ua, ub, uc = np.broadcast_arrays(
        np.atleast_1d(ua), np.atleast_1d(ub), np.atleast_1d(np.asarray(c, np.uint32))
    )
    src = ua | (ub << np.uint64(32))
    nbytes = [((src >> np.uint64(8 * i)) & np.uint64(0xFF)) for i in range(8)]
    stack = np.stack(nbytes)  # (8, n)
    uc = uc.astype(np.int64)
    if mode is None:
        sels = [(uc >> (4 * i)) & 0xF for i in range(4)]
    else:
        lsb = uc & 3
        table = {
            "f4e": [[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6]],
            "b4e": [[4, 3, 2, 1], [5, 4, 3, 2], [6, 5, 4, 3], [7, 6, 5, 4]],
            "rc8": [[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]],
            "ecl": [[0, 1, 2, 3], [1, 1, 2, 3], [2, 2, 2, 3], [3, 3, 3, 3]],
            "ecr": [[0, 0, 0, 0], [0, 1, 1, 1], [0, 1, 2, 2], [0, 1, 2, 3]],
            "rc16": [[0, 1, 0, 1], [2, 3, 2, 3], [0, 1, 0, 1], [2, 3, 2, 3]],
        }[mode]
        t = np.array(table, np.int64)
        sels = [t[lsb, i] for i in range(4)]
    out = np.zeros(ua.shape, np.uint64)
    cols = np.arange(ua.shape[0])
    for i, sel in enumerate(sels):
        idx = sel & 7
        byte = stack[idx, cols]
        if mode is None:
            sign = (sel & 8) != 0
            msb = (byte >> np.uint64(7)) & np.uint64(1)
            byte = np.where(sign, np.where(msb == 1, np.uint64(0xFF), np.uint64(0)), byte)
        out |= byte.astype(np.uint64) << np.uint64(8 * i)
    return out.astype(np.uint32)


def funnel_shift(
    a: np.ndarray, b: np.ndarray, n: np.ndarray, left: bool, clamp: bool
) -> np.ndarray:
    """shf.{l,r}.{wrap,clamp}.b32: shift the 64-bit {b:a} and keep the high (l) or low (r) word."""
    ua = np.asarray(a, np.uint32).astype(np.uint64)
    ub = np.asarray(b, np.uint32).astype(np.uint64)
    un = np.asarray(n, np.uint32).astype(np.uint64)
    amt = np.minimum(un, np.uint64(32)) if clamp else un & np.uint64(31)
    wide = ua | (ub << np.uint64(32))
    if left:
        res = np.where(amt >= 32, ua, ((wide << amt) >> np.uint64(32)) & np.uint64(0xFFFFFFFF))
    else:
        res = np.where(amt >= 32, ub, (wide >> amt) & np.uint64(0xFFFFFFFF))
    return res.astype(np.uint32)
