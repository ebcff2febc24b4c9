"""Two user kernels registered with Chronos (the docs/kernels.md tutorial's example).

From this directory:

    python -m chronos.train +exp=greedy kernels.modules=[mykernels] 'kernels.ids=[vadd,rowsum]'

Chronos imports this module before it looks kernels up; importing it registers both specs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

import kernels
from kernels import BufferSpec, KernelSpec, Param, Problem, Tolerance

PTX = Path(__file__).resolve().parent / "mykernels.ptx"
FAMILY = "user_example"
BLOCK = 256
"""Threads per block for both kernels (rowsum's shared array has exactly this many slots)."""


# --- vadd: c = a + b --------------------------------------------------------------------------


def vadd_problem(name: str, n: int) -> Problem:
    """One thread per element, the last block ragged."""
    return Problem(
        name=name,
        sizes={"n": n},
        grid=(-(-n // BLOCK), 1, 1),
        block=(BLOCK, 1, 1),
        scalars={"vadd_param_3": n},
        shapes={"a": (n,), "b": (n,), "c": (n,)},
    )


def vadd_inputs(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Multiples of 1/4: a + b is exact in float32, so the check can be bit-exact."""
    n = problem.sizes["n"]
    return {
        "a": (rng.integers(-64, 65, n) / 4).astype(np.float32),
        "b": (rng.integers(-64, 65, n) / 4).astype(np.float32),
    }


def vadd_reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"c": (inputs["a"].astype(np.float64) + inputs["b"]).astype(np.float32)}


VADD = KernelSpec(
    id="vadd",
    family=FAMILY,
    entry="vadd",
    ptx_path=PTX,
    params=(
        Param("vadd_param_0", ".u64", "buffer", "a"),
        Param("vadd_param_1", ".u64", "buffer", "b"),
        Param("vadd_param_2", ".u64", "buffer", "c"),
        Param("vadd_param_3", ".u32", "scalar"),
    ),
    buffers=(
        BufferSpec("a", "float32", "in"),
        BufferSpec("b", "float32", "in"),
        BufferSpec("c", "float32", "out"),
    ),
    problems={"full": vadd_problem("full", 1 << 24), "small": vadd_problem("small", 1000)},
    reference_fn=vadd_reference,
    inputs_fn=vadd_inputs,
    alignment={"vadd_param_0": 256, "vadd_param_1": 256, "vadd_param_2": 256},
    tolerance=Tolerance(rtol=0.0, atol=0.0),
)


# --- rowsum: out[r] = sum_j x[r, j] -----------------------------------------------------------


def rowsum_problem(name: str, rows: int, cols: int) -> Problem:
    """One block per row."""
    return Problem(
        name=name,
        sizes={"rows": rows, "cols": cols},
        grid=(rows, 1, 1),
        block=(BLOCK, 1, 1),
        scalars={"rowsum_param_2": cols},
        shapes={"x": (rows, cols), "out": (rows,)},
    )


def rowsum_reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float64 sums: the kernel's float32 tree order rounds differently (see TOLERANCE)."""
    return {"out": inputs["x"].astype(np.float64).sum(axis=1).astype(np.float32)}


ROWSUM = KernelSpec(
    id="rowsum",
    family=FAMILY,
    entry="rowsum",
    ptx_path=PTX,
    params=(
        Param("rowsum_param_0", ".u64", "buffer", "x"),
        Param("rowsum_param_1", ".u64", "buffer", "out"),
        Param("rowsum_param_2", ".u32", "scalar"),
    ),
    buffers=(BufferSpec("x", "float32", "in"), BufferSpec("out", "float32", "out")),
    problems={
        "full": rowsum_problem("full", 16384, 1024),
        "small": rowsum_problem("small", 4, 300),
    },
    reference_fn=rowsum_reference,
    inputs_fn=None,  # uniform [-1, 1) floats
    alignment={"rowsum_param_0": 256, "rowsum_param_1": 256},
    # A float32 sum of `cols` values in [-1, 1) is within cols * 2**-24 of the exact sum:
    # 6e-5 for the full problem's 1024 columns.
    tolerance=Tolerance(rtol=1e-5, atol=1e-4),
)

kernels.register(VADD)
kernels.register(ROWSUM)
