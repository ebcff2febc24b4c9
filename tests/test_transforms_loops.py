"""vec_ld / vec_st on element loops (issue 31, item 1): grid-stride and `i < n`-guarded
elementwise code regrouped into W-element vector groups plus a scalar tail.

Every applicable form assembles, and on two sizes (neither a multiple of the vector width)
and two seeds the emulator's outputs equal the reference and the untransformed kernel's bit
for bit; every form it refuses names the unmet condition in one line.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

import kernels
from chronos.assemble import assemble, ptxas_available
from chronos.emulate import verify
from chronos.ptx.parse import parse
from chronos.transforms import apply_action
from chronos.transforms.base import TransformContext
from chronos.transforms.vectorize import VEC_LD, VEC_ST
from tests.helpers import outside_kernels
from tests.helpers.catalogue import assert_refused

CASES = [
    ("outside_gs_saxpy", ("vec_ld",), "ld.global.nc.v4.f32"),
    ("outside_gs_saxpy", ("vec_st",), "st.global.v4.f32"),
    ("outside_gs_saxpy", ("vec_ld", "vec_st"), "st.global.v4.f32"),
    ("outside_haxpy_half", ("vec_ld",), "ld.global.nc.v4.b32"),
    ("outside_haxpy_half", ("vec_st",), "st.global.v4.b32"),
    ("outside_histogram_smem", ("vec_ld",), "ld.global.nc.v4.b32"),
]


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with outside_kernels.registered():
        yield


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
    return a


def _apply(spec, actions) -> str:
    ptx = spec.ptx()
    for a in actions:
        r = apply_action(spec, ptx, a)
        assert r.changed, r.reason
        ptx = r.ptx
    return ptx


def _check_exact(spec, ptx: str) -> None:
    for size in ("small", "check"):
        n = spec.problem(size).sizes["n"]
        assert n % 16, f"{size}: n={n} should not be a multiple of the vector width"
        for seed in (0, 1):
            v = verify(spec, ptx, exact=True, seed=seed, size=size)
            assert v.ok and v.bit_exact, f"{spec.id} {size} seed {seed}: {v.kind}: {v.error}"
            base = verify(spec, spec.ptx(), exact=True, seed=seed, size=size)
            for name, out in base.run.outputs.items():
                assert np.array_equal(_bits(v.run.outputs[name]), _bits(out)), (size, seed, name)


@pytest.mark.parametrize(("kernel_id", "actions", "vector"), CASES)
def test_loop_vectorized_kernel_assembles_and_is_bit_exact(kernel_id, actions, vector) -> None:
    spec = kernels.load(kernel_id)
    ptx = _apply(spec, actions)
    assert vector in ptx
    if ptxas_available():
        assemble(ptx, "sm_80")
    _check_exact(spec, ptx)


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
@pytest.mark.parametrize(
    "kernel_id", ["outside_gs_saxpy", "outside_haxpy_half", "outside_histogram_smem"]
)
def test_loop_form_is_idempotent(kernel_id: str, action: str) -> None:
    spec = kernels.load(kernel_id)
    once = apply_action(spec, spec.ptx(), action).ptx
    again = apply_action(spec, once, action)
    assert not again.changed and again.ptx == once


@pytest.mark.parametrize(
    ("kernel_id", "align", "action", "vector"),
    [
        ("outside_gs_saxpy", 8, "vec_ld", "ld.global.nc.v2.f32"),
        ("outside_haxpy_half", 8, "vec_ld", "ld.global.nc.v2.b32"),
        ("outside_haxpy_half", 4, "vec_ld", "ld.global.nc.b32"),
        ("outside_haxpy_half", 4, "vec_st", "st.global.b32"),
    ],
)
def test_narrower_alignment_contract_gives_narrower_vectors(
    kernel_id: str, align: int, action: str, vector: str
) -> None:
    """8- or 4-byte aligned pointers: 64- or 32-bit groups (f16 pairs in one b32 word), still
    bit-exact."""
    spec = kernels.load(kernel_id)
    narrow = dataclasses.replace(spec, alignment={k: align for k in spec.alignment})
    ptx = apply_action(narrow, narrow.ptx(), action).ptx
    assert vector in ptx and ".v4" not in ptx
    if ptxas_available():
        assemble(ptx, "sm_80")
    _check_exact(narrow, ptx)


def test_alignment_below_two_elements_names_the_contract() -> None:
    spec = kernels.load("outside_gs_saxpy")
    m = parse(spec.ptx())
    ctx = dataclasses.replace(
        TransformContext.from_spec(spec),
        alignment=(("gs_saxpy_param_2", 4), ("gs_saxpy_param_3", 256)),
    )
    r = VEC_LD.run(m, ctx)
    assert not r.changed
    assert "gs_saxpy_param_2 alignment 4 (spec.alignment)" in r.reason
    assert "\n" not in r.reason


def _ctx_run(transform, ptx: str, spec):
    return transform.run(parse(ptx), TransformContext.from_spec(spec))


def test_possibly_aliasing_load_is_refused() -> None:
    """Without `.nc` (and no spec.read_only), x may alias the stored y: elements may not move."""
    spec = kernels.load("outside_gs_saxpy")
    ptx = spec.ptx().replace("ld.global.nc.f32", "ld.global.f32")
    assert _ctx_run(VEC_LD, ptx, spec).changed  # spec.read_only (x is an input) proves it
    ctx = dataclasses.replace(TransformContext.from_spec(spec), read_only=frozenset())
    r = VEC_LD.run(parse(ptx), ctx)
    assert not r.changed
    assert "not read-only" in r.reason and "\n" not in r.reason


def test_thread_dependent_value_is_refused() -> None:
    """A body value that depends on the thread (here %tid.x, via %r8) would change when
    elements change threads."""
    spec = kernels.load("outside_gs_saxpy")
    ptx = spec.ptx().replace(
        "fma.rn.f32 \t%f4, %f2, %f1, %f3;",
        "cvt.rn.f32.u32 \t%f4, %r8;\n\tfma.rn.f32 \t%f4, %f2, %f4, %f3;",
    )
    assert ptx != spec.ptx()
    r = _ctx_run(VEC_ST, ptx, spec)
    assert not r.changed
    assert "differs between threads" in r.reason or "defines %f4 twice" in r.reason


REFUSED = [
    ("outside_block_sum", "accumulation"),
    ("outside_stencil5", "no grid-stride loop"),
    ("outside_transpose_padded", "no grid-stride loop"),
]


@pytest.mark.parametrize(
    ("action", "kernel_id", "words"),
    [(a, k, w) for a in ("vec_ld", "vec_st") for k, w in REFUSED]
    + [("vec_st", "outside_histogram_smem", "st.global")],
)
def test_refusal_names_the_condition_in_one_line(kernel_id: str, words: str, action: str) -> None:
    assert_refused(kernel_id, action, words)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        # the per-block bins go to a block-dependent global address: moving elements between
        # blocks would move counts between those addresses
        ("mul.wide.u32 \t%rd7, %r1, 4;", "mul.wide.u32 \t%rd7, %r13, 4;", "block-free"),
        # no barrier between the loop's shared atomics and the reads of the bins
        ("$L__BB6_3:\n\t.loc\t1 109 5\n\tbar.sync \t0;", "$L__BB6_3:", "no barrier"),
        # a shared bin feeds something other than the global sum
        ("setp.eq.s32 \t%p3, %r8, 0;", "setp.eq.s32 \t%p3, %r8, 1;", "not only a global"),
    ],
)
def test_histogram_regrouping_needs_the_whole_kernel_proof(old: str, new: str, words: str) -> None:
    spec = kernels.load("outside_histogram_smem")
    ptx = spec.ptx().replace(old, new)
    assert ptx != spec.ptx(), old
    r = _ctx_run(VEC_LD, ptx, spec)
    assert not r.changed
    assert words in r.reason and "\n" not in r.reason, r.reason


@pytest.mark.parametrize(
    ("kernel_id", "width"), [("outside_gs_saxpy", 4), ("outside_haxpy_half", 8)]
)
def test_divisible_count_needs_no_scalar_tail(kernel_id: str, width: int) -> None:
    """spec.divisibility proves n % W == 0 (and the blocks divide by W): no epilogue."""
    spec = kernels.load(kernel_id)
    entry = spec.entry
    problems = {
        name: outside_kernels._grid_stride(
            name,
            n,
            -(-n // b),
            b,
            entry,
            {"x": lambda n, g: (n,), "y": lambda n, g: (n,)},
        )
        for name, n, b in (("full", 1 << 20, 256), ("small", 16 * 75, 64), ("check", 16 * 33, 128))
    }
    div = dataclasses.replace(spec, divisibility={f"{entry}_param_0": 16}, problems=problems)
    for action in ("vec_ld", "vec_st"):
        ptx = apply_action(div, div.ptx(), action).ptx
        assert re.search(r"_tail:\s*bra\.uni", ptx), "the tail should be a plain exit"
        if ptxas_available():
            assemble(ptx, "sm_80")
        for size in ("small", "check"):
            for seed in (0, 1):
                v = verify(div, ptx, exact=True, seed=seed, size=size)
                assert v.ok and v.bit_exact, f"{action} {size} {seed}: {v.kind}: {v.error}"


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
@pytest.mark.parametrize("kernel_id", ["outside_gs_saxpy", "outside_haxpy_half"])
def test_odd_launch_shapes_cover_the_same_elements(kernel_id: str, action: str) -> None:
    """Blocks of 36 threads (a stride that is no multiple of W) and, for the guarded form, a
    grid of fewer threads than elements (the original leaves the rest alone; so must the
    regrouped kernel): outputs equal the untransformed kernel's bit for bit."""
    spec = kernels.load(kernel_id)
    entry = spec.entry
    shapes = {"x": lambda n, g: (n,), "y": lambda n, g: (n,)}
    problems = {
        name: outside_kernels._grid_stride(name, n, g, 36, entry, shapes)
        for name, n, g in (("full", 1 << 16, 64), ("small", 1001, 3), ("check", 77, 5))
    }
    odd = dataclasses.replace(spec, problems=problems)
    ptx = apply_action(odd, odd.ptx(), action).ptx
    assert ptx != odd.ptx()
    for size in ("small", "check"):
        for seed in (0, 1):
            v = verify(odd, ptx, exact=True, seed=seed, size=size)
            base = verify(odd, odd.ptx(), exact=True, seed=seed, size=size)
            assert v.run is not None and base.run is not None, (v.error, base.error)
            assert v.ok == base.ok
            for name, out in base.run.outputs.items():
                assert np.array_equal(_bits(v.run.outputs[name]), _bits(out)), (size, seed, name)


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_block_stride_loop(action: str) -> None:
    """`for (i = tid.x; i < n; i += ntid.x)` (gs_saxpy's PTX with the block as the stride; one
    block, so no two blocks race): regrouped and bit-exact."""
    spec = kernels.load("outside_gs_saxpy")
    ptx0 = (
        spec.ptx()
        .replace("mad.lo.s32 \t%r10, %r7, %r1, %r8;", "mov.u32 \t%r10, %tid.x;")
        .replace("mul.lo.s32 \t%r3, %r1, %r9;", "mov.u32 \t%r3, %ntid.x;")
    )
    assert "%tid.x;" in ptx0 and "mov.u32 \t%r3, %ntid.x;" in ptx0
    shapes = {"x": lambda n, g: (n,), "y": lambda n, g: (n,)}
    problems = {
        name: outside_kernels._grid_stride(name, n, 1, b, "gs_saxpy", shapes)
        for name, n, b in (("full", 1 << 16, 256), ("small", 1001, 36), ("check", 333, 64))
    }
    one = dataclasses.replace(spec, problems=problems)
    r = VEC_LD.run(parse(ptx0), TransformContext.from_spec(one)) if action == "vec_ld" else None
    r = r or VEC_ST.run(parse(ptx0), TransformContext.from_spec(one))
    assert r.changed, r.reason
    for size in ("small", "check"):
        for seed in (0, 1):
            v = verify(one, r.ptx, exact=True, seed=seed, size=size)
            base = verify(one, ptx0, exact=True, seed=seed, size=size)
            assert base.ok, base.error
            assert v.ok and v.bit_exact, f"{size} {seed}: {v.kind}: {v.error}"
            for name, out in base.run.outputs.items():
                assert np.array_equal(_bits(v.run.outputs[name]), _bits(out)), (size, seed, name)


