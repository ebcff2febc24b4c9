"""Runs of independent instructions executed as one NumPy call.

A register-tiled gemm spends most of its steps in runs of `fma.rn.f32` that update distinct
accumulators from registers no instruction of the run writes. Executing such a run one step at
a time pays NumPy's per-call overhead once per instruction on arrays of a few hundred lanes;
stacked, the run costs about as much as two of its instructions. The results are those of
running them one after another: every instruction reads only registers no earlier one in the
run writes, so reading all operands first changes nothing, and the writes happen in program
order. The scheduler still counts, traces and budgets every instruction as a step of its own
(chronos.emulate.schedule), so step counts, traces and timeouts are unchanged.

Only unguarded instructions whose operands are plain registers of the instruction's type
batch (the decoder marks them, `Op.batch`); runs are found once per decoded Program.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.program import OP, Op, Run

FMA_F32 = "fma.rn.f32"
"""`fma.rn.f32 d, a, b, c` on 32-bit registers (stored as uint32 bits, as the decoder stores
every .f32/.b32/.u32 register); its registers are (d, a, b, c)."""

MIN_RUN = 2
"""A run of one instruction executes as a plain step."""


def find_runs(ops: list[Op]) -> dict[int, Run]:
    """The run starting at each pc whose instruction batches (the longest from there)."""
    runs: dict[int, Run] = {}
    for start, op in enumerate(ops):
        stop = _run_end(ops, start)
        if stop - start >= MIN_RUN:
            runs[start] = Run(start, stop, _make(op.batch[0], ops[start:stop]))  # type: ignore[index]
    return runs


def _run_end(ops: list[Op], start: int) -> int:
    """One past the last pc that may join the run of like instructions from `start`."""
    first = ops[start]
    if first.batch is None or first.guard is not None or first.kind != OP:
        return start
    kind = first.batch[0]
    written: set[int] = set()
    stop = start
    while stop < len(ops):
        op = ops[stop]
        if op.batch is None or op.batch[0] != kind or op.guard is not None or op.kind != OP:
            break
        dst, *srcs = op.batch[1]
        if written.intersection(srcs):
            break
        written.add(dst)
        stop += 1
    return stop


def _make(kind: str, ops: list[Op]) -> Callable[[Any, np.ndarray | None], None]:
    if kind != FMA_F32:
        raise ValueError(f"no batched form of {kind}")
    regs = [op.batch[1] for op in ops]  # type: ignore[index]
    d = [r[0] for r in regs]
    a = [r[1] for r in regs]
    b = [r[2] for r in regs]
    c = [r[3] for r in regs]

    def fma_run(m: Any, mask: np.ndarray | None) -> None:
        R = m.R
        # np.array of same-shape rows is np.stack at 40% of its cost on a run's few rows.
        out = nx.fma_f32_rows(
            np.array([R[i] for i in a]).view(np.float32),
            np.array([R[i] for i in b]).view(np.float32),
            np.array([R[i] for i in c]).view(np.float32),
        ).view(np.uint32)
        for k, i in enumerate(d):
            R[i] = out[k] if mask is None else np.where(mask, out[k], R[i])

    return fma_run
