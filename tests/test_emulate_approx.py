"""Approximate instructions as the PTX ISA defines them (chronos.emulate.approx): the special
ranges exactly, the error bounds as perturbed runs, and verification that fails when a
kernel's tolerance or inputs are beyond what the approximations promise (issue 35)."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from chronos.emulate import approx as ax
from chronos.emulate.verify import verify
from chronos.transforms import CATALOGUE, apply_action
from chronos.transforms.semantics import check, sizes_of
from kernels import Tolerance
from tests.helpers import approx_kernels as ak
from tests.helpers.registry import registered

FAST_MATH = next(i for i, t in enumerate(CATALOGUE) if t.name == "fast_math")
f32 = np.float32


def _pushed(op: str, args: tuple[np.ndarray, ...], mode: str, seed: int = 0) -> np.ndarray:
    return ax.evaluate(op, args, ax.Approx(mode, seed))


# --- the instructions ---------------------------------------------------------------------


def test_div_approx_returns_zero_for_divisors_in_the_flushed_range() -> None:
    b = np.array([2.0**126, 2.0**126 * 1.5, -(2.0**127), 2.0**127 * 1.99, 2.0**127], f32)
    a = np.array([2.0**126, 2.0**127, 2.0**127, -1.0, np.inf], f32)
    for mode in ax.MODES:
        r = _pushed("div.approx", (a, b), mode)
        assert r[0] == 1.0 or mode != "nominal"  # |b| = 2^126 is in the bounded range
        assert r[1] == 0 and not np.signbit(r[1])
        assert r[2] == 0 and np.signbit(r[2])  # sign-preserving
        assert r[3] == 0 and np.signbit(r[3])
        assert np.isnan(r[4])  # infinity over the flushed range
    # div.full has no such range, and IEEE division never had one.
    assert _pushed("div.full", (a[1:2], b[1:2]), "nominal")[0] == f32(2.0**127 / (1.5 * 2.0**126))


def _error(op: str, got: np.ndarray, bound: ax.Bound, nominal: np.ndarray) -> np.ndarray:
    """|got - reference| in units of the bound (<= 1 when within it)."""
    g = got.astype(np.float64)
    if bound.kind == "ulp-rounded":
        steps = np.abs(got.view(np.int32).astype(np.int64) - nominal.view(np.int32))
        return steps / bound.size
    size = {
        "abs": bound.size,
        "rel": bound.size * np.abs(bound.exact),
        "ulp": bound.size * np.spacing(np.abs(bound.exact).astype(f32)),
    }[bound.kind]
    return np.abs(g - bound.exact) / size


INPUTS = {
    "div.approx": lambda r: (r.uniform(-8, 8, 512), r.uniform(0.01, 100, 512)),
    "div.full": lambda r: (r.uniform(-8, 8, 512), r.uniform(-1e30, 1e30, 512)),
    "rcp": lambda r: (r.uniform(-1e3, 1e3, 512),),
    "sqrt": lambda r: (r.uniform(1e-30, 1e30, 512),),
    "rsqrt": lambda r: (r.uniform(1e-3, 1e6, 512),),
    "sin": lambda r: (r.uniform(-300, 300, 512),),
    "cos": lambda r: (r.uniform(-6, 6, 512),),
    "lg2": lambda r: (np.concatenate([r.uniform(0.51, 1.99, 256), r.uniform(2, 1e9, 256)]),),
    "ex2": lambda r: (r.uniform(-100, 100, 512),),
    "tanh": lambda r: (r.uniform(-5, 5, 512),),
}


@pytest.mark.parametrize("op", sorted(ax.NOMINAL))
def test_pushed_results_reach_their_bound_and_never_pass_it(op: str) -> None:
    rng = np.random.default_rng(35)
    args = tuple(a.astype(f32) for a in INPUTS[op](rng))
    nominal = _pushed(op, args, "nominal")
    bound = ax.BOUNDS[op](*args)
    assert not bound.unbounded.any() and not bound.exempt.any()
    assert (_error(op, nominal, bound, nominal) <= 1).all()
    up, down = _pushed(op, args, "up"), _pushed(op, args, "down")
    mixed = _pushed(op, args, "mixed", seed=1)
    for got in (up, down, mixed):
        err = _error(op, got, bound, nominal)
        assert (err <= 1 + 1e-12).all(), (op, float(err.max()))
    for got, toward in ((up, np.inf), (down, -np.inf)):  # the farthest float within the bound
        beyond = np.nextafter(got, f32(toward))
        assert (_error(op, beyond, bound, nominal) > 1).all(), op
    assert (up >= nominal).all() and (down <= nominal).all() and (up > down).all()
    # a mixed run pushes each element up or down, both within one run
    assert ((mixed == up) | (mixed == down)).all()
    assert 0.3 < (mixed == up).mean() < 0.7


def test_corner_case_tables_hold_in_every_run() -> None:
    z, inf, nan = f32(0), f32(np.inf), f32(np.nan)
    cases = {
        "ex2": ([z, -z, -inf, inf], [1, 1, 0, inf]),
        "rcp": ([z, -z, inf, -inf], [inf, -inf, 0, -0.0]),
        "tanh": ([z, inf, -inf, f32(1e-40)], [0, 1, -1, f32(1e-40)]),
        "sin": ([z, -z], [0, -0.0]),
        "cos": ([z, -z], [1, 1]),
        "lg2": ([z, inf, f32(-1)], [-inf, inf, nan]),
        "rsqrt": ([z, -z, inf, f32(-4)], [inf, -inf, 0, nan]),
        "sqrt": ([z, -z, inf, f32(-4)], [0, -0.0, inf, nan]),
    }
    for op, (xs, want) in cases.items():
        for mode in ax.MODES:
            got = _pushed(op, (np.array(xs, f32),), mode)
            want_arr = np.array(want, f32)
            assert np.array_equal(got, want_arr, equal_nan=True), (op, mode, got)
            signed = ~np.isnan(want_arr)
            assert np.array_equal(np.signbit(got[signed]), np.signbit(want_arr[signed])), (op, got)
    for mode in ax.MODES:
        assert np.isnan(_pushed("sin", (np.array([nan, inf], f32),), mode)).all()


def test_no_documented_bound_is_nan_in_perturbed_runs() -> None:
    x = np.array([1.0, 400.0, -1000.0], f32)  # beyond +-100 pi: "no defined error guarantees"
    assert np.isfinite(_pushed("sin", (x,), "nominal")).all()
    for mode in ax.PERTURBED:
        state = ax.Approx(mode)
        got = ax.evaluate("cos", (x,), state)
        assert np.isfinite(got[0]) and np.isnan(got[1:]).all() and state.unbounded == 2
    sub = np.array([1e-40], f32)  # a subnormal divisor without .ftz: no bound stated
    assert np.isfinite(_pushed("div.approx", (np.array([1e-10], f32), sub), "nominal")).all()
    assert np.isnan(_pushed("div.approx", (np.array([1e-10], f32), sub), "up")).all()


def test_mixed_directions_are_seeded_and_modes_are_checked() -> None:
    x = (np.arange(1, 200) / 7).astype(f32)
    a, b = _pushed("ex2", (x,), "mixed", 3), _pushed("ex2", (x,), "mixed", 3)
    assert np.array_equal(a, b) and not np.array_equal(a, _pushed("ex2", (x,), "mixed", 4))
    with pytest.raises(ValueError, match="approximation mode"):
        ax.Approx("sideways")


# --- verification of kernels --------------------------------------------------------------


def test_a_kernel_without_approximations_runs_once() -> None:
    spec = ak.quot_spec(Tolerance(1e-5, 0.0))
    v = verify(spec, spec.ptx(), exact=False)
    assert v.ok and v.approx_runs == 0 and v.run is not None and v.run.approx_executed == 0


def test_fast_math_division_reaching_the_zero_range_fails() -> None:
    """Divisors in (2^126, 2^128): IEEE division is right, div.approx returns 0."""
    spec = ak.quot_spec(Tolerance(1e-5, 0.0), huge=True)
    assert verify(spec, spec.ptx(), exact=False).ok
    res = apply_action(spec, spec.ptx(), FAST_MATH)
    assert res.changed and "div.approx.ftz.f32" in res.ptx
    v = verify(spec, res.ptx, exact=False)
    assert not v.ok and v.kind == "mismatch" and "got np.float32(0.0)" in str(v.error)
    assert check(spec, res.ptx, exact=False, size="check", seed=1) is not None


def test_tolerance_tighter_than_two_ulp_fails_after_fast_math() -> None:
    tight = ak.quot_spec(Tolerance(2.0**-23, 0.0))  # the original is within half an ulp
    loose = ak.quot_spec(Tolerance(1e-5, 0.0))
    for spec in (tight, loose):
        assert verify(spec, spec.ptx(), exact=False).ok
    ptx = apply_action(tight, tight.ptx(), FAST_MATH).ptx
    nominal = verify(tight, ptx, exact=False, approx=False)
    assert nominal.ok and nominal.bit_exact  # what the emulator alone used to conclude
    v = verify(tight, ptx, exact=False)
    assert not v.ok and v.kind == "approx" and v.approx_runs >= 1
    assert "pushed" in str(v.error) and "PTX ISA" in str(v.error)
    ok = verify(loose, ptx, exact=False)
    assert ok.ok and ok.approx_runs == len(ax.PERTURBED) and ok.max_abs_err > 0


def test_tanh_and_ex2_kernel_is_held_to_the_bounds() -> None:
    """tanh.approx is within 2^-11 relative: a 1e-3 contract holds, a 1e-4 one cannot."""
    loose, tight = ak.tanh_ex2_spec(Tolerance(1e-3, 0.0)), ak.tanh_ex2_spec(Tolerance(1e-4, 0))
    for size in ("small", "check"):
        v = verify(loose, loose.ptx(), exact=False, size=size, seed=2)
        assert v.ok and v.approx_runs == 3 and v.max_abs_err > 1e-5
        assert verify(tight, tight.ptx(), exact=False, size=size, approx=False).ok
        bad = verify(tight, tight.ptx(), exact=False, size=size)
        assert bad.kind == "approx" and "elements of t differ" in str(bad.error)


@pytest.mark.parametrize(
    ("span", "atol", "ok"),
    [(2 * np.pi, 1e-5, True), (100 * np.pi, 1e-5, False), (100 * np.pi, 1e-4, True)],
)
def test_sine_bound_grows_with_the_range(span: float, atol: float, ok: bool) -> None:
    spec = ak.sine_spec(span, atol)
    assert verify(spec, spec.ptx(), exact=False).ok is ok


def test_sine_beyond_the_documented_range_cannot_be_verified() -> None:
    spec = ak.sine_spec(250 * np.pi, 1e-2)
    v = verify(spec, spec.ptx(), exact=False)
    assert not v.ok and v.kind == "approx" and "outside every documented bound" in str(v.error)


@pytest.mark.requires_ptxas
def test_emulated_backend_and_env_reject_fast_math_beyond_the_contract() -> None:
    """The verdict reaches the measurement (invalid) and the environment (an invalid step)."""
    from chronos.measure.backends.emulated import EmulatedBackend
    from envs.ptx_env import PtxTransformEnv

    spec = ak.quot_spec(Tolerance(2.0**-23, 0.0))
    backend = EmulatedBackend(arch="sm_80")
    assert "verifier" in backend.cache_config()
    ptx = apply_action(spec, spec.ptx(), FAST_MATH).ptx
    m = backend.measure(spec, ptx)
    assert not m.valid and "approx" in str(m.error)
    with registered(spec):
        env = PtxTransformEnv(kernels=[spec.id], backend=backend)
        env.reset(seed=0)
        a = env.action_names.index("fast_math")
        assert env.action_masks()[a]
        _, _, terminated, _, info = env.step(a)
        assert terminated and "approx" in info["invalid"]
        env.close()


# --- the corpus: fast_math still verifies where the contract allows it ------------------------


FAMILY_SAMPLE = [
    "elementwise_fused_128_1",
    "gemm_tile_4_6_8",
    "layernorm_block_twopass_f32_b256_i2",
    "matvec_row_f32_128_1",
    "reduce_rows_f32_b128_i4_shfl",
    "softmax_block_f32_b256_i1_fast",
    "stencil2d_direct_5pt_f32_16x16_1",
    "triton_softmax_fp32_b128_w1",
]


def test_fast_math_sample_verifies_under_pushed_approximations() -> None:
    """One kernel per family with a tolerance, on both problems and two seeds (the full
    sweep: benchmarks/transforms_semantics.py --transforms fast_math)."""
    known = set(kernels.list_kernels())
    sample = [k for k in FAMILY_SAMPLE if k in known]
    assert len(sample) == len(FAMILY_SAMPLE), sorted(set(FAMILY_SAMPLE) - known)
    pushed = 0
    for kid in sample:
        spec = kernels.load(kid)
        res = apply_action(spec, spec.ptx(), FAST_MATH)
        assert res.changed, (kid, res.reason)
        for size in sizes_of(spec):
            for seed in (0, 1):
                v = verify(spec, res.ptx, exact=False, size=size, seed=seed)
                assert v.ok, (kid, size, seed, v.kind, v.error)
                pushed += v.approx_runs
    assert pushed > 0
