"""cp_async on global -> shared staging as people write it (issue 31, item 2).

The kernels: staging.cu's four forms (zero-filled reduction inputs, a block-stride row loop,
a 2-D tile with a halo, a tile loop that stages a slice per iteration), the one everyday
form that stages (the padded transpose) and outside.cu's conv1d (a tile with halo, zero
filled) and dsum. Each transformed kernel assembles for sm_80 and sm_90, is bit-exact in the
emulator on two problem sizes (one not a multiple of the block or tile) and two seeds, and
every copy has waited before a shared access, a barrier or the end of its block. Where
cp_async does not apply, its reason names the unmet condition on one line.
"""

from __future__ import annotations

import pytest

import kernels
from chronos.assemble import assemble
from chronos.emulate import verify
from chronos.ptx import parse
from chronos.transforms import apply_action
from chronos.transforms.semantics import check
from tests.helpers import outside_kernels, registry, staging_kernels
from tests.helpers.held_out import check_every_legal_transform

APPLIES = [
    "outside_stage_block_sum",
    "outside_stage_row_center",
    "outside_stage_row_mirror",
    "outside_stage_stencil5",
    "outside_stage_matvec",
    "outside_transpose_padded",
    "outside_dsum",
    "outside_conv1d",
]
# their references round differently (conv1d's FMA order): held to the untransformed kernel
NOT_BIT_EXACT_REFERENCE = {"outside_conv1d"}


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with registry.registered(*outside_kernels.SPECS, *staging_kernels.STAGING):
        yield


def _cp(kernel_id: str, ptx: str | None = None):
    spec = kernels.load(kernel_id)
    return spec, apply_action(spec, spec.ptx() if ptx is None else ptx, "cp_async")


def _is_copy(ins) -> bool:
    return ins.opcode == "cp" and ins.modifiers[:2] in ((".async", ".ca"), (".async", ".cg"))


def _is_wait(ins) -> bool:
    return ins.opcode == "cp" and (
        ins.modifiers[:2] == (".async", ".wait_all")
        or (ins.modifiers[:2] == (".async", ".wait_group") and ins.operands == ("0",))
    )


def _observes(ins) -> bool:
    return ins.space == ".shared" or ins.opcode in ("bar", "barrier", "bra", "ret", "exit")


def unwaited_shared_use(ptx: str, entry: str) -> str | None:
    """The first instruction reached with a cp.async copy in flight that could observe the
    copy's destination or leave its block (a shared access, a barrier, a branch or exit,
    the block's end); None when every copy waits first. A one-block loop may keep its
    copies in flight across its back branch when nothing in it before its first copy could
    observe them and its exit path starts with the wait."""
    fn = parse(ptx).entry(entry)
    blocks = fn.basic_blocks()
    for n, block in enumerate(blocks):
        pending = None
        for ins in block.instructions:
            if _is_wait(ins):
                pending = None
            elif _is_copy(ins):
                pending = ins
            elif pending is not None and _observes(ins):
                last = block.instructions[-1]
                loops = ins is last and last.opcode == "bra" and last.guard is not None
                loops = loops and block.label is not None and last.operands[-1] == block.label
                if not loops:
                    return f"{ins.render()} after {pending.render()}"
                for head in block.instructions:  # the next iteration, up to its first copy
                    if _is_copy(head) or _is_wait(head):
                        break
                    if _observes(head):
                        return f"{head.render()} in the next iteration of {block.label}"
                if not blocks[n + 1].instructions or not _is_wait(blocks[n + 1].instructions[0]):
                    return f"the exit of {block.label} does not start with a wait"
                pending = None
        if pending is not None:
            return f"block end after {pending.render()}"
    return None


