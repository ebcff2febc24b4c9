"""nvcc-compiled test kernels against independent Python references.

The PTX (tests/data/nvcc/{ctrl,intops,fltops,fltops_ftz}.ptx) was generated with `nvcc -ptx
-arch=sm_80 -O3` (CUDA 13.0; `fltops_ftz` adds `-ftz=true`) from the CUDA sources kept beside
it, so that these tests need no compiler. The references compute in exact integer and rational
arithmetic (`fractions.Fraction`) and round with a bracketing search, independently of
chronos.emulate.numerics.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from tests.helpers.data import nvcc_text, run_nvcc

CTRL_PTX = nvcc_text("ctrl.ptx")
INTOPS_PTX = nvcc_text("intops.ptx")
FLTOPS_PTX = nvcc_text("fltops.ptx")
FLTOPS_FTZ_PTX = nvcc_text("fltops_ftz.ptx")


# --- references ---------------------------------------------------------------------------------


def s32(x: int) -> int:
    return ((x + 2**31) % 2**32) - 2**31


def u32(x: int) -> int:
    return x % 2**32


def s64(x: int) -> int:
    return ((x + 2**63) % 2**64) - 2**63


def u64(x: int) -> int:
    return x % 2**64


def cdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def clz(x: int, bits: int) -> int:
    return bits - x.bit_length()


def ctrl_ref(inp: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(inp)
    per = []
    for v in inp.tolist():
        acc = 0
        for k in range(v & 15):
            acc = s32(acc + k * v) if k & 1 else acc ^ k
        while acc > 1000:
            acc -= 777
        per.append(acc)
    per_a = np.array(per, np.int64)
    out = [s32(int(per_a[b * block : (b + 1) * block].sum())) for b in range(n // block)]
    act = inp <= 90
    odd = act & (inp & 1).astype(bool)
    ballots = sum(int(odd[w * 32 : (w + 1) * 32].sum()) for w in range(n // 32) if act[w * 32])
    red = [int(act.sum()), int(inp[act].max()), ballots]
    return np.array(out, np.int32), per_a.astype(np.int32), np.array(red, np.int32)


def intops_ref(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out, out64 = [], []
    for a, b in zip(A.tolist(), B.tolist(), strict=True):
        ua, ub = u32(a), u32(b)
        src = ua | (ub << 32)
        sel = ub & 0x7777
        byte = [(src >> (8 * k)) & 0xFF for k in range(8)]
        sa, sb = ((a & 0xFFFF) ^ 0x8000) - 0x8000, ((b & 0xFFFF) ^ 0x8000) - 0x8000
        sc = ((b & 0xFF) ^ 0x80) - 0x80
        o = [
            (ua * ub) >> 32,
            (a * b) >> 32,
            cdiv(a, b) if b else 7,
            a - cdiv(a, b) * b if b else 7,
            ua >> (ub & 31),
            a >> (ub & 31),
            bin(ua).count("1") + 100 * clz(ua, 32),
            int(f"{ua:032b}"[::-1], 2),
            sum(byte[(sel >> (4 * k)) & 7] << (8 * k) for k in range(4)),
            ((((ub << 32) | ua) << (ub & 31)) >> 32) & 0xFFFFFFFF,
            (((ub << 32) | ua) >> min(ub, 32)) & 0xFFFFFFFF,
            min(a, b) ^ max(ua, ub),
            abs(a) + ub // 3 + ub % 5,
            (ua & -ua).bit_length() + 64 * (abs(a - b) + 3),
            sa * sb + sc,
            int(np.float32(a).view(np.int32)) if a > b else a & 0xFF,
        ]
        out.extend(s32(v) for v in o)
        x, y = s64(a * 99999989), s64(b * -31)
        out64.extend(
            [
                s64(a * b * 3 + (a << 20)),
                s64(cdiv(a * 1000003, b)) if b else 5,
                s64((u64(u64(a) * 77777777) * u64(b)) >> 64),
                s64(((x * y) >> 64) + bin(u64(a * b)).count("1") + clz(u64(a), 64)),
            ]
        )
    return np.array(out, np.int64).astype(np.int32), np.array(out64, np.int64)


def round_f32(x: Fraction, mode: str, negative_zero: bool = False) -> float:
    """The float32 nearest to / below / above / toward zero from the exact value `x`."""
    if x == 0:
        return -0.0 if negative_zero else 0.0
    inf = np.float32(np.inf)
    r = np.float32(float(x))
    while Fraction(float(r)) > x:
        r = np.nextafter(r, -inf)
    while Fraction(float(np.nextafter(r, inf))) <= x:
        r = np.nextafter(r, inf)
    lo = float(r)
    if Fraction(lo) == x:
        return lo
    hi = float(np.nextafter(r, inf))
    if mode == "rd":
        return lo
    if mode == "ru":
        return hi
    if mode == "rz":
        return lo if x > 0 else hi
    below, above = x - Fraction(lo), Fraction(hi) - x
    if below != above:
        return lo if below < above else hi
    return lo if int(np.float32(lo).view(np.uint32)) % 2 == 0 else hi


def fltops_ref(A: np.ndarray, B: np.ndarray, C: np.ndarray, ftz: bool) -> tuple:
    """Reference for `fltops` (and its -ftz=true build)."""

    def flush(v: float) -> float:
        return math.copysign(0.0, v) if ftz and abs(v) < 2.0**-126 else v

    def rnd(x: Fraction, mode: str, negative_zero: bool = False) -> float:
        return flush(round_f32(x, mode, negative_zero))

    def zero_sum(x: float, y: float, mode: str) -> float:
        """Sign of an exact zero sum: like zeros keep it, a cancellation gives -0 only for rd."""
        if x == 0 and y == 0 and math.copysign(1, x) == math.copysign(1, y):
            return x
        return -0.0 if mode == "rd" else 0.0

    def add(x: float, y: float, mode: str) -> float:
        s = Fraction(x) + Fraction(y)
        return zero_sum(x, y, mode) if s == 0 else rnd(s, mode)

    out, iout = [], []
    f1e12 = Fraction(float(np.float32(1e12)))
    for a0, b0, c0 in zip(A.tolist(), B.tolist(), C.tolist(), strict=True):
        a, b, c = flush(a0), flush(b0), flush(c0)
        fa, fb, fc = Fraction(a), Fraction(b), Fraction(c)
        prod_neg = math.copysign(1, a) != math.copysign(1, b)
        o = []
        for mode in ("rn", "rz", "rd", "ru"):
            s = fa * fb + fc
            if s != 0:
                o.append(rnd(s, mode))
            elif fa * fb == 0:
                o.append(zero_sum(-0.0 if prod_neg else 0.0, c, mode))
            else:
                o.append(-0.0 if mode == "rd" else 0.0)
        o.append(add(a, b, "rz"))
        o.append(rnd(fa * fb, "ru", prod_neg))
        o.append(rnd(fa / fb, "rn", prod_neg))
        o.append(rnd(fa / fb, "rz", prod_neg))
        r = np.float32(math.sqrt(abs(a)))
        while Fraction(float(r)) ** 2 > abs(fa):
            r = np.nextafter(r, np.float32(0))
        while Fraction(float(np.nextafter(r, np.float32(np.inf)))) ** 2 <= abs(fa):
            r = np.nextafter(r, np.float32(np.inf))
        o.append(flush(float(r)))
        o.append(rnd(1 / fb, "ru"))
        if a == 0 and b == 0:
            o.append(-0.0 if math.copysign(1, a) < 0 or math.copysign(1, b) < 0 else 0.0)
        else:
            o.append(min(a, b))
        if a == 0 and c == 0:
            o.append(-0.0 if math.copysign(1, a) < 0 and math.copysign(1, c) < 0 else 0.0)
        else:
            o.append(max(a, c))
        o.append(round_f32(Fraction(int(np.float32(a0).view(np.int32))), "rz"))
        d = float(fa * fb + fc)  # fma.rn.f64, then cvt.rp.f32.f64
        o.append(rnd(Fraction(d), "ru") if d != 0 else 0.0)
        with np.errstate(over="ignore"):
            o.append(float(np.float16(np.float32(a))))
        o.append(add(a, -c, "rd") + 0.0)
        out.extend(o)

        def sat(v: int, lo: int, hi: int) -> int:
            return max(lo, min(hi, v))

        iout.extend(
            [
                sat(math.floor(rnd(fa * 1000, "rn")), -(2**31), 2**31 - 1),
                s32(sat(math.ceil(b), 0, 2**32 - 1)),
                sat(round(c), -(2**31), 2**31 - 1),
                s32(sat(math.trunc(rnd(fa * f1e12, "rn")), -(2**63), 2**63 - 1)),
            ]
        )
    return np.array(out, np.float32), np.array(iout, np.int64).astype(np.int32)


# --- tests --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_control_flow_barriers_shuffles_and_atomics(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, block = 256, 128
    inp = rng.integers(-100, 100, n).astype(np.int32)
    buffers = {
        "inp": inp,
        "out": np.zeros(2, np.int32),
        "per": np.zeros(n, np.int32),
        "red": np.zeros(3, np.int32),
    }
    res = run_nvcc(CTRL_PTX, "ctrl", (n // block, 1, 1), (block, 1, 1), buffers, read_only={"inp"})
    out, per, red = ctrl_ref(inp, block)
    assert np.array_equal(res.outputs["per"], per)
    assert np.array_equal(res.outputs["out"], out)
    assert np.array_equal(res.outputs["red"], red)


def test_integer_operations_match_exact_arithmetic() -> None:
    rng = np.random.default_rng(5)
    n = 128
    A = rng.integers(-(2**31), 2**31, n).astype(np.int32)
    B = rng.integers(-(2**31), 2**31, n).astype(np.int32)
    A[:10] = [0, -1, 1, -(2**31), 2**31 - 1, 5, -7, 100, 3, -3]
    B[:10] = [0, 0, -1, -1, 37, 40, 33, 31, 32, 64]
    B[10:40] = rng.integers(-40, 40, 30)
    buffers = {
        "A": A,
        "B": B,
        "out": np.zeros(n * 16, np.int32),
        "out64": np.zeros(n * 4, np.int64),
    }
    res = run_nvcc(INTOPS_PTX, "intops", (2, 1, 1), (64, 1, 1), buffers)
    out, out64 = intops_ref(A, B)
    assert np.array_equal(res.outputs["out"], out)
    assert np.array_equal(res.outputs["out64"], out64)


def _floats(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random float32 over 95 binades, subnormals included."""
    e = rng.integers(-75, 20, n)
    m = rng.integers(2**23, 2**24, n)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (sign * m * np.exp2(e - 23.0)).astype(np.float32)


