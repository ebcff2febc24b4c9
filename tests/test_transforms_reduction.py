"""split_acc and reorder_cp on kernels as people write them (issue 31, items 3 and 4).

The everyday forms (tests/data/outside/everyday.cu) and the older outside kernels: where a
transform applies, the PTX assembles and keeps the kernel's semantics in the emulator on two
problem sizes (one not a multiple of the block) and two seeds, bit for bit for reorder_cp
and within the spec tolerance for split_acc; where it does not, the reason names the unmet
condition in one line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kernels
from chronos.assemble import assemble, ptxas_available
from chronos.ptx import parse
from chronos.transforms import ACTION_IDS, CATALOGUE, apply_action, transform_context
from chronos.transforms.semantics import check
from kernels import BufferSpec, KernelSpec, Problem, Tolerance
from tests.helpers import outside_kernels, registry

# --- exact reductions (tests/data/outside/reduction.cu): split_acc at tolerance 0 ------------

REDUCTION_PTX = Path(__file__).resolve().parent / "data" / "outside" / "reduction.ptx"
SIZES_N = (("full", 1 << 20, 64, 256), ("small", 3001, 3, 128), ("check", 4099, 2, 96))


def _thread_slices(problem: Problem, n: int) -> list[np.ndarray]:
    """Element indices of each thread's grid-stride slice."""
    threads = problem.grid[0] * problem.block[0]
    return [np.arange(t, n, threads) for t in range(threads)]


def _int_stats_ref(problem: Problem, inp: dict) -> dict:
    x = inp["in"]
    out = []
    for idx in _thread_slices(problem, len(x)):
        v = x[idx].astype(np.int64)
        s = int(v.sum()) & 0xFFFFFFFF
        m = int(v.max()) if len(v) else -(1 << 31)
        mn = int((v & 0xFFFFFFFF).min()) if len(v) else 0xFFFFFFFF
        out += [s, m & 0xFFFFFFFF, mn]
    return {"out": np.array(out, np.uint64).astype(np.uint32).view(np.int32)}


def _wide_min_ref(problem: Problem, inp: dict) -> dict:
    total, least = [], []
    for idx in _thread_slices(problem, len(inp["in"])):
        total.append(int(inp["in"][idx].astype(np.int64).sum()))
        least.append(inp["x"][idx].min() if len(idx) else np.float32(np.inf))
    return {"total": np.array(total, np.int64), "least": np.array(least, np.float32)}


def _exact_inputs(problem: Problem, rng: np.random.Generator) -> dict:
    n = problem.sizes["n"]
    big = rng.integers(-(1 << 31), 1 << 31, n, dtype=np.int64).astype(np.int32)  # sums wrap
    x = rng.uniform(-1e3, 1e3, n).astype(np.float32)
    x[rng.integers(0, n, 8)] = np.float32(-0.0)
    return {"in": big, "x": x}


def _exact_spec(entry: str, params, buffers, out_shapes, ref) -> KernelSpec:
    n_param = next(f"{entry}_param_{i}" for i, (_t, b) in enumerate(params) if b is None)
    problems = {}
    for name, n, grid, block in SIZES_N:
        threads = grid * block
        shapes = {"in": (n,), "x": (n,)} | {k: (f(threads),) for k, f in out_shapes.items()}
        shapes = {b.name: shapes[b.name] for b in buffers}
        problems[name] = Problem(
            {"n": n}, (grid, 1, 1), (block, 1, 1), {n_param: n}, shapes, name=name
        )
    return outside_kernels.entry_spec(
        REDUCTION_PTX, entry, params, buffers, problems, ref, _exact_inputs, Tolerance(0.0, 0.0)
    )


INT_STATS = _exact_spec(
    "int_stats",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "int32", "in"), BufferSpec("out", "int32", "out")),
    {"out": lambda t: 3 * t},
    _int_stats_ref,
)
WIDE_MIN = _exact_spec(
    "wide_min",
    ((".u64", "in"), (".u64", "x"), (".u64", "total"), (".u64", "least"), (".u32", None)),
    (
        BufferSpec("in", "int32", "in"),
        BufferSpec("x", "float32", "in"),
        BufferSpec("total", "int64", "out"),
        BufferSpec("least", "float32", "out"),
    ),
    {"total": lambda t: t, "least": lambda t: t},
    _wide_min_ref,
)