@pytest.mark.parametrize("kernel_id", APPLIES)
def test_cp_async_applies_assembles_and_is_bit_exact(kernel_id: str) -> None:
    spec, res = _cp(kernel_id)
    assert res.changed, res.reason
    assert "cp.async.ca.shared.global" in res.ptx and "cp.async.wait_all;" in res.ptx
    for arch in ("sm_80", "sm_90"):
        assert assemble(res.ptx, arch=arch).sass_instructions[spec.entry] > 0  # raises if rejected
    assert unwaited_shared_use(res.ptx, spec.entry) is None
    for size in ("small", "check"):
        for seed in (0, 1):
            if kernel_id in NOT_BIT_EXACT_REFERENCE:
                err = check(spec, res.ptx, True, size=size, seed=seed)
                assert err is None, f"{kernel_id} {size} seed {seed}: {err}"
                continue
            v = verify(spec, res.ptx, exact=True, seed=seed, size=size)
            assert v.ok and v.bit_exact, f"{kernel_id} {size} seed {seed}: {v.kind}: {v.error}"


def test_the_wait_check_catches_a_missing_wait() -> None:
    """Without its wait the transformed row loop reads a copy in flight (the emulator writes
    shared memory at the wait, so it then fails too)."""
    spec, res = _cp("outside_stage_row_center")
    bad = res.ptx.replace("cp.async.wait_all;", "", 1)
    assert unwaited_shared_use(bad, spec.entry) is not None
    assert not verify(spec, bad, exact=True, seed=0, size="small").ok


def test_the_zero_fill_form_uses_src_size() -> None:
    """`s[t] = i < n ? in[i] : 0.0f`: one unpredicated cp.async whose src-size is 0 where
    the guard fails (zero fill), waited on before the barrier."""
    _, res = _cp("outside_stage_block_sum")
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    cp = [ln for ln in lines if ln.startswith("cp.async.ca.shared.global")]
    assert cp == ["cp.async.ca.shared.global \t[%r5], [%rd5], 4, %chr_cpsz;"]
    assert any(ln.startswith("selp.b32 \t%chr_cpsz, 0, 4, %p1") for ln in lines)
    assert lines[lines.index("cp.async.wait_all;") + 1] == "bar.sync \t0;"
    assert "ld.global" not in res.ptx.split("bar.sync")[0].split(".entry stage_block_sum")[1]


def test_in_a_tile_loop_the_wait_is_inside_the_loop() -> None:
    """stage_matvec stages x[k0 + t] each iteration of its k0 loop: the wait sits between
    the copy and the iteration's first barrier, inside the loop."""
    spec, res = _cp("outside_stage_matvec")
    fn = parse(res.ptx).entry(spec.entry)
    blocks = fn.basic_blocks()
    (i,) = [b for b, blk in enumerate(blocks) if any(x.opcode == "cp" for x in blk.instructions)]
    ops = [x.render().split()[0] for x in blocks[i].instructions]
    k = ops.index("cp.async.ca.shared.global")
    assert ops[k + 1 : k + 3] == ["cp.async.wait_all;", "bar.sync"]

    def reaches(a: int, b: int) -> bool:
        seen, todo = set(), [a]
        while todo:
            x = todo.pop()
            for y in blocks[x].successors:
                if y == b:
                    return True
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
        return False

    assert reaches(i, i), "the copy's block is not in a loop"


REJECTED = {
    "outside_gs_saxpy": "no st.shared",
    "outside_haxpy_half": "no st.shared",
    "outside_stencil5": "no st.shared",
    "outside_block_sum": "hold computed values",
    "outside_row_softmax": "hold computed values",
    "outside_histogram_smem": "hold computed values",
}


@pytest.mark.parametrize("kernel_id", sorted(REJECTED))
def test_everyday_forms_without_a_staging_copy_say_why(kernel_id: str) -> None:
    _, res = _cp(kernel_id)
    assert not res.changed
    assert REJECTED[kernel_id] in res.reason and "\n" not in res.reason, res.reason


def _row_center_with(after_store: str) -> str:
    ptx = kernels.load("outside_stage_row_center").ptx()
    store = "st.shared.f32 \t[%r26], %f8;"
    assert ptx.count(store) == 1
    return ptx.replace(store, f"{store}\n\t{after_store}")