@pytest.mark.parametrize("ftz", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_float_rounding_modes_ftz_and_conversions_are_bit_exact(ftz: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 128
    A, B, C = _floats(rng, n), _floats(rng, n), _floats(rng, n)
    A[:8] = [0, -0.0, 1.5, 3, 2.0**-140, -(2.0**-130), 7, 0.5]
    B[:8] = [1, 2, -1.5, 1 / 3, 2.0**-10, 3, 0.1, 0.5]
    C[:8] = [-0.0, 0, 2.25, -1, 2.0**-149, 1, -0.7, -0.25]
    A[8:10] = B[8:10] = 1 + 2.0**-12  # f64 sum lands on a float32 tie: double-rounding trap
    C[8:10] = [2.0**-60, -(2.0**-60)]
    C[20:40] = -(A[20:40] * B[20:40])
    buffers = {
        "A": A,
        "B": B,
        "C": C,
        "out": np.zeros(n * 16, np.float32),
        "iout": np.zeros(n * 4, np.int32),
    }
    res = run_nvcc(FLTOPS_FTZ_PTX if ftz else FLTOPS_PTX, "fltops", (2, 1, 1), (64, 1, 1), buffers)
    out, iout = fltops_ref(A, B, C, ftz)
    got = res.outputs["out"].view(np.uint32).reshape(n, 16)
    bad = np.argwhere(got != out.view(np.uint32).reshape(n, 16))
    assert not len(bad), f"(thread, output) pairs differ: {bad[:8].tolist()}"
    assert np.array_equal(res.outputs["iout"], iout)
