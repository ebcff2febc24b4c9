"""Specs for tests/data/blockloop/rows.cu: row-per-block kernels with block-stride element loops
(issue 31), one block of 128 threads per row. The sizes put `cols` on a multiple of 4, on an
even non-multiple of 4 and on an odd count, so rows start 16-, 8- and 4-byte aligned."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kernels import BufferSpec, KernelSpec, Problem, Tolerance
from tests.helpers import registry
from tests.helpers.outside_kernels import entry_spec

PTX = Path(__file__).resolve().parents[1] / "data" / "blockloop" / "rows.ptx"
f32 = np.float32
EXACT = Tolerance(0.0, 0.0)
SIZES = (("full", 4096, 1024), ("small", 5, 300), ("check", 3, 129), ("even", 4, 258))
"""(problem, rows, cols): the semantic checks run small, check and even."""


def _problems(entry: str, scalars: Callable[[int, int], dict], shapes: Callable) -> dict:
    out = {}
    for name, rows, cols in SIZES:
        named = {f"{entry}_param_{i}": v for i, v in scalars(rows, cols).items()}
        out[name] = Problem(
            {"rows": rows, "cols": cols},
            (rows, 1, 1),
            (128, 1, 1),
            named,
            shapes(rows, cols),
            name=name,
        )
    return out


def _spec(
    entry: str,
    params: tuple,
    buffers: tuple,
    scalars: Callable[[int, int], dict],
    shapes: Callable,
    ref: Callable,
    inputs: Callable | None = None,
    tol: Tolerance = EXACT,
) -> KernelSpec:
    return entry_spec(
        PTX, entry, params, buffers, _problems(entry, scalars, shapes), ref, inputs, tol
    )


def _io(rows: int, cols: int) -> dict:
    return {"x": (rows, cols), "y": (rows, cols)}


def _reduced(rows: int, cols: int) -> dict:
    return {"x": (rows, cols), "out": (rows,)}


def _quarters(problem: Problem, rng: np.random.Generator) -> dict:
    """Multiples of 1/4: float sums of them are exact in any order."""
    shape = problem.shapes["x"]
    return {"x": (rng.integers(-8, 9, shape) / 4).astype(f32)}


def _ints(problem: Problem, rng: np.random.Generator) -> dict:
    return {"x": rng.integers(-1000, 1000, problem.shapes["x"]).astype(np.int32)}


def _fma(a: float, b: float) -> Callable:
    return lambda p, i: {"y": (i["x"].astype(np.float64) * a + b).astype(f32)}


def _odd_stride_ref(problem: Problem, inp: dict) -> dict:
    """Thread t writes columns t, t + B + (t & 1), ...; the others keep y's initial values."""
    x, y, block = inp["x"], inp["y"].copy(), problem.block[0]
    for t in range(block):
        cs = np.arange(t, x.shape[1], block + (t & 1))
        y[:, cs] = x[:, cs] + f32(1)
    return {"y": y}


XY = (BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "out"))
XO = (BufferSpec("x", "float32", "in"), BufferSpec("out", "float32", "out"))
PTRS = ((".u64", "x"), (".u64", "y"))

ROW_SCALE_BIAS = _spec(
    "row_scale_bias",
    (*PTRS, (".u32", None), (".f32", None), (".f32", None)),
    XY,
    lambda rows, cols: {2: cols, 3: 1.5, 4: -0.25},
    _io,
    _fma(1.5, -0.25),
    tol=Tolerance(1e-6, 1e-6),
)
ROW_AXPB_INT = _spec(
    "row_axpb_int",
    (*PTRS, (".u32", None), (".f32", None)),
    XY,
    lambda rows, cols: {2: cols, 3: 0.5},
    _io,
    _fma(0.5, 1.0),
    tol=Tolerance(1e-6, 1e-6),
)
ROW_SCALE_INPLACE = _spec(
    "row_scale_inplace",
    ((".u64", "x"), (".u32", None), (".f32", None)),
    (BufferSpec("x", "float32", "inout"),),
    lambda rows, cols: {1: cols, 2: 3.0},
    lambda rows, cols: {"x": (rows, cols)},
    lambda p, i: {"x": (i["x"] * f32(3.0)).astype(f32)},
)
ROW_MAX = _spec(
    "row_max",
    ((".u64", "x"), (".u64", "out"), (".u32", None)),
    XO,
    lambda rows, cols: {2: cols},
    _reduced,
    lambda p, i: {"out": i["x"].max(axis=1).astype(f32)},
)
ROW_SUM = _spec(
    "row_sum",
    ((".u64", "x"), (".u64", "out"), (".u32", None)),
    XO,
    lambda rows, cols: {2: cols},
    _reduced,
    lambda p, i: {"out": i["x"].astype(np.float64).sum(axis=1).astype(f32)},
    _quarters,
    Tolerance(1e-5, 1e-6),
)
ROW_ISUM = _spec(
    "row_isum",
    ((".u64", "x"), (".u64", "out"), (".u32", None)),
    (BufferSpec("x", "int32", "in"), BufferSpec("out", "int32", "out")),
    lambda rows, cols: {2: cols},
    _reduced,
    lambda p, i: {"out": i["x"].sum(axis=1).astype(np.int32)},
    _ints,
)
ROW_DIFF = _spec(
    "row_diff",
    (*PTRS, (".u32", None)),
    XY,
    lambda rows, cols: {2: cols},
    lambda rows, cols: {"x": (rows, cols + 1), "y": (rows, cols)},
    lambda p, i: {"y": (i["x"][:, 1:] - i["x"][:, :-1]).astype(f32)},
)
ROW_COPY_ALIAS = _spec(
    "row_copy_alias",
    (*PTRS, (".u32", None)),
    XY,
    lambda rows, cols: {2: cols},
    _io,
    lambda p, i: {"y": (2 * i["x"]).astype(f32)},
)
ROW_ODD_STRIDE = _spec(
    "row_odd_stride",
    (*PTRS, (".u32", None)),
    (BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "inout")),  # not all written
    lambda rows, cols: {2: cols},
    _io,
    lambda p, i: _odd_stride_ref(p, i),
)

ROW_HSCALE = _spec(
    "row_hscale",
    (*PTRS, (".u32", None), (".f32", None)),
    (BufferSpec("x", "float16", "in"), BufferSpec("y", "float16", "out")),
    lambda rows, cols: {2: cols, 3: 0.75},
    _io,
    lambda p, i: {"y": (i["x"].astype(np.float64) * 0.75).astype(np.float16)},  # one rounding
    tol=Tolerance(1e-3, 1e-3),
)

ROWS_GRID_SCALE = _spec(
    "rows_grid_scale",
    (*PTRS, (".u32", None), (".u32", None), (".f32", None)),
    XY,
    lambda rows, cols: {2: rows, 3: cols, 4: 2.5},
    _io,
    lambda p, i: {"y": (i["x"] * f32(2.5)).astype(f32)},
)

SPECS = (
    ROW_SCALE_BIAS,
    ROW_AXPB_INT,
    ROW_SCALE_INPLACE,
    ROW_MAX,
    ROW_SUM,
    ROW_ISUM,
    ROW_DIFF,
    ROW_COPY_ALIAS,
    ROW_ODD_STRIDE,
    ROW_HSCALE,
    ROWS_GRID_SCALE,
)


def registered() -> contextlib.AbstractContextManager[tuple[KernelSpec, ...]]:
    """SPECS registered for the block's duration."""
    return registry.registered(*SPECS)
