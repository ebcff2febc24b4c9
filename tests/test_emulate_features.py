"""Emulator features on small hand-written PTX kernels: memory, faults, control flow, warps."""

from __future__ import annotations

import numpy as np
import pytest

from chronos.emulate import (
    MemoryFault,
    StepLimitExceeded,
    UnsupportedInstruction,
    run_kernel,
)


def kernel(body: str, params: str = "", regs: str = "", prelude: str = "") -> str:
    """A one-entry module `k` with params k_p0.. (u64 pointers unless given)."""
    params = params or ".param .u64 k_p0, .param .u64 k_p1, .param .u32 k_p2"
    return f""".version 8.0
.target sm_80
.address_size 64
{prelude}
.visible .entry k({params})
{{
\t.reg .pred %p<8>;
\t.reg .b32 %r<32>;
\t.reg .f32 %f<32>;
\t.reg .b64 %rd<32>;
\t.reg .b16 %rs<8>;
{regs}
{body}
}}
"""


COPY_PROLOGUE = """
\tld.param.u64 %rd1, [k_p0];
\tld.param.u64 %rd2, [k_p1];
\tcvta.to.global.u64 %rd1, %rd1;
\tcvta.to.global.u64 %rd2, %rd2;
\tmov.u32 %r1, %tid.x;
\tmov.u32 %r2, %ctaid.x;
\tmov.u32 %r3, %ntid.x;
\tmad.lo.s32 %r4, %r2, %r3, %r1;
"""


def launch(
    ptx: str, inp: np.ndarray, out: np.ndarray, n: int = 0, grid=(1, 1, 1), block=(32, 1, 1), **kw
):
    return run_kernel(
        ptx,
        grid=grid,
        block=block,
        buffers={"inp": inp, "out": out},
        args={"k_p0": "inp", "k_p1": "out", "k_p2": n},
        **kw,
    )


def test_vector_copy_v4_and_cache_hints_are_exact() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 16;
\tadd.s64 %rd4, %rd1, %rd3;
\tadd.s64 %rd5, %rd2, %rd3;
\tprefetch.global.L2 [%rd4];
\tld.global.nc.L1::no_allocate.L2::256B.v4.f32 {%f1, %f2, %f3, %f4}, [%rd4];
\tst.global.cs.v4.f32 [%rd5], {%f4, %f3, %f2, %f1};
\tret;
"""
    )
    inp = np.arange(64 * 4, dtype=np.float32) * 1.5
    res = launch(kernel(body), inp, np.zeros_like(inp), grid=(2, 1, 1))
    assert np.array_equal(res.outputs["out"], inp.reshape(-1, 4)[:, ::-1].ravel())
    assert np.array_equal(res.outputs["inp"], inp)


def test_prefetch_is_traced_inside_buffers_and_never_faults() -> None:
    """A prefetch changes no value and never faults (even far outside every buffer); with a
    trace it records the global sectors it fills, only those inside a buffer."""
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tadd.s64 %rd5, %rd2, %rd3;
\tprefetch.global.L2 [%rd4];
\tprefetch.global.L2 [%rd4+1048576];
\tld.global.f32 %f1, [%rd4];
\tst.global.f32 [%rd5], %f1;
\tret;
"""
    )
    inp = np.arange(32, dtype=np.float32)
    res = launch(kernel(body), inp, np.zeros_like(inp), trace=True)
    assert np.array_equal(res.outputs["out"], inp)
    tr = res.trace
    assert tr is not None
    texts = {op.index: op.text for op in res.program.ops}
    traced = [texts[tr.pcs[step]].split()[0] for step, _ in tr.sectors]
    assert traced == ["prefetch.global.L2", "ld.global.f32", "st.global.f32"]
    assert len(tr.sectors[0][1]) == len(tr.sectors[1][1]) == 4  # 128 bytes: 4 sectors


