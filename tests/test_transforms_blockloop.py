"""vec_ld / vec_st on block-stride element loops (issue 31): the row loop of row-per-block
kernels, `for (c = threadIdx.x; c < cols; c += blockDim.x) ... row[c] ...`.

Kernels written for the purpose (tests/data/blockloop/rows.cu, nvcc -O3 sm_80): every
applicable one assembles for sm_80 and sm_90 with different SASS, and on rows starting 16-,
8- and 4-byte aligned (cols = 300, 258, 129) with two seeds the emulator's outputs equal the
untransformed kernel's bit for bit; the runtime row-alignment test is what keeps the
misaligned rows right; each refused loop names its unmet condition in one line.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import kernels
from chronos.assemble import assemble, ptxas_available
from chronos.ptx.parse import parse
from chronos.transforms import apply_action
from chronos.transforms.base import TransformContext
from chronos.transforms.divergence import block_uniform
from chronos.transforms.semantics import check, random_episode
from chronos.transforms.vectorize import VEC_LD, VEC_ST
from tests.helpers import blockloop_kernels as rows
from tests.helpers import outside_kernels
from tests.helpers.catalogue import assert_refused

SIZES = ("small", "check", "even")
ELEMENTWISE = [
    "outside_row_scale_bias",
    "outside_row_axpb_int",
    "outside_row_scale_inplace",
    "outside_row_hscale",
]
ORDERS = [("vec_ld",), ("vec_st",), ("vec_ld", "vec_st"), ("vec_st", "vec_ld")]


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with rows.registered(), outside_kernels.registered():
        yield


def _apply(spec, actions, ptx: str | None = None) -> str:
    ptx = spec.ptx() if ptx is None else ptx
    for a in actions:
        r = apply_action(spec, ptx, a)
        assert r.changed, r.reason
        ptx = r.ptx
    return ptx


def _exact(spec, ptx: str, sizes=SIZES) -> None:
    for size in sizes:
        for seed in (0, 1):
            why = check(spec, ptx, True, size, seed)
            assert why is None, f"{spec.id} {size} seed {seed}: {why}"


def test_sizes_cover_aligned_and_misaligned_rows() -> None:
    cols = {s: rows.ROW_SCALE_BIAS.problem(s).sizes["cols"] for s in SIZES}
    assert cols["small"] % 4 == 0 and cols["even"] % 4 == 2 and cols["check"] % 2 == 1


# both actions: the second merges the first's scalar copies, for 32-bit elements (the merge
# peephole does not pack 16-bit stores into words)
WIDENED = [(k, a) for k in ELEMENTWISE for a in ORDERS if len(a) == 1 or not k.endswith("hscale")]


@pytest.mark.parametrize(("kernel_id", "actions"), WIDENED)
def test_elementwise_row_loop_is_widened_and_bit_exact(kernel_id: str, actions) -> None:
    spec = kernels.load(kernel_id)
    ptx = _apply(spec, actions)
    t = "b32" if kernel_id.endswith("hscale") else "f32"  # halves travel as words
    if "vec_ld" in actions:
        assert f"ld.global.nc.v4.{t}" in ptx or f"ld.global.v4.{t}" in ptx
    if "vec_st" in actions:
        assert f"st.global.v4.{t}" in ptx
    _exact(spec, ptx)


@pytest.mark.skipif(not ptxas_available(), reason="no ptxas")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("kernel_id", [*ELEMENTWISE, "outside_row_softmax"])
def test_ptxas_accepts_it_and_the_sass_changes(kernel_id: str, arch: str) -> None:
    spec = kernels.load(kernel_id)
    before = assemble(spec.ptx(), arch).module_text_sha256
    for action in ("vec_ld", "vec_st"):
        r = apply_action(spec, spec.ptx(), action)
        assert r.changed, r.reason
        assert assemble(r.ptx, arch).module_text_sha256 != before, action


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_row_softmax_store_loop_is_widened_and_bit_exact(action: str) -> None:
    """The third loop (`dst[c] = __expf(row[c] - m) * inv`, m and inv read from shared memory
    between barriers, hence the same in every thread) is regrouped; the max and sum loops are
    per-thread partials and stay as they are. Exact against the untransformed kernel."""
    spec = kernels.load("outside_row_softmax")
    r = apply_action(spec, spec.ptx(), action)
    assert r.changed, r.reason
    assert r.ptx.count(".v4.f32") == 1
    _exact(spec, r.ptx, ("small", "check"))


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
@pytest.mark.parametrize("kernel_id", ELEMENTWISE)
def test_block_loop_form_is_idempotent(kernel_id: str, action: str) -> None:
    spec = kernels.load(kernel_id)
    once = apply_action(spec, spec.ptx(), action).ptx
    again = apply_action(spec, once, action)
    assert not again.changed and again.ptx == once


def test_the_runtime_row_alignment_test_is_load_bearing() -> None:
    """Without its branch to the original loop, misaligned rows (cols 129, 258) go wrong."""
    spec = rows.ROW_SCALE_BIAS
    ptx = apply_action(spec, spec.ptx(), "vec_ld").ptx
    lines = ptx.splitlines()
    k = next(i for i, ln in enumerate(lines) if "setp.ne.s64" in ln)
    assert " bra " in lines[k + 1]
    broken = "\n".join(lines[: k + 1] + lines[k + 2 :])
    assert check(spec, broken, True, "small", 0) is None  # 16-byte aligned rows
    for size in ("check", "even"):
        assert check(spec, broken, True, size, 0) is not None, size


def test_contract_divisibility_proves_alignment_without_a_runtime_test() -> None:
    """cols % 4 == 0 by contract: every row starts 16-byte aligned, the congruence analysis
    proves it, and the vector loop runs unconditionally."""
    spec = dataclasses.replace(
        rows.ROW_SCALE_BIAS,
        divisibility={"row_scale_bias_param_2": 4},
        problems={s: rows.ROW_SCALE_BIAS.problem(s) for s in ("full", "small")},
    )
    ctx = TransformContext.from_spec(spec)
    r = VEC_LD.run(parse(spec.ptx()), ctx)
    assert r.changed, r.reason
    assert "setp.ne.s64" not in r.ptx and "ld.global.nc.v4.f32" in r.ptx
    _exact(spec, r.ptx, ("small",))


REFUSED = [
    ("outside_row_max", "max.f32, a per-thread partial"),
    ("outside_row_sum", "add.f32, a per-thread partial"),
    ("outside_row_isum", "add.s32, a per-thread partial"),
    ("outside_row_diff", "two elements per iteration (a neighbour"),
    ("outside_rows_grid_scale", "a branch after it leads back before it (it sits in another loop)"),
    ("outside_row_odd_stride", "loop $L__BB8_3 is not one straight-line block"),
]


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
@pytest.mark.parametrize(("kernel_id", "words"), REFUSED)
def test_refusal_names_the_condition_in_one_line(kernel_id: str, words: str, action: str) -> None:
    assert_refused(kernel_id, action, words)


def _refusal(spec, ptx: str, action: str) -> str:
    ctx = TransformContext.from_spec(spec)
    r = (VEC_LD if action == "vec_ld" else VEC_ST).run(parse(ptx), ctx)
    assert not r.changed
    assert "\n" not in r.reason
    return r.reason


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_possibly_aliasing_input_is_refused(action: str) -> None:
    """No __restrict__ and no read_only contract: x may be y shifted by an element."""
    spec = dataclasses.replace(rows.ROW_COPY_ALIAS, read_only=frozenset())
    assert "ld.global.f32" in spec.ptx()
    assert "row_copy_alias_param_0, which is not read-only" in _refusal(spec, spec.ptx(), action)
    assert apply_action(rows.ROW_COPY_ALIAS, spec.ptx(), action).changed  # read-only by contract


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_thread_dependent_stride_is_refused(action: str) -> None:
    spec = rows.ROW_SCALE_BIAS
    old = "mov.u32 \t%r2, %ntid.x;"
    assert old in spec.ptx()
    ptx = spec.ptx().replace(old, "mov.u32 \t%r2, %ntid.x;\n\tadd.s32 \t%r2, %r2, %r7;")
    assert "the stride %r2 is not blockDim.x" in _refusal(spec, ptx, action)


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_thread_dependent_value_is_refused(action: str) -> None:
    """The bias replaced by threadIdx.x (as a float): elements would see another thread's."""
    spec = rows.ROW_SCALE_BIAS
    old = "ld.param.f32 \t%f2, [row_scale_bias_param_4];"
    ptx = spec.ptx().replace(old, "cvt.rn.f32.u32 \t%f2, %r7;")
    assert "reads %f2, which differs between threads" in _refusal(spec, ptx, action)