def test_thread_dependent_exit_before_the_loop_is_refused() -> None:
    """`if (threadIdx.x == 5) return;` before the loop: which elements are skipped depends on
    the element-to-thread mapping the rewrite changes."""
    spec = kernels.load("outside_gs_saxpy")
    old = "mov.u32 \t%r8, %tid.x;"
    ptx = spec.ptx().replace(old, old + "\n\tsetp.eq.u32 \t%p0, %r8, 5;\n\t@%p0 bra \t$L__BB0_3;")
    assert ptx != spec.ptx()
    for t in (VEC_LD, VEC_ST):
        r = _ctx_run(t, ptx, spec)
        assert not r.changed
        assert "depends on the thread" in r.reason and "\n" not in r.reason, r.reason


def test_block_dependent_flush_of_the_bins_is_refused() -> None:
    """Only some blocks add their bins to global memory: moving elements between blocks
    would change the histogram."""
    spec = kernels.load("outside_histogram_smem")
    old = "ld.shared.u32 \t%r8, [%r2];"
    ptx = spec.ptx().replace(old, "setp.ne.s32 \t%p0, %r13, 0;\n\t@%p0 bra \t$L__BB6_5;\n\t" + old)
    assert ptx != spec.ptx()
    r = _ctx_run(VEC_LD, ptx, spec)
    assert not r.changed
    assert "depends on the block" in r.reason and "\n" not in r.reason, r.reason