@pytest.mark.parametrize(
    "after_store, condition",
    [
        ("add.f32 \t%f9, %f8, %f8;", "has a use besides one later st.shared"),
        ("st.global.u32 \t[%rd11+4096], %r36;", "a global store (`st.global.u32"),
        ("ld.shared.f32 \t%f9, [%r25];", "a shared-memory access (`ld.shared.f32"),
        ("membar.gl;", "a fence (`membar.gl;`)"),
    ],
)
def test_a_refused_copy_names_the_unmet_condition(after_store: str, condition: str) -> None:
    _, res = _cp("outside_stage_row_center", _row_center_with(after_store))
    assert not res.changed
    assert condition in res.reason and "\n" not in res.reason, res.reason


def test_a_nonzero_else_branch_is_not_a_zero_fill() -> None:
    """`s[t] = i < n ? in[i] : 1.0f` stores 1 where the guard fails: src-size 0 would store 0,
    so the copy is refused, and the reason says so."""
    ptx = kernels.load("outside_stage_block_sum").ptx()
    zero = "mov.f32 \t%f8, 0f00000000;"
    assert ptx.count(zero) == 1
    _, res = _cp("outside_stage_block_sum", ptx.replace(zero, "mov.f32 \t%f8, 0f3F800000;"))
    assert not res.changed
    assert "not provably 0" in res.reason and "\n" not in res.reason, res.reason


def test_two_byte_copies_say_cp_async_needs_four() -> None:
    _, res = _cp("transpose_f16_t16x4")
    assert not res.changed and "moves 2 bytes; cp.async copies 4, 8 or 16" in res.reason


def test_copies_that_may_overlap_are_not_in_flight_together() -> None:
    """Two cp.async in flight land in no particular order, so a copy whose shared bytes may
    be an earlier in-flight copy's waits for it first: transpose_f32_t16x8's two rows go to
    `[%r20]` and `[%r27+544]`, two registers the analysis cannot relate. Copies off one base
    register at disjoint offsets (stage_stencil5's unrolled halo loop) stay in flight
    together."""
    spec, res = _cp("transpose_f32_t16x8")
    assert res.changed, res.reason
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    (second,) = [i for i, ln in enumerate(lines) if "cp.async.ca.shared.global \t[%r27+544]" in ln]
    assert lines[second - 1] == "cp.async.wait_all;"
    assert unwaited_shared_use(res.ptx, spec.entry) is None
    for size in ("small", "check"):
        v = verify(spec, res.ptx, exact=True, seed=0, size=size)
        assert v.ok and v.bit_exact, f"{size}: {v.kind}: {v.error}"
    spec, res = _cp("outside_stage_stencil5")
    fn = parse(res.ptx).entry(spec.entry)
    for block in fn.basic_blocks():
        ops = [x.render() for x in block.instructions]
        cps = [i for i, op in enumerate(ops) if op.startswith("cp.async.ca")]
        if len(cps) > 1:  # no wait between them (one at the block's end, or past its loop)
            assert "cp.async.wait_all;" not in ops[cps[0] : cps[-1]], ops


def test_an_unrolled_zero_fill_loop_keeps_its_copies_in_flight_together() -> None:
    """stage_row_mirror's copy loop, unrolled 4x by nvcc: `mov %f33, 0; mov %f32, %f33;
    @%p ld %f32; st [%r73], %f32; @%q ld %f33, [%rd35+512]; st [%r73+512], %f33` (the zero
    reaches the first copy through a second register, which the second copy loads), and
    `add.s64 %rd35, %rd35, 2048` before the last store: that copy goes at its load. All four
    are zero-fill copies in flight together, waited for on the loop's exit path; the loop runs
    on both sizes (a wrong last copy fails the check)."""
    spec, res = _cp("outside_stage_row_mirror")
    fn = parse(res.ptx).entry(spec.entry)
    (body,) = [
        b
        for b in fn.basic_blocks()
        if sum(x.render().startswith("cp.async.ca") for x in b.instructions) == 4
    ]
    ops = [x.render() for x in body.instructions]
    cps = [op for op in ops if op.startswith("cp.async.ca")]
    assert all(op.endswith(", 4, %chr_cpsz;") for op in cps)
    assert "cp.async.wait_all;" not in ops  # it waits on the loop's exit path
    assert not any(op.startswith(("ld.global", "st.shared")) for op in ops)
    last = next(op for op in cps if "+1536]" in op)
    assert ops.index(last) < next(i for i, op in enumerate(ops) if op.startswith("add.s64"))
    wrong = res.ptx.replace(last, last.replace("+1536]", "+1532]"))
    assert not verify(spec, wrong, exact=True, seed=0, size="check").ok


