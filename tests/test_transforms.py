"""The action catalogue: API, invariants, masks, determinism, idempotence, alignment analysis."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import kernels
from chronos.ptx import parse
from chronos.transforms import (
    ACTION_NAMES,
    CATALOGUE,
    N_ACTIONS,
    STOP,
    TransformContext,
    TransformResult,
    action_mask,
    apply_action,
    apply_sequence,
    conflicts,
    transform_context,
)
from chronos.transforms.alignment import Cong, analyze
from chronos.transforms.catalogue import ACTION_IDS
from chronos.transforms.vectorize import VEC_STS

KERNEL = "gemm_tile_4_6_8"
SAMPLE = [
    "gemm_tile_2_2_2",
    "gemm_tile_4_6_8",
    "gemm_tile_6_2_4",
    "gemm_tile_8_8_8",
    "gemm_tile_2_6_6",
    "gemm_tile_8_4_2",
]
FAMILY_SAMPLE = [
    "reduce_rows_f32_b128_i4_shfl",
    "transpose_f32_t32x8",
    "softmax_block_f32_b128_i4",
    "layernorm_warp_welford_f32_b128_i2",
    "triton_softmax_fp32_b1024_w4_ragged",
    "triton_add_fp32_b1024_w4",
]


@pytest.fixture(scope="module")
def spec() -> kernels.KernelSpec:
    return kernels.load(KERNEL)


# --- catalogue invariants ----------------------------------------------------------------------


def test_catalogue_shape() -> None:
    assert N_ACTIONS == 21 and STOP == 20 and len(CATALOGUE) == 20
    assert len(ACTION_NAMES) == 21 and ACTION_NAMES[STOP] == "stop"
    assert len(set(ACTION_NAMES)) == 21
    for i, t in enumerate(CATALOGUE):
        assert ACTION_NAMES[i] == t.name and ACTION_IDS[t.name] == i
        assert t.group and t.summary and isinstance(t.exact, bool)
        assert isinstance(t.exclusive, bool)


def test_required_names_and_groups() -> None:
    groups = {t.name: (t.group, t.exclusive) for t in CATALOGUE}
    for n in ("maxnreg_32", "maxnreg_64", "maxnreg_128"):
        assert groups[n] == ("REGCAP", True)
    assert groups["occupancy_75"] == groups["reqntid"] == ("LAUNCH", True)
    for n in ("ld_nc", "ld_cg", "ld_cs"):
        assert groups[n] == ("LDCACHE", True)
    assert groups["st_cs"][0] == "STCACHE"
    assert groups["ld_na"] == ("LDCACHE", True)
    assert groups["vec_ld"][0] == groups["vec_st"][0] == "VEC"
    assert groups["split_acc"][0] == "ILP"
    assert groups["reorder_cp"][0] == "SCHED" and groups["cp_async"][0] == "ASYNC"
    assert groups["fast_math"] == ("MATH", False)
    rounding = {t.name for t in CATALOGUE if not t.exact}
    assert rounding == {"fast_math", "split_acc"}
    assert groups["prefetch_l2"] == groups["ld_l2_256B"] == ("PREFETCH", True)
    assert groups["ld_l2_128B"] == ("PREFETCH", True)


def test_conflicts() -> None:
    ids = ACTION_IDS
    assert conflicts(ids["maxnreg_32"], ids["maxnreg_64"])
    assert conflicts(ids["ld_nc"], ids["ld_cs"])
    assert conflicts(ids["prefetch_l2"], ids["ld_l2_256B"])
    assert not conflicts(ids["vec_ld"], ids["vec_st"])
    assert not conflicts(ids["vec_ld"], ids["cp_async"])
    assert not conflicts(ids["fast_math"], ids["split_acc"])
    assert not conflicts(ids["maxnreg_32"], ids["reqntid"])
    assert conflicts(ids["vec_ld"], ids["vec_ld"])
    assert not conflicts(STOP, ids["vec_ld"])


# --- API behaviour -----------------------------------------------------------------------------


def test_stop_and_names(spec: kernels.KernelSpec) -> None:
    ptx = spec.ptx()
    res = apply_action(spec, ptx, STOP)
    assert res.ptx == ptx and not res.changed
    assert (
        apply_action(spec, ptx, "vec_ld").ptx == apply_action(spec, ptx, ACTION_IDS["vec_ld"]).ptx
    )
    with pytest.raises(KeyError):
        apply_action(spec, ptx, "no_such_action")


def test_mask_on_base_kernel(spec: kernels.KernelSpec) -> None:
    mask = action_mask(spec, spec.ptx(), [])
    assert mask.dtype == bool and mask.shape == (21,)
    # gemm_tile's k loop advances each accumulator once per iteration: no chain to split
    assert [ACTION_NAMES[i] for i in np.flatnonzero(~mask)] == ["split_acc"]


def test_mask_excludes_applied_and_group(spec: kernels.KernelSpec) -> None:
    ptx = spec.ptx()
    a = ACTION_IDS["maxnreg_64"]
    ptx2 = apply_action(spec, ptx, a).ptx
    mask = action_mask(spec, ptx2, [a])
    for n in ("maxnreg_32", "maxnreg_64", "maxnreg_128"):
        assert not mask[ACTION_IDS[n]]
    assert mask[ACTION_IDS["vec_ld"]] and mask[STOP]
    # applied-but-unchanged actions are still excluded
    assert not action_mask(spec, ptx, [ACTION_IDS["vec_ld"]])[ACTION_IDS["vec_ld"]]


def test_mask_is_precondition(spec: kernels.KernelSpec) -> None:
    """An action is unmasked exactly when it would change the PTX."""
    ptx = apply_sequence(spec, spec.ptx(), ["cp_async", "vec_st"])
    mask = action_mask(spec, ptx, [])
    for i in range(STOP):
        assert mask[i] == apply_action(spec, ptx, i).changed, ACTION_NAMES[i]
    # no copy left to hoist; vec_ld still has the shared loads of the tile to merge
    assert not mask[ACTION_IDS["reorder_cp"]] and mask[ACTION_IDS["vec_ld"]]


def test_all_transforms_change_some_base_and_say_why() -> None:
    """Each transform applies to some sampled kernel; every verdict names the transform."""
    applied = {t.name: 0 for t in CATALOGUE}
    for k in [KERNEL, *FAMILY_SAMPLE]:
        spec = kernels.load(k)
        ptx = spec.ptx()
        for i, t in enumerate(CATALOGUE):
            res = apply_action(spec, ptx, i)
            assert t.name in res.reason and (res.ptx != ptx) == res.changed
            applied[t.name] += res.changed
    assert all(applied.values()), applied


@pytest.mark.parametrize("kernel_id", SAMPLE[:3] + FAMILY_SAMPLE)
def test_idempotent_and_deterministic(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    for i, t in enumerate(CATALOGUE):
        first = apply_action(spec, ptx, i)
        assert apply_action(spec, ptx, i) == first
        # fresh objects: no hidden state in caches
        fresh = t.run(parse(ptx), TransformContext.from_spec(spec))
        assert fresh == first, t.name
        second = apply_action(spec, first.ptx, i)
        assert not second.changed and second.ptx == first.ptx, t.name
        assert second.reason


def test_failed_precondition_returns_input_with_reason(spec: kernels.KernelSpec) -> None:
    ptx = apply_action(spec, spec.ptx(), "maxnreg_64").ptx
    res = apply_action(spec, ptx, "maxnreg_32")
    assert not res.changed and res.ptx == ptx and "already" in res.reason
    ctx = TransformContext.make(entry=spec.entry, arch="sm_75")
    res2 = CATALOGUE[ACTION_IDS["cp_async"]].run(parse(spec.ptx()), ctx)
    assert not res2.changed and "sm_80" in res2.reason


def test_apply_sequence_matches_steps(spec: kernels.KernelSpec) -> None:
    seq = ["vec_ld", "vec_st", "cp_async", "maxnreg_128"]
    ptx = spec.ptx()
    for a in seq:
        ptx = apply_action(spec, ptx, a).ptx
    assert apply_sequence(spec, spec.ptx(), seq) == ptx


def test_context_from_spec(spec: kernels.KernelSpec) -> None:
    ctx = transform_context(spec)
    assert ctx is transform_context(spec)
    assert ctx.block == tuple(spec.problem("full").block)
    assert ctx.read_only == {f"{KERNEL}_param_0", f"{KERNEL}_param_1"}
    assert ctx.align_of(f"{KERNEL}_param_0") == 256 and ctx.sm == 80


def test_ld_nc_only_on_read_only_buffers(spec: kernels.KernelSpec) -> None:
    ptx = spec.ptx()
    out = apply_action(spec, ptx, "ld_nc").ptx
    assert out.count("ld.global.nc.f32") == ptx.count("ld.global.f32")
    ctx = TransformContext.make(entry=spec.entry, alignment=spec.alignment, read_only=())
    res = CATALOGUE[ACTION_IDS["ld_nc"]].run(parse(ptx), ctx)
    assert not res.changed
    # only B read-only: only B's loads (through param_1) get .nc
    ctx = TransformContext.make(entry=spec.entry, read_only={f"{KERNEL}_param_1"})
    res = CATALOGUE[ACTION_IDS["ld_nc"]].run(parse(ptx), ctx)
    assert res.changed and 0 < res.ptx.count(".nc.") < ptx.count("ld.global.f32")


def test_cp_async_emits_wait_before_barrier(spec: kernels.KernelSpec) -> None:
    ptx = apply_sequence(spec, spec.ptx(), ["vec_ld"])
    out = apply_action(spec, ptx, "cp_async").ptx
    lines = [ln.strip() for ln in out.splitlines()]
    assert "st.shared" not in out
    assert any(ln.startswith("cp.async.ca.shared.global") and ln.endswith(", 16;") for ln in lines)
    i = lines.index("cp.async.wait_all;")
    assert lines[i + 1].startswith("bar.sync")


def test_occupancy_75_asks_for_three_quarters_of_the_warp_slots(spec: kernels.KernelSpec) -> None:
    from chronos.transforms.launch import ctas_for_occupancy

    # 64 warps per SM on sm_80/sm_90: 48 warps = 24 CTAs of 2 warps; sm_89 has 48 warp slots.
    assert ctas_for_occupancy(64, "sm_80", 0.75) == 24
    assert ctas_for_occupancy(64, "sm_89", 0.75) == 18
    assert ctas_for_occupancy(32, "sm_90", 0.75) == 32  # capped by the 32-CTA limit
    out = apply_action(spec, spec.ptx(), "occupancy_75").ptx
    fn = parse(out).entry(spec.entry)
    assert fn.directives[".maxntid"] == "8, 8, 1" and fn.directives[".minnctapersm"] == "24"
    big = TransformContext.make(entry=spec.entry, block=(1024, 1, 1))
    res = CATALOGUE[ACTION_IDS["occupancy_75"]].run(parse(spec.ptx()), big)
    assert not res.changed and "no CTA count" in res.reason


def test_coverage_duplicate_rule() -> None:
    from chronos.transforms.coverage import _duplicates

    assert _duplicates({"k1": "a", "k2": "b"}, {"k1": "a", "k2": "b", "k3": "c"})
    assert not _duplicates({"k1": "a", "k2": "b"}, {"k1": "a", "k2": "x"})
    assert not _duplicates({"k1": "a", "k2": "b"}, {"k1": "a"})  # the other misses a kernel
    assert not _duplicates({}, {"k1": "a"})


def test_coverage_cli_exits_1_on_defects(capsys: pytest.CaptureFixture[str]) -> None:
    """On one tiny kernel some actions coincide or change nothing: the CLI says so and fails."""
    from chronos.transforms.__main__ import main

    rc = main(["coverage", "--kernels", "gemm_tile_2_2_2"])
    out = capsys.readouterr().out
    assert out.startswith("action coverage over 1 kernels, sm_80")
    assert "SASS-changing actions per family, sm_80" in out and "\ngemm_tile " in out
    assert len([ln for ln in out.splitlines() if ln[:2].strip().isdigit()]) == 20
    defects = [ln for ln in out.splitlines() if ln.startswith("DEFECT:")]
    assert rc == (1 if defects else 0)
    assert any("of these 1 kernels" in ln for ln in defects)


def test_vec_sts_kept_out_of_catalogue_but_works(spec: kernels.KernelSpec) -> None:
    res = VEC_STS.run(parse(spec.ptx()), transform_context(spec))
    assert res.changed and "st.shared.v4.f32" in res.ptx and ".align 16" in res.ptx


def test_show_and_list_cli(capsys: pytest.CaptureFixture[str]) -> None:
    from chronos.transforms.__main__ import main

    assert main(["show", KERNEL, "vec_ld"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# vec_ld") and "+\tld.global.v4.f32" in out and "---" in out
    assert main(["list"]) == 0
    assert "ld_l2_256B" in capsys.readouterr().out


# --- alignment analysis ------------------------------------------------------------------------

_PROLOGUE = """.version 9.0
.target sm_80
.address_size 64

