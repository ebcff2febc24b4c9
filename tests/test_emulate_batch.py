"""Runs of independent fma.rn.f32 executed as one call (chronos.emulate.batch): the same bits,
steps and trace as one instruction at a time (issue 29: a cold emulated report near ptxas)."""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from chronos.emulate import numerics as nx
from chronos.emulate.batch import find_runs
from chronos.emulate.decode import cache_clear, decode
from chronos.emulate.launch import emulate

f32 = np.float32


def _hazards(rng: np.random.Generator, n: int, lanes: int) -> tuple[np.ndarray, ...]:
    """Rows of operands where some rows hit fma's double-rounding path (ties, tiny sums,
    cancellations to zero), others not, with infinities and NaNs mixed in."""
    a = rng.integers(-64, 65, (n, lanes)).astype(f32) / f32(8)
    b = rng.integers(-64, 65, (n, lanes)).astype(f32) / f32(8)
    c = rng.integers(-64, 65, (n, lanes)).astype(f32) / f32(8)
    # (1 + 2^-23) + 2^-24 - 2^-70: float64 rounds it onto the f32 tie, which then rounds to
    # even (up); the exact value lies below the tie and rounds down.
    a[1, :4] = f32((1 + 2.0**-23) * 2.0**-12)
    b[1, :4] = f32((1 - 2.0**-23) * 2.0**-12)
    c[1, :4] = f32(1 + 2.0**-23)
    a[2, :4], b[2, :4], c[2, :4] = f32(2.0**-70), f32(2.0**-60), f32(-(2.0**-131))  # tiny
    a[3, :3], b[3, :3], c[3, :3] = [np.inf, np.nan, 0], [1, 1, -0.0], [-np.inf, 0, -0.0]
    c[4] = -a[4] * b[4]  # every lane cancels to zero
    return a, b, c


@pytest.mark.parametrize("seed", [0, 1])
def test_fma_rows_equals_fma_row_by_row(seed: int) -> None:
    a, b, c = _hazards(np.random.default_rng(seed), 6, 64)
    with np.errstate(invalid="ignore"):  # inf - inf
        rows = nx.fma_f32_rows(a, b, c)
        ones = [nx.fma_f32(a[k], b[k], c[k], "rn") for k in range(len(a))]
    for k, one in enumerate(ones):
        assert rows[k].view(np.uint32).tolist() == one.view(np.uint32).tolist(), k
    # Row 1 took the exact path: float64 rounded twice gives another answer there.
    twice = (a[1].astype(np.float64) * b[1] + c[1]).astype(f32)
    assert twice[0] == f32(1 + 2.0**-22) and rows[1, 0] == f32(1 + 2.0**-23)


DEPENDENT = ("matvec_warpvec_f32_128_1", "triton_matmul_fp32_32x64x32_w4_s2")
"""Kernels with an fma that reads the register the fma just before it writes."""


@pytest.mark.parametrize("kernel", ("gemm_tile_6_8_6", *DEPENDENT))
def test_runs_stop_at_a_register_an_earlier_fma_writes(kernel: str) -> None:
    spec = kernels.load(kernel)
    program = decode(spec.ptx(), spec.entry)
    if kernel.startswith("gemm_tile"):
        assert program.runs, "the register tile's fma chains should batch"
    for start, run in program.runs.items():
        written: set[int] = set()
        for op in program.ops[start : run.stop]:
            assert op.guard is None and op.batch is not None
            dst, *srcs = op.batch[1]
            assert not written.intersection(srcs), op.text
            written.add(dst)
        nxt = program.ops[run.stop] if run.stop < len(program.ops) else None
        if nxt is not None and nxt.batch is not None and nxt.guard is None:
            assert written.intersection(nxt.batch[1][1:]), "a run stopped short"
    found = {k: (r.start, r.stop) for k, r in find_runs(program.ops).items()}
    assert found == {k: (r.start, r.stop) for k, r in program.runs.items()}


@pytest.mark.parametrize("kernel", ["gemm_tile_6_8_6", "gemm_tile_2_8_8", *DEPENDENT])
def test_batched_run_equals_one_step_at_a_time(kernel: str) -> None:
    spec = kernels.load(kernel)
    cache_clear()
    batched = emulate(spec, spec.ptx(), trace=True)
    program = decode(spec.ptx(), spec.entry)
    runs, program.runs = program.runs, {}
    try:
        single = emulate(spec, spec.ptx(), trace=True)
    finally:
        program.runs = runs
        cache_clear()
    assert batched.steps == single.steps
    assert batched.trace.pcs == single.trace.pcs
    assert (batched.trace.warp_activity() == single.trace.warp_activity()).all()
    for name, out in single.outputs.items():
        assert out.tobytes() == batched.outputs[name].tobytes(), name