APPLIES = {
    "split_acc": [
        "outside_row_softmax",  # the max loop (exact) and the sum-of-exp loop, unrolled by 2
        "outside_spmv",  # nvcc's 4-way unrolled dot product threaded through temporaries
        "outside_dsum",  # f64 sum in a loop nested in a loop with barriers
        "reduce_sum_f32_b128_i1_shfl",
        "softmax_block_f32_b1024_i1",
        "layernorm_block_twopass_f32_b512_i1",
        "matvec_row_f32_128_1",
        "outside_int_stats",  # tolerance 0: integer sum, signed max, unsigned min (exact)
        "outside_wide_min",  # tolerance 0: 64-bit integer sum and fminf (exact)
    ],
    "reorder_cp": [
        "outside_gs_saxpy",
        "outside_transpose_padded",
        "outside_stencil5",  # four neighbour loads behind the adds they feed
        "outside_block_sum",  # one load per iteration: the next one rises above the add
        "outside_row_softmax",  # three one-load loops, one with a store to another buffer
        "reduce_sum_f32_b128_i1_shfl",
        "triton_add_fp32_b1024_w4_ragged",
        "outside_spmv",
        "outside_dsum",
        "outside_histogram_smem",  # the next byte's load rises above a relaxed shared atomic
    ],
}
CASES = [(t, k) for t, ks in APPLIES.items() for k in ks]
SIZES = ("small", "check")
SEEDS = (0, 1)


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with outside_kernels.registered(), registry.registered(INT_STATS, WIDE_MIN):
        yield


def _apply(kernel_id: str, name: str) -> tuple[kernels.KernelSpec, str, str, bool]:
    spec = kernels.load(kernel_id)
    res = apply_action(spec, spec.ptx(), name)
    return spec, res.ptx, res.reason, res.changed


@pytest.mark.parametrize(("name", "kernel_id"), CASES)
def test_applies_assembles_and_keeps_semantics(name: str, kernel_id: str) -> None:
    spec, ptx, reason, changed = _apply(kernel_id, name)
    assert changed, reason
    if ptxas_available():
        assemble(ptx, spec.target)
    exact = CATALOGUE[ACTION_IDS[name]].exact or not any(spec.tolerance)
    for size in SIZES:
        assert size in spec.problems
        for seed in SEEDS:
            err = check(spec, ptx, exact, size=size, seed=seed)
            assert err is None, f"{kernel_id} [{name}] {size} seed {seed}: {err}"


@pytest.mark.parametrize(("name", "kernel_id"), CASES)
def test_idempotent(name: str, kernel_id: str) -> None:
    spec, ptx, _, _ = _apply(kernel_id, name)
    again = apply_action(spec, ptx, name)
    assert not again.changed and again.ptx == ptx


def test_ragged_sizes_are_in_the_sweep() -> None:
    """The check sizes are not multiples of the block: the unrolled loops run odd trip counts."""
    spec = kernels.load("outside_row_softmax")
    assert spec.problems["check"].sizes["cols"] % spec.problems["check"].block[0] != 0
    spec = kernels.load("outside_spmv")
    assert spec.problems["check"].sizes["rows"] % spec.problems["check"].block[0] != 0


# --- split_acc ---------------------------------------------------------------------------------


def test_split_acc_unrolls_one_link_loops_with_identities() -> None:
    """row_softmax's loops advance their accumulator once per iteration: each single-block loop
    is unrolled by two (a new exit label after the first copy), max starts from NaN (a NaN
    operand of max yields the other), the sum from -0.0; both fold back at the loop exit."""
    _, ptx, _, changed = _apply("outside_row_softmax", "split_acc")
    assert changed
    lines = [ln.strip() for ln in ptx.splitlines()]
    assert "mov.f32 \t%chr_acc0, 0f7FFFFFFF;" in lines
    assert "mov.f32 \t%chr_acc1, 0f80000000;" in lines
    assert "max.f32 \t%chr_acc0, %chr_acc0, %f11;" in lines
    assert "add.f32 \t%chr_acc1, %chr_acc1, %f20;" in lines
    assert "max.f32 \t%f31, %f31, %chr_acc0;" in lines
    assert "add.f32 \t%f33, %f33, %chr_acc1;" in lines
    exits = [ln for ln in lines if ln.startswith("@!%p") and "$L__chr_acc" in ln]
    assert len(exits) == 2
    for ex in exits:
        assert ex.split()[-1].rstrip(";") + ":" in lines


def test_split_acc_threads_through_temporaries() -> None:
    """spmv's unrolled loop chains fma through %f16, %f19, %f22: the links alternate between
    %f29 and the new register; the nounroll remainder loop is left whole."""
    spec, ptx, _, changed = _apply("outside_spmv", "split_acc")
    assert changed
    fn = parse(ptx).entry(spec.entry)
    fmas = [i.render() for i in fn.instructions() if i.opcode == "fma"]
    assert fmas[0] == "fma.rn.f32 \t%f29, %f13, %f12, %f29;"  # the remainder loop
    assert [f.split("\t")[1].split(",")[0] for f in fmas[1:]] == [
        "%f29",
        "%chr_acc0",
        "%f29",
        "%chr_acc0",
    ]


def test_split_acc_refusals_name_the_condition() -> None:
    for kernel_id, needle in (
        ("outside_block_sum", "%f12 is a float sum"),  # tolerance 0: float sums stay whole
        ("outside_histogram_smem", "no accumulator read only by its chain"),
        ("outside_gs_saxpy", "no accumulator read only by its chain"),
        ("outside_stencil5", "no single-entry loop"),
        ("outside_haxpy_half", "no single-entry loop"),
    ):
        _, _, reason, changed = _apply(kernel_id, "split_acc")
        assert not changed and needle in reason, (kernel_id, reason)
        assert "\n" not in reason
    _, _, reason, _ = _apply("outside_block_sum", "split_acc")
    assert "spec.tolerance is 0" in reason