def test_misaligned_v4_is_a_memory_fault_naming_thread_and_address() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 16;
\tadd.s64 %rd4, %rd1, %rd3;
\tld.global.v4.f32 {%f1, %f2, %f3, %f4}, [%rd4+8];
\tret;
"""
    )
    inp = np.zeros(32 * 4 + 4, np.float32)
    with pytest.raises(MemoryFault) as exc:
        launch(kernel(body), inp, np.zeros(4, np.float32))
    err = exc.value
    assert "misaligned 16-byte" in str(err) and "ld.global.v4.f32" in str(err)
    assert err.thread == 0 and err.address is not None and err.address % 16 == 8
    assert err.line is not None and "line" in str(err)


def test_out_of_bounds_read_faults_instead_of_wrapping() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tld.global.f32 %f1, [%rd4+4];
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.f32 [%rd5], %f1;
\tret;
"""
    )
    with pytest.raises(MemoryFault) as exc:
        launch(kernel(body), np.zeros(32, np.float32), np.zeros(32, np.float32))
    assert "out-of-bounds" in str(exc.value)
    assert exc.value.thread == 31 and exc.value.tid == (31, 0, 0)


def test_store_to_read_only_buffer_faults() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tst.global.f32 [%rd4], %f1;
\tret;
"""
    )
    with pytest.raises(MemoryFault, match="read-only"):
        launch(kernel(body), np.zeros(32, np.float32), np.zeros(32, np.float32), read_only={"inp"})


def test_unsupported_instruction_names_it_and_its_line() -> None:
    body = COPY_PROLOGUE + "\ttex.1d.v4.f32.s32 {%f1, %f2, %f3, %f4}, [tex0, {%r1}];\n\tret;\n"
    ptx = kernel(body)
    line = ptx.splitlines().index("\ttex.1d.v4.f32.s32 {%f1, %f2, %f3, %f4}, [tex0, {%r1}];") + 1
    with pytest.raises(UnsupportedInstruction) as exc:
        launch(ptx, np.zeros(32, np.float32), np.zeros(32, np.float32))
    assert exc.value.line == line and "tex.1d" in str(exc.value)


SHARED_ROUNDTRIP = """
\tmov.u32 %r5, smem;
\tshl.b32 %r6, %r1, 2;
\tadd.s32 %r7, %r5, %r6;
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
{copy}
\tbar.sync 0;
\txor.b32 %r8, %r6, 124;
\tadd.s32 %r9, %r5, %r8;
\tld.shared.f32 %f2, [%r9];
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.f32 [%rd5], %f2;
\tret;
"""


@pytest.mark.parametrize(
    "copy,ok",
    [
        ("\tld.global.f32 %f1, [%rd4];\n\tst.shared.f32 [%r7], %f1;", True),
        (
            "\tcp.async.ca.shared.global [%r7], [%rd4], 4;\n\tcp.async.commit_group;\n"
            "\tcp.async.wait_group 0;",
            True,
        ),
        ("\tcp.async.ca.shared.global [%r7], [%rd4], 4;\n\tcp.async.wait_all;", True),
        ("\tcp.async.ca.shared.global [%r7], [%rd4], 4;\n\tcp.async.commit_group;", False),
        (
            "\tcp.async.ca.shared.global [%r7], [%rd4], 4;\n\tcp.async.commit_group;\n"
            "\tcp.async.wait_group 1;",
            False,
        ),
    ],
)
def test_shared_exchange_and_cp_async_visibility(copy: str, ok: bool) -> None:
    """Data copied by cp.async is visible only after the wait that covers its group."""
    body = COPY_PROLOGUE + SHARED_ROUNDTRIP.format(copy=copy)
    ptx = kernel(body, prelude="")
    ptx = ptx.replace(
        "\t.reg .b16 %rs<8>;", "\t.reg .b16 %rs<8>;\n\t.shared .align 4 .b8 smem[128];"
    )
    inp = np.arange(1, 33, dtype=np.float32)
    res = launch(ptx, inp, np.zeros(32, np.float32))
    expected = inp[np.arange(32) ^ 31]
    assert np.array_equal(res.outputs["out"], expected) == ok
    if not ok:
        # The copies had not landed: the reads saw uninitialized (0xFF-filled) shared memory.
        assert np.isnan(res.outputs["out"]).all()


def test_zero_fill_cp_async_reads_and_traces_only_lanes_with_a_source() -> None:
    """A src-size 0 lane reads nothing, so its address may be anything (Triton passes an
    out-of-bounds one; here it lies below address 0): the copy zero-fills, and the trace
    records only the lanes that read."""
    copy = (
        "\tsetp.lt.u32 %p1, %r1, 16;\n"
        "\tselp.b32 %r10, 4, 0, %p1;\n"
        "\tselp.b64 %rd9, %rd4, -4096, %p1;\n"
        "\tcp.async.ca.shared.global [%r7], [%rd9], 4, %r10;\n"
        "\tcp.async.wait_all;"
    )
    ptx = kernel(COPY_PROLOGUE + SHARED_ROUNDTRIP.format(copy=copy)).replace(
        "\t.reg .b16 %rs<8>;", "\t.reg .b16 %rs<8>;\n\t.shared .align 4 .b8 smem[128];"
    )
    inp = np.arange(1, 33, dtype=np.float32)
    res = launch(ptx, inp, np.zeros(32, np.float32), trace=True)
    src = np.where(np.arange(32) < 16, inp, 0.0)
    assert np.array_equal(res.outputs["out"], src[np.arange(32) ^ 31])
    tr = res.trace
    assert tr is not None
    texts = {op.index: op.text for op in res.program.ops}
    copies = [c for step, c in tr.sectors if texts[tr.pcs[step]].startswith("cp.async")]
    assert len(copies) == 1 and len(copies[0]) == 2  # 16 lanes x 4 bytes: 2 sectors


def test_shared_variables_get_only_their_declared_alignment() -> None:
    body = """