def test_a_staging_loop_keeps_its_copies_in_flight_until_it_exits() -> None:
    """stage_row_mirror's unrolled copy loop steps its shared address by 2048 bytes
    (`add.s32 %r18, %r73, 2048; ... mov.u32 %r73, %r18`) and its four copies span 1540: no
    two copies of different iterations share a byte, nothing else in the loop touches shared
    memory, so the wait moves past the back branch onto the exit path and the copies of all
    iterations are in flight together (each thread runs the loop four times on both sizes).
    With a 1024-byte step they could overlap, and the wait stays in the loop."""
    spec, res = _cp("outside_stage_row_mirror")
    lines = [ln.strip() for ln in res.ptx.splitlines() if ln.strip() and ".loc" not in ln]
    back = [i for i, ln in enumerate(lines) if ln == "@%p10 bra \t$L__BB2_8;"]
    assert len(back) == 1 and lines[back[0] + 1] == "cp.async.wait_all;"
    assert lines[back[0] - 1] != "cp.async.wait_all;"
    assert unwaited_shared_use(res.ptx, spec.entry) is None
    ptx = spec.ptx()
    step = "add.s32 \t%r18, %r73, 2048;"
    assert ptx.count(step) == 1
    _, narrow = _cp("outside_stage_row_mirror", ptx.replace(step, step.replace("2048", "1024")))
    lines = [ln.strip() for ln in narrow.ptx.splitlines() if ln.strip() and ".loc" not in ln]
    back = [i for i, ln in enumerate(lines) if ln == "@%p10 bra \t$L__BB2_8;"]
    assert lines[back[0] - 1] == "cp.async.wait_all;"
    assert lines[back[0] + 1] != "cp.async.wait_all;"


def test_a_block_stride_staging_loop_waits_after_it() -> None:
    """stage_row_center's `for (c = tid; c < cols; c += blockDim.x) row[c] = src[c]`: the
    shared address is `row + (c << 2)` and `c` steps by `%r2 = %ntid.x` (at least 1), so
    copies of different iterations are at least 4 bytes apart and the wait goes after the
    loop. Stepped by `%tid.x` instead (which may be 0) the copies may collide, and the wait
    stays in the loop."""
    spec, res = _cp("outside_stage_row_center")
    back = "@%p2 bra \t$L__BB1_2;"

    def around(ptx: str) -> tuple[str, str]:
        lines = [ln.strip() for ln in ptx.splitlines() if ln.strip() and ".loc" not in ln]
        i = lines.index(back)
        return lines[i - 1], lines[i + 1]

    assert around(res.ptx)[1] == "cp.async.wait_all;"
    assert unwaited_shared_use(res.ptx, spec.entry) is None
    ntid = "mov.u32 \t%r2, %ntid.x;"
    assert spec.ptx().count(ntid) == 1
    _, tid = _cp("outside_stage_row_center", spec.ptx().replace(ntid, "mov.u32 \t%r2, %tid.x;"))
    assert around(tid.ptx) == ("cp.async.wait_all;", "$L__BB1_3:")


def test_the_wait_check_catches_a_read_in_the_next_iteration() -> None:
    """A shared read at the top of a loop whose copies are in flight across the back
    branch is caught by the checker."""
    spec, res = _cp("outside_stage_row_mirror")
    head = "setp.ge.s32 \t%p6, %r71, %r42;"
    assert res.ptx.count(head) == 1
    bad = res.ptx.replace(head, f"ld.shared.f32 \t%f33, [%r73];\n\t{head}")
    assert "next iteration" in (unwaited_shared_use(bad, spec.entry) or "")


@pytest.mark.parametrize("kernel_id", [s.id for s in staging_kernels.STAGING])
def test_every_legal_transform_keeps_the_staging_kernels(kernel_id: str) -> None:
    """The staging kernels are held-out kernels for every transform, as outside.cu's are."""
    assert check_every_legal_transform(kernels.load(kernel_id)) >= 8