@pytest.mark.parametrize("action", ["vec_ld", "vec_st"])
def test_stored_array_accessed_outside_the_loop_is_refused(action: str) -> None:
    """y[0] stored before the loop by every thread: which thread writes each element last must
    not change, so the loop stays as it is."""
    spec = rows.ROW_SCALE_BIAS
    old = "cvta.to.global.u64 \t%rd3, %rd5;"
    assert old in spec.ptx()
    ptx = spec.ptx().replace(old, old + "\n\tst.global.f32 \t[%rd3], %f1;")
    assert "the stored array is also accessed outside the loop" in _refusal(spec, ptx, action)


def _softmax_fn(ptx: str):
    spec = kernels.load("outside_row_softmax")
    return spec, parse(ptx).entry(spec.entry)


def test_block_uniform_values_of_row_softmax() -> None:
    """m and 1/sum come from shared memory between barriers, the tree loops' counters from
    blockDim; threadIdx.x and what it guards differ between threads."""
    spec, fn = _softmax_fn(kernels.load("outside_row_softmax").ptx())
    u = block_uniform(fn)
    assert {"%f4", "%f24", "%f8", "%r25", "%r27", "%p3", "%p5", "%rd2"} <= u
    assert not {"%r28", "%p1", "%p6", "%f31", "%f33", "%r5"} & u