\tmov.u32 %r5, smem;
\tst.shared.v4.f32 [%r5], {%f1, %f2, %f3, %f4};
\tret;
"""
    ptx = kernel(body).replace(
        "\t.reg .b16 %rs<8>;", "\t.reg .b16 %rs<8>;\n\t.shared .align 4 .b8 smem[64];"
    )
    with pytest.raises(MemoryFault, match="misaligned 16-byte"):
        launch(ptx, np.zeros(4, np.float32), np.zeros(4, np.float32))
    aligned = ptx.replace(".shared .align 4", ".shared .align 16")
    launch(aligned, np.zeros(4, np.float32), np.zeros(4, np.float32))


def test_generic_addressing_and_local_memory() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmov.u64 %rd10, depot;
\tcvta.local.u64 %rd11, %rd10;
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tld.f32 %f1, [%rd4];
\tst.f32 [%rd11+8], %f1;
\tst.local.f32 [%rd10+4], %f1;
\tld.local.f32 %f2, [%rd10+8];
\tld.f32 %f3, [%rd11+4];
\tadd.f32 %f4, %f2, %f3;
\tmov.u32 %r5, smem;
\tcvt.u64.u32 %rd12, %r5;
\tcvta.shared.u64 %rd13, %rd12;
\tmul.wide.u32 %rd14, %r1, 4;
\tadd.s64 %rd15, %rd13, %rd14;
\tst.f32 [%rd15], %f4;
\tbar.sync 0;
\tld.shared.f32 %f5, [%r5+4];
\tadd.f32 %f6, %f4, %f5;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.f32 [%rd5], %f6;
\tret;
"""
    )
    ptx = kernel(body).replace(
        "\t.reg .b16 %rs<8>;",
        "\t.reg .b16 %rs<8>;\n\t.local .align 8 .b8 depot[16];\n\t.shared .align 4 .b8 smem[128];",
    )
    inp = np.arange(32, dtype=np.float32)
    res = launch(ptx, inp, np.zeros(32, np.float32))
    assert np.array_equal(res.outputs["out"], 2 * inp + 2 * inp[1])