def test_split_acc_exact_chains_at_tolerance_zero() -> None:
    """At tolerance 0 only min/max and integer sums may split (they are associative): the
    max loop of row_softmax splits, its sum loop does not, and the result is bit-exact."""
    import dataclasses

    spec = kernels.load("outside_row_softmax")
    ctx = dataclasses.replace(transform_context(spec), tolerance=(0.0, 0.0))
    res = CATALOGUE[ACTION_IDS["split_acc"]].run(parse(spec.ptx()), ctx)
    assert res.changed
    assert "%chr_acc1" not in res.ptx and "max.f32 \t%chr_acc0, %chr_acc0, %f11;" in res.ptx
    for size in SIZES:
        assert check(spec, res.ptx, True, size=size, seed=0) is None


def test_a_dropped_fold_is_caught() -> None:
    """The sweep is not vacuous: without the fold after the loop the sum loses half its
    terms and the check fails."""
    spec, ptx, _, _ = _apply("outside_row_softmax", "split_acc")
    broken = "\n".join(ln for ln in ptx.splitlines() if "add.f32 \t%f33, %f33, %chr_acc1" not in ln)
    assert broken != ptx
    assert check(spec, broken, False, size="check", seed=0) is not None


# --- reorder_cp --------------------------------------------------------------------------------


def test_reorder_cp_hoists_stencil_loads_with_their_address_arithmetic() -> None:
    """stencil5's third and fourth loads wait behind the adds of the first ones; with their
    index arithmetic they rise above every add, so the four loads issue back to back."""
    spec, ptx, _, changed = _apply("outside_stencil5", "reorder_cp")
    assert changed
    ins = parse(ptx).entry(spec.entry).instructions()
    pos = [i for i, x in enumerate(ins) if x.opcode == "ld" and x.space == ".global"]
    adds = [i for i, x in enumerate(ins) if x.opcode == "add" and x.type == ".f32"]
    assert len(pos) == 4 and max(pos) < min(adds)


def test_reorder_cp_pipelines_one_load_loops() -> None:
    """block_sum's grid-stride loop loads once per iteration and adds at once: unrolled by
    two, the second iteration's load (predicated on the loop condition, address renamed)
    issues before the first iteration's add; the second copy takes it with a mov."""
    spec, ptx, _, changed = _apply("outside_block_sum", "reorder_cp")
    assert changed
    lines = [ln.strip() for ln in ptx.splitlines() if ln.strip() and ".loc" not in ln]
    i = lines.index("$L__BB2_2:")
    loop = lines[i : lines.index("$L__BB2_3:")]
    hoisted = loop.index("@%p2 ld.global.nc.f32 \t%chr_pl2, [%chr_pl1];")
    first_add = loop.index("add.f32 \t%f12, %f12, %f6;")
    assert loop.index("setp.lt.s32 \t%p2, %r18, %r12;") < hoisted < first_add
    assert loop[first_add + 1] == "@!%p2 bra \t$L__chr_pipe2;"
    assert "mov.f32 \t%f6, %chr_pl2;" in loop and loop[-2] == "@%p2 bra \t$L__BB2_2;"


def test_a_wrong_pipeline_is_caught() -> None:
    """Feeding the second copy the first copy's value instead of the hoisted load's is caught
    by the bit-exact check (the sweep is not vacuous)."""
    spec, ptx, _, _ = _apply("outside_block_sum", "reorder_cp")
    stale = ptx.replace("mov.f32 \t%f6, %chr_pl2;", "mov.f32 \t%f6, %f6;")
    assert stale != ptx
    assert check(spec, stale, True, size="check", seed=0) is not None


def test_reorder_cp_refusals_name_the_condition() -> None:
    """No loop, no load behind arithmetic: no hoist, said in one line (a load kept behind an
    atomic on its own buffer: tests/test_transforms_hints.py)."""
    _, _, reason, changed = _apply("outside_haxpy_half", "reorder_cp")
    assert not changed and "no global load to hoist" in reason and "\n" not in reason


@pytest.mark.parametrize(
    "kernel_id", ["outside_int_stats", "outside_wide_min", "outside_row_softmax"]
)
def test_split_acc_and_reorder_cp_compose(kernel_id: str) -> None:
    """Both orders of the two transforms keep the kernel's semantics (bit for bit where the
    contract is exact)."""
    from chronos.transforms import apply_sequence

    spec = kernels.load(kernel_id)
    exact = not any(spec.tolerance)
    for seq in (["split_acc", "reorder_cp"], ["reorder_cp", "split_acc"]):
        ptx = apply_sequence(spec, spec.ptx(), seq)
        assert ptx != spec.ptx()
        for size in SIZES:
            assert check(spec, ptx, exact, size=size, seed=1) is None, (kernel_id, seq, size)
