"""Approximate PTX instructions as the PTX ISA defines them: exact special cases, bounded error.

The hardware's `.approx` results (and `div.full`'s) are only promised within an error bound,
so one emulated value proves nothing about the GPU's. Every run computes them *nominally*
(the correctly rounded value, with the ISA's special ranges, e.g. `div.approx` returning 0
for 2^126 < |b| < 2^128, and `.ftz` applied by the decoder around it); verification then
repeats the run with every approximate result pushed to its documented bound ("up", "down",
or a seeded "mixed" sign per element), and a kernel is correct only if every run is.

Bounds (PTX ISA 9.x, section 9.7.3 "Floating Point Instructions"; docs/emulator.md cites each):

| op | bound | section |
|---|---|---|
| div.approx.f32 | 2 ulp for |b| in [2^-126, 2^126]; 0 (inf/b: NaN) above | 9.7.3.8 |
| div.full.f32 | 2 ulp, full range | 9.7.3.8 |
| rcp.approx.f32 | 1 ulp, full range | 9.7.3.13 |
| sqrt.approx.f32 | 2^-23 relative, positive finite range | 9.7.3.15 |
| rsqrt.approx.f32 | 2^-22.9 relative, positive finite range | 9.7.3.16 |
| sin/cos.approx.f32 | 2^-20.5 absolute in [-2pi, 2pi], 2^-14.7 in [-100pi, 100pi] | 9.7.3.18-19 |
| lg2.approx.f32 | 2^-22 absolute in (0.5, 2), 2^-22 relative elsewhere | 9.7.3.20 |
| ex2.approx.f32 | 2 ulp from the correctly rounded result, full range | 9.7.3.21 |
| tanh.approx.f32 | 2^-11 relative, full range (subnormals pass through) | 9.7.3.22 |

Where the ISA states no bound (sin/cos beyond 100pi, `div.approx` by a subnormal divisor,
the f64 approximations) a perturbed run yields NaN: the emulator cannot vouch for the value,
so verification fails wherever it reaches an output. The inputs of each instruction's
corner-case table (zeros, infinities, NaN) give their exact table value in every run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from chronos.emulate import numerics as nx

MODES = ("nominal", "up", "down", "mixed")
"""How a run computes approximate results: correctly rounded, or pushed to the bound
toward +inf, toward -inf, or in a seeded random direction per element."""

PERTURBED = ("up", "down", "mixed")
"""The perturbed runs verification adds when approximate instructions execute."""

_F32_MAX = np.float32(np.finfo(np.float32).max)
_TWO_PI = 2 * np.pi
_HUNDRED_PI = 100 * np.pi
DIV_APPROX_ZERO_LO = 2.0**126
DIV_APPROX_ZERO_HI = 2.0**128


class Approx:
    """One run's approximation state: its mode, its seeded directions, what executed.

    `executed` counts approximate instruction executions (any lanes): verification only adds
    perturbed runs when it is non-zero. `unbounded` counts elements a perturbed run set to NaN
    because the ISA gives no bound for their input.
    """

    def __init__(self, mode: str = "nominal", seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"approximation mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.seed = seed
        self._rng = np.random.default_rng(seed) if mode == "mixed" else None
        self.executed = 0
        self.unbounded = 0

    def __repr__(self) -> str:
        return f"Approx({self.mode!r}, seed={self.seed})"

    def direction(self, shape: tuple[int, ...]) -> np.ndarray:
        """+1 / -1 per element: toward +inf or -inf."""
        if self.mode == "up":
            return np.ones(shape)
        if self.mode == "down":
            return -np.ones(shape)
        assert self._rng is not None
        return np.where(self._rng.random(shape) < 0.5, -1.0, 1.0)


@dataclass(frozen=True)
class Bound:
    """An approximate result's bound, per element (all float64 arrays of the result's shape).

    `kind` is "ulp" (`size` float32 ulps from `exact`), "ulp-rounded" (`size` ulps from the
    correctly rounded result: ex2's wording), "abs" or "rel" (`size` absolute / relative to
    `exact`). `exempt`: the ISA's table gives the value
    exactly; `unbounded`: the ISA gives no bound.
    """

    kind: str
    size: np.ndarray
    exact: np.ndarray
    exempt: np.ndarray
    unbounded: np.ndarray


def _f64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).astype(np.float64)


def _table(*args: np.ndarray) -> np.ndarray:
    """Inputs the corner-case tables fix exactly: zeros, infinities and NaN."""
    out = np.zeros(np.broadcast(*args).shape, bool)
    for a in args:
        out = out | (a == 0) | ~np.isfinite(a)
    return out


def _none(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, bool)


# --- nominal values: correctly rounded, with the ISA's special ranges ---------------------


def div_approx(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """div.approx.f32 nominally: the rounded quotient, except that it is computed as
    a * (1/b) and 1/b flushes for 2^126 < |b| < 2^128 (a sign-preserving zero; NaN for inf/b)."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    r = nx.div_f32(a, b)
    mag = np.abs(b.astype(np.float64))
    zone = (mag > DIV_APPROX_ZERO_LO) & (mag < DIV_APPROX_ZERO_HI)
    if not np.any(zone):
        return r
    with np.errstate(invalid="ignore"):
        flushed = a * np.copysign(np.float32(0), b)
    return np.where(zone, flushed, r).astype(np.float32)