@pytest.mark.parametrize("barrier", ["", "bar.warp.sync \t-1;"])
def test_shared_load_without_a_barrier_after_it_varies(barrier: str) -> None:
    """Without the block barrier after `m = red[0]` (none, or only a warp's), thread 0's next
    `red[tid] = sum` may land before another thread reads red[0]: m is no longer the same
    everywhere, and the store loop that reads it is refused."""
    spec = kernels.load("outside_row_softmax")
    old = "ld.shared.f32 \t%f4, [_ZZ11row_softmaxE3red];\n\t.loc\t1 74 5\n\tbar.sync \t0;"
    assert old in spec.ptx()
    ptx = spec.ptx().replace(old, old.replace("bar.sync \t0;", barrier))
    assert "%f4" not in block_uniform(_softmax_fn(ptx)[1])
    assert "reads %f4, which differs between threads" in _refusal(spec, ptx, "vec_st")


def test_shared_write_on_a_divergent_path_makes_the_load_vary() -> None:
    """Threads past the last column (p6) skip to the end and, here, write red[tid] there: in
    the same barrier interval as the others' `inv = 1 / red[0]`."""
    spec = kernels.load("outside_row_softmax")
    old = "$L__BB4_18:\n\t.loc\t1 85 1\n\tret;"
    assert old in spec.ptx()
    ptx = spec.ptx().replace(old, old.replace("ret;", "st.shared.f32 \t[%r5], %f4;\n\tret;"))
    u = block_uniform(_softmax_fn(ptx)[1])
    assert "%f4" in u and "%f24" not in u and "%f8" not in u
    assert "reads %f8, which differs between threads" in _refusal(spec, ptx, "vec_st")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("kernel_id", [*ELEMENTWISE, "outside_row_sum", "outside_row_isum"])
def test_random_episodes_keep_the_semantics(kernel_id: str, seed: int) -> None:
    """Mask-respecting episodes (vec_ld/vec_st among cache hints, split_acc, reorder_cp, ...)
    stay within the spec's tolerance on every size, aligned rows or not."""
    spec = kernels.load(kernel_id)
    ptx, actions = random_episode(spec, np.random.default_rng(seed))
    for size in SIZES:
        for s in (0, 1):
            why = check(spec, ptx, False, size, s)
            assert why is None, f"{kernel_id} {actions} {size} seed {s}: {why}"