def test_red_max_u64_on_a_module_global_with_clock64() -> None:
    """The measurement harness's instrumentation: clock deltas reduced into a .global."""
    body = """
\tmov.u64 %rd1, %clock64;
\tmov.u32 %r1, %tid.x;
\tmul.lo.s32 %r2, %r1, %r1;
\tmov.u64 %rd2, %clock64;
\tsub.s64 %rd3, %rd2, %rd1;
\tmov.u32 %r3, %laneid;
\tsetp.ne.s32 %p1, %r3, 0;
\t@%p1 ret;
\tred.global.max.u64 [cycles], %rd3;
\tld.param.u64 %rd4, [k_p1];
\tmov.u64 %rd5, cycles;
\tld.global.u64 %rd6, [%rd5];
\tst.global.u64 [%rd4], %rd6;
\tret;
"""
    ptx = kernel(body, prelude=".visible .global .align 8 .u64 cycles;")
    res = launch(ptx, np.zeros(1, np.uint64), np.zeros(1, np.uint64), block=(64, 1, 1))
    assert res.outputs["out"][0] > 0


def test_runaway_loop_hits_the_step_limit() -> None:
    body = "$L1:\n\tadd.s32 %r1, %r1, 1;\n\tbra.uni $L1;\n"
    with pytest.raises(StepLimitExceeded):
        launch(kernel(body), np.zeros(1, np.float32), np.zeros(1, np.float32), max_steps=1000)


def test_divergent_exit_then_barrier_and_predicated_ret() -> None:
    """Odd threads leave early; the barrier waits only for the threads still running."""
    body = (
        COPY_PROLOGUE
        + """
\tand.b32 %r5, %r1, 1;
\tsetp.eq.s32 %p1, %r5, 1;
\t@%p1 ret;
\tmov.u32 %r6, smem;
\tshl.b32 %r7, %r1, 2;
\tadd.s32 %r8, %r6, %r7;
\tcvt.rn.f32.u32 %f1, %r1;
\tst.shared.f32 [%r8], %f1;
\tbar.sync 0;
\tsetp.lt.u32 %p2, %r1, 40;
\t@!%p2 bra $DONE;
\tld.shared.f32 %f2, [%r8+8];
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.f32 [%rd5], %f2;
$DONE:
\tret;
"""
    )
    ptx = kernel(body).replace(
        "\t.reg .b16 %rs<8>;", "\t.reg .b16 %rs<8>;\n\t.shared .align 4 .b8 smem[512];"
    )
    res = launch(ptx, np.zeros(1, np.float32), np.full(64, -1, np.float32), block=(64, 1, 1))
    out = res.outputs["out"]
    t = np.arange(64)
    expected = np.where((t % 2 == 0) & (t < 40), t + 2, -1).astype(np.float32)
    assert np.array_equal(out, expected)


def test_divergent_loop_trip_counts_reconverge() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmov.u32 %r10, 0;
\tmov.u32 %r11, 0;
$LOOP:
\tsetp.ge.u32 %p1, %r11, %r1;
\t@%p1 bra $END;
\tadd.s32 %r10, %r10, %r11;
\tadd.s32 %r11, %r11, 1;
\tbra.uni $LOOP;
$END:
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.u32 [%rd5], %r10;
\tret;
"""
    )
    res = launch(kernel(body), np.zeros(1, np.uint32), np.zeros(32, np.uint32))
    t = np.arange(32)
    assert np.array_equal(res.outputs["out"], t * (t - 1) // 2)


@pytest.mark.parametrize(
    "mode,expected",
    [
        ("idx", lambda t: (t & ~31) + 3),
        ("up", lambda t: np.where(t % 32 >= 2, t - 2, t)),
        ("down", lambda t: np.where(t % 32 < 31, t + 1, t)),
        ("bfly", lambda t: t ^ 5),
    ],
)
def test_shfl_sync(mode: str, expected) -> None:
    b = {"idx": 3, "up": 2, "down": 1, "bfly": 5}[mode]
    c = 0 if mode == "up" else 31
    body = (
        COPY_PROLOGUE
        + f"""