def _unary64(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def nominal(a: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(f(_f64(a))).astype(np.float32)

    return nominal


def _rsqrt(x: np.ndarray) -> np.ndarray:
    return 1.0 / np.sqrt(x)


NOMINAL: dict[str, Callable[..., np.ndarray]] = {
    "div.approx": div_approx,
    "div.full": lambda a, b: nx.div_f32(a, b),
    "rcp": lambda a: nx.div_f32(np.float32(1.0), a),
    "sqrt": lambda a: nx.sqrt_f32(a),
    "rsqrt": _unary64(_rsqrt),
    "sin": _unary64(np.sin),
    "cos": _unary64(np.cos),
    "lg2": _unary64(np.log2),
    "ex2": _unary64(np.exp2),
    "tanh": _unary64(np.tanh),
}
"""op -> its float32 nominal value from float32 inputs (already flushed where `.ftz`)."""


# --- bounds ----------------------------------------------------------------------------------


def _ulps(
    k: float, exact: np.ndarray, exempt: np.ndarray, unbounded: np.ndarray, kind: str = "ulp"
) -> Bound:
    return Bound(kind, np.full(exact.shape, float(k)), exact, exempt, unbounded)


def _bound_div(a: np.ndarray, b: np.ndarray, full: bool) -> Bound:
    a64, b64 = np.broadcast_arrays(_f64(a), _f64(b))
    with np.errstate(all="ignore"):
        exact = a64 / b64
    mag = np.abs(b64)
    exempt = _table(a64, b64)
    unbounded = _none(exact.shape)
    if not full:
        exempt = exempt | (mag > DIV_APPROX_ZERO_LO)  # the zero range is exact
        unbounded = ~exempt & (mag < float(nx.F32_MIN_NORMAL))
    return _ulps(2, exact, exempt, unbounded)


def _bound_rel(f: Callable[[np.ndarray], np.ndarray], rel: float) -> Callable[[np.ndarray], Bound]:
    def bound(a: np.ndarray) -> Bound:
        x = _f64(a)
        with np.errstate(all="ignore"):
            exact = np.asarray(f(x), np.float64)
        exempt = _table(x) | (x < 0)
        return Bound("rel", np.full(x.shape, rel), exact, exempt, _none(x.shape))

    return bound


def _bound_trig(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], Bound]:
    def bound(a: np.ndarray) -> Bound:
        x = _f64(a)
        with np.errstate(invalid="ignore"):
            exact = np.asarray(f(x), np.float64)
        size = np.where(np.abs(x) <= _TWO_PI, 2.0**-20.5, 2.0**-14.7)
        exempt = _table(x)
        return Bound("abs", size, exact, exempt, ~exempt & (np.abs(x) > _HUNDRED_PI))

    return bound


def _bound_lg2(a: np.ndarray) -> Bound:
    x = _f64(a)
    with np.errstate(all="ignore"):
        exact = np.log2(x)
    near_one = (x > 0.5) & (x < 2.0)
    size = np.where(near_one, 2.0**-22, 2.0**-22 * np.abs(exact))
    exempt = _table(x) | (x < 0)
    return Bound("abs", size, exact, exempt, _none(x.shape))


def _bound_ex2(a: np.ndarray) -> Bound:
    x = _f64(a)
    with np.errstate(all="ignore"):
        exact = np.exp2(x)
    return _ulps(2, exact, _table(x), _none(x.shape), "ulp-rounded")


def _bound_rcp(a: np.ndarray) -> Bound:
    x = _f64(a)
    with np.errstate(all="ignore"):
        exact = 1.0 / x
    return _ulps(1, exact, _table(x), _none(x.shape))


def _bound_tanh(a: np.ndarray) -> Bound:
    x = _f64(a)
    exempt = _table(x) | (np.abs(x) < float(nx.F32_MIN_NORMAL))  # subnormals pass through
    return Bound("rel", np.full(x.shape, 2.0**-11), np.tanh(x), exempt, _none(x.shape))


BOUNDS: dict[str, Callable[..., Bound]] = {
    "div.approx": lambda a, b: _bound_div(a, b, full=False),
    "div.full": lambda a, b: _bound_div(a, b, full=True),
    "rcp": _bound_rcp,
    "sqrt": _bound_rel(np.sqrt, 2.0**-23),
    "rsqrt": _bound_rel(_rsqrt, 2.0**-22.9),
    "sin": _bound_trig(np.sin),
    "cos": _bound_trig(np.cos),
    "lg2": _bound_lg2,
    "ex2": _bound_ex2,
    "tanh": _bound_tanh,
}
"""op -> its documented bound for given inputs (the table in this module's docstring)."""


def _spacing(x: np.ndarray) -> np.ndarray:
    """The float32 ulp at |x| (float64), for finite x within float32's range."""
    with np.errstate(all="ignore"):
        mag = np.minimum(np.abs(x), float(_F32_MAX)).astype(np.float32)
        return np.spacing(mag).astype(np.float64)


def push(nominal: np.ndarray, bound: Bound, direction: np.ndarray) -> np.ndarray:
    """`nominal` moved to its bound in `direction` (+1 toward +inf), never past the bound.

    Non-finite and zero nominal results, and exempt inputs, stay; unbounded ones become NaN.
    A finite result is never pushed to infinity.
    """
    r = np.array(np.broadcast_to(nominal, bound.exact.shape), np.float32)
    move = np.isfinite(r) & (r != 0) & ~bound.exempt & ~bound.unbounded
    if bound.kind == "ulp-rounded":
        toward = np.where(direction > 0, np.float32(np.inf), np.float32(-np.inf))
        p = r
        for _ in range(int(bound.size.max(initial=0))):
            p = np.where(move, np.nextafter(p, toward), p).astype(np.float32)
    else:
        size = {
            "abs": lambda: bound.size,
            "rel": lambda: bound.size * np.abs(bound.exact),
            "ulp": lambda: bound.size * _spacing(bound.exact),
        }[bound.kind]()
        with np.errstate(all="ignore"):
            p = (bound.exact + direction * size).astype(np.float32)
            over = np.abs(p.astype(np.float64) - bound.exact) > size
        back = np.nextafter(p, bound.exact.astype(np.float32))
        p = np.where(over, back, p).astype(np.float32)
    p = np.clip(p, -_F32_MAX, _F32_MAX).astype(np.float32)
    out = np.where(move, p, r)
    return np.where(bound.unbounded, np.float32(np.nan), out).astype(np.float32)


def evaluate(op: str, args: tuple[np.ndarray, ...], state: Approx) -> np.ndarray:
    """One approximate instruction's float32 result for inputs `args` in `state`'s mode."""
    state.executed += 1
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = NOMINAL[op](*args)
    if state.mode == "nominal":
        return r
    bound = BOUNDS[op](*args)
    state.unbounded += int(np.count_nonzero(bound.unbounded))
    return push(r, bound, state.direction(bound.exact.shape))


def unbounded_f64(nominal: np.ndarray, state: Approx) -> np.ndarray:
    """An f64 approximation (`rcp/rsqrt.approx.f64`): the ISA states no bound, so a
    perturbed run yields NaN."""
    state.executed += 1
    if state.mode == "nominal":
        return nominal
    out = np.full(np.shape(nominal), np.nan)
    state.unbounded += out.size
    return out