.visible .entry k(
	.param .u64 k_param_0,
	.param .u64 k_param_1,
	.param .u32 k_param_2
)
{
	.reg .pred 	%p<2>;
	.reg .f32 	%f<9>;
	.reg .b32 	%r<9>;
	.reg .b64 	%rd<9>;

	ld.param.u64 	%rd1, [k_param_0];
"""
"""Signature, registers and first parameter load of the alignment tests' kernel `k`."""

_HEAD = (
    _PROLOGUE
    + """	ld.param.u64 	%rd2, [k_param_1];
	cvta.to.global.u64 	%rd3, %rd1;
	cvta.to.global.u64 	%rd4, %rd2;
	mov.u32 	%r1, %tid.x;
	shl.b32 	%r2, %r1, 2;
	mul.wide.u32 	%rd5, %r2, 4;
	add.s64 	%rd6, %rd3, %rd5;
	add.s64 	%rd7, %rd4, %rd5;
	ld.global.f32 	%f1, [%rd6];
	ld.global.f32 	%f2, [%rd6+4];
	ld.global.f32 	%f3, [%rd6+8];
	ld.global.f32 	%f4, [%rd6+12];
	st.global.f32 	[%rd7], %f1;
	st.global.f32 	[%rd7+4], %f2;
	st.global.f32 	[%rd7+8], %f3;
	st.global.f32 	[%rd7+12], %f4;
	ret;
}
"""
)


def _ctx(align0: int, align1: int = 256) -> TransformContext:
    return TransformContext.make(entry="k", alignment={"k_param_0": align0, "k_param_1": align1})


def test_v4_needs_16_byte_alignment() -> None:
    vec_ld = CATALOGUE[ACTION_IDS["vec_ld"]]
    m = parse(_HEAD)
    ok = vec_ld.run(m, _ctx(16))
    assert ok.changed and "ld.global.v4.f32 \t{%f1, %f2, %f3, %f4}, [%rd6];" in ok.ptx


def test_8_mod_16_base_refuses_v4() -> None:
    """A base known only to be 8-aligned (e.g. 8 mod 16) gets v2 pairs, never v4."""
    m = parse(_HEAD)
    res = CATALOGUE[ACTION_IDS["vec_ld"]].run(m, _ctx(8))
    assert res.changed and ".v4" not in res.ptx
    assert "ld.global.v2.f32 \t{%f1, %f2}, [%rd6];" in res.ptx
    assert "ld.global.v2.f32 \t{%f3, %f4}, [%rd6+8];" in res.ptx
    # explicitly 8 mod 16: base + 8 from a 16-aligned pointer
    shifted = _HEAD.replace(
        "add.s64 \t%rd6, %rd3, %rd5;", "add.s64 \t%rd8, %rd3, %rd5;\n\tadd.s64 \t%rd6, %rd8, 8;"
    )
    res = CATALOGUE[ACTION_IDS["vec_ld"]].run(parse(shifted), _ctx(16))
    assert res.changed and ".v4" not in res.ptx and ".v2" in res.ptx
    pa = analyze(parse(shifted), parse(shifted).entry("k"), _ctx(16))
    first = next(
        i
        for i in parse(shifted).entry("k").instructions()
        if i.opcode == "ld" and i.space == ".global"
    )
    assert pa.alignment(first) == 8


def test_unknown_alignment_refuses_everything() -> None:
    from chronos.transforms.vectorize import VEC_ST

    m = parse(_HEAD)
    for t in (CATALOGUE[ACTION_IDS["vec_ld"]], VEC_ST):
        res = t.run(m, TransformContext.make(entry="k"))
        # only the natural 4-byte alignment of f32 is known: no vector access is provable
        assert not res.changed and "alignment 1 (spec.alignment)" in res.reason, t.name
    # stores to a 4-aligned output only: vec_st refuses while vec_ld (16-aligned input) works
    assert not VEC_ST.run(m, _ctx(16, 4)).changed
    assert CATALOGUE[ACTION_IDS["vec_ld"]].run(m, _ctx(16, 4)).changed


def test_loop_increment_keeps_alignment() -> None:
    loop = (
        _PROLOGUE
        + """	ld.param.u32 	%r3, [k_param_2];
	cvta.to.global.u64 	%rd3, %rd1;
	mov.u32 	%r1, 0;
	mov.f32 	%f5, 0f00000000;

$L__BB0_1:
	ld.global.f32 	%f1, [%rd3];
	ld.global.f32 	%f2, [%rd3+4];
	ld.global.f32 	%f3, [%rd3+8];
	ld.global.f32 	%f4, [%rd3+12];
	add.f32 	%f5, %f5, %f1;
	add.f32 	%f5, %f5, %f2;
	add.f32 	%f5, %f5, %f3;
	add.f32 	%f5, %f5, %f4;
	add.s64 	%rd3, %rd3, STEP;
	add.s32 	%r1, %r1, 1;
	setp.lt.s32 	%p1, %r1, %r3;
	@%p1 bra 	$L__BB0_1;
	ret;
}
"""
    )
    vec_ld = CATALOGUE[ACTION_IDS["vec_ld"]]
    for step, want in ((64, ".v4"), (16, ".v4"), (8, ".v2"), (4, None)):
        res = vec_ld.run(parse(loop.replace("STEP", str(step))), _ctx(256))
        if want is None:
            assert not res.changed, step
        else:
            assert res.changed and want in res.ptx, step
            if want == ".v2":
                assert ".v4" not in res.ptx


def test_scalar_divisibility_feeds_alignment() -> None:
    """offset = tid.x * n * 4 with n a multiple of 4 (the spec's divisibility) is 16-aligned."""
    text = _HEAD.replace(
        "shl.b32 \t%r2, %r1, 2;", "ld.param.u32 \t%r3, [k_param_2];\n\tmul.lo.s32 \t%r2, %r1, %r3;"
    )
    m = parse(text)
    base = TransformContext.make(entry="k", alignment={"k_param_0": 256})
    assert not CATALOGUE[ACTION_IDS["vec_ld"]].run(m, base).changed
    ctx = TransformContext.make(
        entry="k", alignment={"k_param_0": 256}, divisibility={"k_param_2": 4}
    )
    res = CATALOGUE[ACTION_IDS["vec_ld"]].run(m, ctx)
    assert res.changed and ".v4" in res.ptx


def test_cong_lattice() -> None:
    a = Cong.of(4, 0)  # 0 mod 16
    assert a.add(Cong.const(8, 64), 64).alignment() == 8
    assert a.join(Cong.of(4, 8)).alignment() == 8
    assert a.mul(Cong.const(4, 64), 64).alignment() == 64
    assert Cong.of(3, 0).shl(2, 32).alignment() == 32


def test_aliasing_store_blocks_load_merge() -> None:
    """Loads may not move above a store that may write the same bytes."""
    ctx = TransformContext.make(entry="k", alignment={"k_param_0": 256, "k_param_1": 256})
    vec_ld = CATALOGUE[ACTION_IDS["vec_ld"]]
    for store, merged in (
        ("st.global.f32 \t[%rd6+4], %f1;", False),  # overlaps %f2's load
        ("st.global.f32 \t[%rd6+32], %f1;", True),  # same base, disjoint bytes
        ("st.global.f32 \t[%rd7], %f1;", True),  # another buffer (distinct parameters)
    ):
        text = _HEAD.replace(
            "ld.global.f32 \t%f2, [%rd6+4];", store + "\n\tld.global.f32 \t%f2, [%rd6+4];"
        )
        res = vec_ld.run(parse(text), ctx)
        assert ("{%f1, %f2, %f3, %f4}" in res.ptx) == merged, store
        if not merged:
            assert "{%f3, %f4}" in res.ptx


def test_reorder_cp_moves_latch_barrier_only_for_read_only_loads(spec: kernels.KernelSpec) -> None:
    ptx = spec.ptx()
    out = apply_action(spec, ptx, "reorder_cp").ptx
    lines = [ln.strip() for ln in out.splitlines()]
    head = lines.index("$L__BB0_3:")
    first_store = next(i for i in range(head, len(lines)) if lines[i].startswith("st.shared"))
    window = lines[head:first_store]
    assert lines[first_store - 1] == "bar.sync \t0;"
    n_loads = sum(ln.strip().startswith("ld.global") for ln in ptx.splitlines())
    assert sum(ln.startswith("ld.global") for ln in window) == n_loads
    assert out.count("bar.sync") == ptx.count("bar.sync")
    # without the read-only contract the loads stay below the latch barrier
    ctx = TransformContext.make(entry=spec.entry, alignment=spec.alignment, block=(8, 8, 1))
    res = CATALOGUE[ACTION_IDS["reorder_cp"]].run(parse(ptx), ctx)
    assert res.changed
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    head = lines.index("$L__BB0_3:")
    nxt = lines.index("$L__BB0_4:")
    assert sum(ln == "bar.sync \t0;" for ln in lines[head:nxt]) == 1  # only the original one


def test_launch_bounds_hold_for_every_problem_of_the_spec() -> None:
    """Issue 13, item 6: `.reqntid` of one problem's block would make the GPU refuse the
    other problem's launch; with differing blocks the LAUNCH group does not apply."""
    import dataclasses

    base = kernels.load("gemm_tile_4_6_8")
    assert apply_action(base, base.ptx(), "reqntid").changed  # one block shape: applies
    small = base.problem("small")
    wide = (small.block[0] * 2, small.block[1], small.block[2])
    problems = {**base.problems, "small": dataclasses.replace(small, block=wide)}
    mixed = dataclasses.replace(base, id="test_mixed_blocks", problems=problems)
    for name in ("reqntid", "occupancy_75"):
        res = apply_action(mixed, mixed.ptx(), name)
        assert not res.changed and "no one shape holds for all" in res.reason, name
        assert not action_mask(mixed, mixed.ptx(), ())[ACTION_IDS[name]]


# --- forms of kernels we did not write (issue 15) ---------------------------------------------


def _run(name: str, kernel_id: str, **ctx_changes: object) -> TransformResult:
    spec = kernels.load(kernel_id)
    ctx = transform_context(spec)
    if ctx_changes:
        ctx = dataclasses.replace(ctx, **ctx_changes)
    return CATALOGUE[ACTION_IDS[name]].run(parse(spec.ptx()), ctx)


def test_fast_math_forms() -> None:
    from chronos.ptx import parse_instruction
    from chronos.transforms.fastmath import fast_form

    def f(text: str) -> str | None:
        new = fast_form(parse_instruction(text))
        return None if new is None else new.render()

    assert f("add.f32 %f1, %f2, %f3;") == "add.ftz.f32 \t%f1, %f2, %f3;"
    assert f("fma.rn.f32 %f1, %f2, %f3, %f4;") == "fma.rn.ftz.f32 \t%f1, %f2, %f3, %f4;"
    assert f("div.rn.f32 %f1, %f2, %f3;") == "div.approx.ftz.f32 \t%f1, %f2, %f3;"
    assert f("div.full.f32 %f1, %f2, %f3;") == "div.approx.ftz.f32 \t%f1, %f2, %f3;"
    assert f("rcp.rn.f32 %f1, %f2;") == "rcp.approx.ftz.f32 \t%f1, %f2;"
    assert f("ex2.approx.f32 %f1, %f2;") == "ex2.approx.ftz.f32 \t%f1, %f2;"
    assert f("setp.gt.f32 %p1, %f2, %f3;") == "setp.gt.ftz.f32 \t%p1, %f2, %f3;"
    assert f("max.NaN.f32 %f1, %f2, %f3;") == "max.ftz.NaN.f32 \t%f1, %f2, %f3;"
    assert f("ex2.approx.ftz.f32 %f1, %f2;") is None  # already fast
    assert f("div.rz.f32 %f1, %f2, %f3;") is None  # directed rounding stays IEEE
    assert f("add.f64 %fd1, %fd2, %fd3;") is None and f("add.s32 %r1, %r2, %r3;") is None


def test_rounding_transforms_masked_on_a_bit_exact_spec() -> None:
    """With tolerance 0 (transpose's contract) fast_math and split_acc's float sums are
    refused, saying why; split_acc still splits the exact max chain (min/max and integer sums
    are associative, bit for bit)."""
    res = _run("fast_math", "softmax_block_f32_b128_i4", tolerance=(0.0, 0.0))
    assert not res.changed and "spec.tolerance is 0" in res.reason
    assert _run("fast_math", "softmax_block_f32_b128_i4").changed
    res = _run("split_acc", "reduce_rows_f32_b128_i4_shfl", tolerance=(0.0, 0.0))
    assert not res.changed and "spec.tolerance is 0" in res.reason and "float sum" in res.reason

    def split(ptx: str, op: str) -> bool:  # a link of op moved to the second accumulator
        return any(ln.strip().startswith(op) and "%chr_acc" in ln for ln in ptx.splitlines())

    res = _run("split_acc", "softmax_block_f32_b128_i4", tolerance=(0.0, 0.0))
    assert res.changed and split(res.ptx, "max.f32") and not split(res.ptx, "add.f32")
    assert split(_run("split_acc", "softmax_block_f32_b128_i4").ptx, "add.f32")


def test_split_acc_on_a_grid_stride_reduction() -> None:
    res = _run("split_acc", "reduce_rows_f32_b128_i4_shfl")
    assert res.changed
    fn = parse(res.ptx).entry("reduce_rows_f32_b128_i4_shfl")
    first = fn.instructions()[0].render()
    assert first.startswith("mov.f32") and first.endswith("0f80000000;")  # -0.0: exact identity
    body = res.ptx
    chains = body.count("add.f32 \t%chr_acc0, %chr_acc0,")
    folds = [ln for ln in body.splitlines() if ln.strip().endswith(", %chr_acc0;")]
    assert chains >= 2 and folds  # half the chain moved, folded back at every loop exit
    # a kernel without float accumulation has nothing to split, whatever its tolerance
    assert not _run("split_acc", "transpose_f32_t32x8", tolerance=(1e-5, 1e-5)).changed


def test_reorder_cp_predicates_bounds_checked_loads() -> None:
    """nvcc's `@%p bra SKIP; ld; ... SKIP:` blocks become predicated loads in one block."""
    spec = kernels.load("transpose_f32_t32x8")
    base = parse(spec.ptx()).entry(spec.entry)
    res = _run("reorder_cp", "transpose_f32_t32x8")
    assert res.changed
    fn = parse(res.ptx).entry(spec.entry)
    lds = [i for i in fn.instructions() if i.opcode == "ld" and i.space == ".global"]
    assert lds and all(i.guard is not None and i.guard.startswith("@!") for i in lds)
    assert len(fn.basic_blocks()) < len(base.basic_blocks())
    # every guarded block that held a load is gone; the branch count dropped by as many
    n_bra = sum(i.opcode == "bra" for i in base.instructions())
    assert sum(i.opcode == "bra" for i in fn.instructions()) == n_bra - len(lds)


def test_cp_async_on_bounds_checked_copies() -> None:
    res = _run("cp_async", "transpose_f32_t32x8")
    assert res.changed
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    cps = [ln for ln in lines if "cp.async.ca.shared.global" in ln]
    assert len(cps) == 4 and all(ln.startswith("@!%p") and ln.endswith(", 4;") for ln in cps)
    assert "ld.global.f32" not in res.ptx.split("bar.sync")[0]
    i = lines.index("cp.async.wait_all;")
    assert lines[i + 1].startswith("bar.sync")
    f16 = _run("cp_async", "transpose_f16_t16x4")
    assert not f16.changed and "cp.async copies 4, 8 or 16" in f16.reason


def test_prefetch_of_predicated_loads_keeps_their_predicate() -> None:
    res = _run("prefetch_l2", "triton_add_fp32_b1024_w4")
    assert res.changed
    pf = [ln.strip() for ln in res.ptx.splitlines() if "prefetch.global.L2" in ln]
    assert pf and all(ln.startswith("@%p") for ln in pf)


def test_masked_actions_say_which_precondition_failed() -> None:
    spec = kernels.load(KERNEL)
    narrow = {k: 4 for k in spec.alignment}
    ctx = TransformContext.make(entry=spec.entry, alignment=narrow, divisibility=spec.divisibility)
    from chronos.transforms.vectorize import VEC_ST

    reason = VEC_ST.run(parse(spec.ptx()), ctx).reason
    assert f"{KERNEL}_param_2 alignment 4 (spec.alignment)" in reason and "< 8" in reason
    assert "spec.read_only is empty" in _run("ld_nc", KERNEL, read_only=frozenset()).reason
    assert "atomics" in _run("st_cs", "reduce_rows_f32_b128_i4_shfl").reason
    assert "already has .reqntid" in _run("reqntid", "triton_add_fp32_b1024_w4").reason
    assert "coalesced" in _run("vec_ld", "reduce_rows_f32_b128_i4_shfl").reason


def test_info_lists_every_action_with_its_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    from chronos.transforms.__main__ import main

    assert main(["info", "transpose_f16_t16x4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# transpose_f16_t16x4 (transpose)") and len(out) == 21
    assert any("cp_async" in ln and "masked" in ln and "4, 8 or 16" in ln for ln in out)


def test_cp_async_zero_fill_through_a_zero_register() -> None:
    """matvec_colsmem stages `xs[t] = j < N ? x[j] : 0.0f` with nvcc's hoisted zero register
    (`mov.f32 %f14, 0f00000000; ... mov.f32 %f35, %f14`): a zero-fill cp.async. A register
    written anywhere else as well is not a zero, and the copy stays masked."""
    from chronos.transforms.async_copy import zero_registers

    res = _run("cp_async", "matvec_colsmem_f32_128_1")
    assert res.changed, res.reason
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    assert "cp.async.ca.shared.global \t[%r3], [%rd17], 4, %chr_cpsz;" in lines
    assert any(ln.startswith("selp.b32 \t%chr_cpsz, 0, 4, %p") for ln in lines)
    assert lines[lines.index("cp.async.wait_all;") + 1].startswith("bar.sync")
    spec = kernels.load("matvec_colsmem_f32_128_1")
    fn = parse(spec.ptx()).entry(spec.entry)
    assert "%f14" in zero_registers(fn)
    # %f14 also written with a non-zero value: no longer provably zero, nothing applies
    two = spec.ptx().replace(
        "mov.f32 \t%f39, %f14;", "mov.f32 \t%f39, %f14;\n\tmov.f32 \t%f14, 0f3F800000;", 1
    )
    assert two != spec.ptx()
    assert "%f14" not in zero_registers(parse(two).entry(spec.entry))
    ctx = transform_context(spec)
    assert not CATALOGUE[ACTION_IDS["cp_async"]].run(parse(two), ctx).changed


@pytest.mark.parametrize(
    "kernel_id, loads, stores",
    [
        ("elementwise_saxpy_contig_256_4", "ld.global.v4.f32", "st.global.v4.f32"),
        ("elementwise_saxpy_contig_128_2", "ld.global.v2.f32", "st.global.v2.f32"),
        ("matvec_colblk_f32_32_4", "ld.global.v4.f32", "st.global.v4.f32"),
        ("matvec_colblk_f32_128_2", "ld.global.v4.f32", "st.global.v2.f32"),
    ],
)
def test_vec_on_thread_coarsened_kernels(kernel_id: str, loads: str, stores: str) -> None:
    """Several contiguous elements per thread, base a multiple of ITEMS elements off a
    256-byte aligned buffer: the full run's stores (and elementwise's loads) become one vector
    access, matvec's x[j..j+3] of nvcc's 4-way unrolled j loop (j from 0 in steps of 4) too;
    the guarded element-by-element tail keeps its scalar stores."""
    ld, st_ = _run("vec_ld", kernel_id), _run("vec_st", kernel_id)
    assert ld.changed and st_.changed, (ld.reason, st_.reason)
    assert loads in ld.ptx and stores in st_.ptx
    assert "st.global.f32" in st_.ptx  # the ragged tail


def test_cp_async_in_a_staging_loop_waits_at_the_block_end() -> None:
    """stencil2d_shared stages its halo in a loop whose barrier follows the loop: each
    zero-fill copy (`tile[..] = in_bounds ? in[..] : 0.0f`) waits before its block's branch,
    (or before the label it falls through to), so no copy is in flight when the thread
    leaves the block; the 4x-unrolled one-block loop, whose shared address steps by a
    constant wider than its copies, waits after its back branch instead (see
    tests/test_transforms_cp_async.py)."""
    res = _run("cp_async", "stencil2d_shared_5pt_f32_32x8_1")
    assert res.changed, res.reason
    lines = [ln.strip() for ln in res.ptx.splitlines() if ln.strip()]
    cps = [i for i, ln in enumerate(lines) if ln.startswith("cp.async.ca.shared.global")]
    assert cps and all(lines[i].endswith(", 4, %chr_cpsz;") for i in cps)
    for i in cps:  # the block ends at its branch, a barrier or the next label
        j = next(
            j
            for j in range(i + 1, len(lines))
            if "bra" in lines[j] or "bar." in lines[j] or lines[j].endswith(":")
        )
        if lines[j].startswith("@%p42 bra"):  # the unrolled loop: waits on its exit path
            assert lines[j + 1] == "cp.async.wait_all;", lines[i : j + 2]
            continue
        assert lines[j - 1] == "cp.async.wait_all;", lines[i : j + 1]
    f16 = _run("cp_async", "stencil2d_shared_5pt_f16_32x8_2")
    assert not f16.changed and "computed values" in f16.reason