\tshfl.sync.{mode}.b32 %r5|%p1, %r4, {b}, {c}, -1;
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.u32 [%rd5], %r5;
\tret;
"""
    )
    res = launch(kernel(body), np.zeros(1, np.uint32), np.zeros(64, np.uint32), block=(64, 1, 1))
    assert np.array_equal(res.outputs["out"], expected(np.arange(64)))


def test_atomics_are_sequential_on_conflicting_addresses() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tatom.global.add.u32 %r5, [%rd1], 1;
\tatom.global.inc.u32 %r6, [%rd1+4], 7;
\tatom.global.cas.b32 %r7, [%rd1+8], %r1, 99;
\tmul.wide.u32 %rd3, %r4, 12;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.u32 [%rd5], %r5;
\tst.global.u32 [%rd5+4], %r6;
\tst.global.u32 [%rd5+8], %r7;
\tret;
"""
    )
    res = launch(kernel(body), np.zeros(3, np.uint32), np.zeros(3 * 32, np.uint32))
    out = res.outputs["out"].reshape(32, 3)
    assert sorted(out[:, 0]) == list(range(32))
    assert res.outputs["inp"][0] == 32
    assert sorted(out[:, 1]) == sorted([i % 8 for i in range(32)])
    assert res.outputs["inp"][2] == 99  # thread 0 swapped 0 for 99; nobody else matched
    assert np.array_equal(out[:, 2], np.r_[0, np.full(31, 99)])


def test_pack_unpack_setp_combine_selp_slct() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmov.b64 %rd6, {%r1, %r4};
\tmov.b64 {%r7, %r8}, %rd6;
\tsetp.lt.and.s32 %p1|%p2, %r7, 16, %p3;
\tsetp.gt.or.s32 %p4, %r8, 20, %p1;
\tselp.u32 %r9, 100, 200, %p4;
\tcvt.rn.f32.s32 %f1, %r7;
\tsub.f32 %f2, %f1, 0f41000000;
\tslct.s32.f32 %r10, %r9, 7, %f2;
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd5, %rd2, %rd3;
\tst.global.u32 [%rd5], %r10;
\tret;
"""
    )
    ptx = kernel(body).replace(COPY_PROLOGUE, COPY_PROLOGUE + "\tsetp.eq.s32 %p3, %r1, %r1;\n")
    res = launch(ptx, np.zeros(1, np.uint32), np.zeros(32, np.uint32))
    t = np.arange(32)
    sel = np.where((t > 20) | (t < 16), 100, 200)
    assert np.array_equal(res.outputs["out"], np.where(t >= 8, sel, 7))


def test_half_and_bfloat_conversions_and_saturation() -> None:
    body = (
        COPY_PROLOGUE
        + """
\tmul.wide.u32 %rd3, %r4, 4;
\tadd.s64 %rd4, %rd1, %rd3;
\tld.global.f32 %f1, [%rd4];
\tcvt.rn.f16.f32 %rs1, %f1;
\tcvt.f32.f16 %f2, %rs1;
\tcvt.rn.bf16.f32 %rs2, %f1;
\tcvt.f32.bf16 %f3, %rs2;
\tcvt.sat.f32.f32 %f4, %f1;
\tcvt.rni.sat.u8.f32 %r5, %f1;
\tadd.s64 %rd5, %rd2, %rd3;
\tmul.wide.u32 %rd6, %r4, 16;
\tadd.s64 %rd7, %rd2, %rd6;
\tst.global.v4.f32 [%rd7], {%f2, %f3, %f4, %f4};
\tst.global.u8 [%rd7+12], %r5;
\tret;
"""
    )
    rng = np.random.default_rng(3)
    inp = (rng.standard_normal(32) * 200).astype(np.float32)
    res = launch(kernel(body), inp, np.zeros(32 * 4, np.float32))
    out = res.outputs["out"].reshape(32, 4)
    assert np.array_equal(out[:, 0], inp.astype(np.float16).astype(np.float32))
    bits = inp.view(np.uint32).astype(np.uint64)
    bf = (((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
    assert np.array_equal(out[:, 1], bf)
    assert np.array_equal(out[:, 2], np.clip(inp, 0, 1))
    low = out[:, 3].view(np.uint32) & 0xFF
    assert np.array_equal(low, np.clip(np.rint(inp), 0, 255).astype(np.uint32))
