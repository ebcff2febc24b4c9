"""Specs for tests/data/outside: kernels from outside the corpus (`registered()`): seven from
outside.cu and issue 31's seven everyday forms from everyday.cu (`EVERYDAY`).

They stand for the kernels a user brings: no transform was written against them, so the
semantic sweep in tests/test_outside_kernels.py is a held-out check of every transform's
legality proof (and of bfloat16 buffers, compared as floats within the tolerance).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kernels import (
    BufferSpec,
    KernelSpec,
    Param,
    Problem,
    Tolerance,
    bfloat16_from_float,
    bfloat16_to_float,
)
from kernels.common import cuda_spec
from tests.helpers import registry

PTX = Path(__file__).resolve().parents[1] / "data" / "outside" / "outside.ptx"
FAM = "outside"
f32 = np.float32


def _spec(kernel_id: str, entry: str, *args: Any) -> KernelSpec:
    """`kernels.common.cuda_spec` (buffer pointers, 256-byte aligned, then scalars; sm_80) of
    an entry of outside.ptx: args are its buffers, scalar types, problems, reference_fn,
    inputs_fn and tolerance."""
    return cuda_spec(FAM, entry, *args, kernel_id=kernel_id, ptx_path=PTX)


def _problems(make: Callable[..., Problem], *sizes: tuple) -> dict[str, Problem]:
    """{"full": make("full", *sizes[0]), "small": ..., "check": ...}."""
    names = ("full", "small", "check")
    return {name: make(name, *args) for name, args in zip(names, sizes, strict=True)}


# spmv
def spmv_prob(name, rows):
    return Problem(
        name=name,
        sizes={"rows": rows},
        grid=(-(-rows // 128), 1, 1),
        block=(128, 1, 1),
        scalars={"spmv_csr_param_5": rows},
        shapes={
            "rowptr": (rows + 1,),
            "col": (rows * 9,),
            "val": (rows * 9,),
            "x": (rows,),
            "y": (rows,),
        },
    )


def spmv_inputs(problem, rng):
    rows = problem.sizes["rows"]
    nnz = rng.integers(0, 10, rows)
    rowptr = np.zeros(rows + 1, np.int32)
    rowptr[1:] = np.cumsum(nnz)
    cap = rows * 9
    col = np.zeros(cap, np.int32)
    col[: rowptr[-1]] = rng.integers(0, rows, rowptr[-1])
    val = (rng.integers(-8, 9, cap) / 4).astype(f32)
    x = (rng.integers(-8, 9, rows) / 4).astype(f32)
    return {"rowptr": rowptr, "col": col, "val": val, "x": x}


def spmv_ref(problem, inp):
    rows = problem.sizes["rows"]
    y = np.zeros(rows, f32)
    for r in range(rows):
        a, b = inp["rowptr"][r], inp["rowptr"][r + 1]
        acc = f32(0)
        for j in range(a, b):
            acc = f32(acc + f32(inp["val"][j] * inp["x"][inp["col"][j]]))
        y[r] = acc
    return {"y": y}


SPMV = _spec(
    "outside_spmv",
    "spmv_csr",
    (
        BufferSpec("rowptr", "int32", "in"),
        BufferSpec("col", "int32", "in"),
        BufferSpec("val", "float32", "in"),
        BufferSpec("x", "float32", "in"),
        BufferSpec("y", "float32", "out"),
    ),
    (".u32",),
    _problems(spmv_prob, (1 << 20,), (300,), (517,)),
    spmv_ref,
    spmv_inputs,
    Tolerance(1e-5, 1e-5),
)


# conv1d
def conv_prob(name, n):
    return Problem(
        name=name,
        sizes={"n": n},
        grid=(-(-n // 128), 1, 1),
        block=(128, 1, 1),
        scalars={"conv1d_param_3": n},
        shapes={"in": (n,), "w": (7,), "out": (n,)},
    )


def conv_ref(problem, inp):
    x, w = inp["in"].astype(np.float64), inp["w"].astype(np.float64)
    n = len(x)
    xp = np.concatenate([np.zeros(3), x, np.zeros(3)])
    out = sum(w[k] * xp[k : k + n] for k in range(7))
    return {"out": out.astype(f32)}


CONV = _spec(
    "outside_conv1d",
    "conv1d",
    (
        BufferSpec("in", "float32", "in"),
        BufferSpec("w", "float32", "in"),
        BufferSpec("out", "float32", "out"),
    ),
    (".u32",),
    _problems(conv_prob, (1 << 22,), (1000,), (1531,)),
    conv_ref,
    None,
    Tolerance(1e-5, 1e-5),
)


# scan
def scan_prob(name, n):
    return Problem(
        name=name,
        sizes={"n": n},
        grid=(-(-n // 256), 1, 1),
        block=(256, 1, 1),
        scalars={"scan_block_param_2": n},
        shapes={"in": (n,), "out": (n,)},
    )


def scan_inputs(problem, rng):
    return {"in": rng.integers(-100, 100, problem.sizes["n"]).astype(np.int32)}


def scan_ref(problem, inp):
    x = inp["in"].astype(np.int64)
    n = len(x)
    out = np.zeros(n, np.int64)
    for b in range(0, n, 256):
        seg = np.concatenate([x[b : b + 256], np.zeros(max(0, b + 256 - n), np.int64)])
        out[b : b + 256] = np.cumsum(seg)[: min(256, n - b)]
    return {"out": out.astype(np.int32)}


SCAN = _spec(
    "outside_scan",
    "scan_block",
    (BufferSpec("in", "int32", "in"), BufferSpec("out", "int32", "out")),
    (".u32",),
    _problems(scan_prob, (1 << 22,), (700,), (1100,)),
    scan_ref,
    scan_inputs,
    Tolerance(0.0, 0.0),
)


# gelu bf16
def gelu_prob(name, n, grid):
    return Problem(
        name=name,
        sizes={"n": n},
        grid=(grid, 1, 1),
        block=(256, 1, 1),
        scalars={"gelu_bf16_param_2": n},
        shapes={"x": (n,), "y": (n,)},
    )


def gelu_inputs(problem, rng):
    return {"x": bfloat16_from_float(rng.uniform(-4, 4, problem.sizes["n"]).astype(f32))}


def gelu_ref(problem, inp):
    v = bfloat16_to_float(inp["x"]).astype(np.float64)
    y = 0.5 * v * (1 + np.tanh(0.7978845608 * (v + 0.044715 * v**3)))
    return {"y": bfloat16_from_float(y.astype(f32))}


GELU = _spec(
    "outside_gelu_bf16",
    "gelu_bf16",
    (BufferSpec("x", "bfloat16", "in"), BufferSpec("y", "bfloat16", "out")),
    (".u32",),
    _problems(gelu_prob, (1 << 24, 1024), (3000, 4), (5001, 3)),
    gelu_ref,
    gelu_inputs,
    Tolerance(1e-2, 1e-2),
)


# stencil3d
def st_prob(name, nx, ny, nz):
    return Problem(
        name=name,
        sizes={"nx": nx, "ny": ny, "nz": nz},
        grid=(-(-nx // 32), -(-ny // 8), 1),
        block=(32, 8, 1),
        scalars={"stencil3d_param_2": nx, "stencil3d_param_3": ny, "stencil3d_param_4": nz},
        shapes={"in": (nz, ny, nx), "out": (nz, ny, nx)},
    )


def st_ref(problem, inp):
    a = inp["in"].astype(f32)
    out = inp["out"].astype(f32).copy()
    c = a[1:-1, 1:-1, 1:-1]
    s = (
        (a[1:-1, 1:-1, :-2] + a[1:-1, 1:-1, 2:])
        + a[1:-1, :-2, 1:-1]
        + a[1:-1, 2:, 1:-1]
        + a[:-2, 1:-1, 1:-1]
        + a[2:, 1:-1, 1:-1]
    )
    out[1:-1, 1:-1, 1:-1] = f32(0.4) * c + f32(0.1) * s
    return {"out": out}


ST3 = _spec(
    "outside_stencil3d",
    "stencil3d",
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "inout")),
    (".u32", ".u32", ".u32"),
    _problems(st_prob, (512, 512, 64), (40, 12, 5), (67, 19, 4)),
    st_ref,
    None,
    Tolerance(1e-5, 1e-5),
)


# dsum: a double-precision sum through dynamic shared memory, a barrier inside the loop
def dsum_prob(name: str, n: int, grid: int) -> Problem:
    return Problem(
        name=name,
        sizes={"n": n},
        grid=(grid, 1, 1),
        block=(128, 1, 1),
        scalars={"dsum_param_2": n},
        shapes={"x": (n,), "out": (grid,)},
        dynamic_shared_bytes=128 * 8,
    )


def dsum_ref(problem: Problem, inp: dict) -> dict:
    """Block b's thread 0 adds its grid-stride chunks in order (zeros past n)."""
    x, grid = inp["x"], problem.grid[0]
    out = np.zeros(grid)
    for b in range(grid):
        acc = 0.0
        for base in range(b * 128, len(x), grid * 128):
            for v in x[base : base + 128]:
                acc += v
        out[b] = acc
    return {"out": out}


DSUM = _spec(
    "outside_dsum",
    "dsum",
    (BufferSpec("x", "float64", "in"), BufferSpec("out", "float64", "out")),
    (".u32",),
    _problems(dsum_prob, (1 << 22, 512), (600, 3), (901, 2)),
    dsum_ref,
    None,
    Tolerance(1e-12, 1e-12),
)


# transpose_ldg<float>: a C++ template (mangled entry), __ldg loads, 32x8 threads per tile
TR = "_Z13transpose_ldgIfEvPKT_PS0_ii"


def tr_prob(name: str, w: int, h: int) -> Problem:
    return Problem(
        name=name,
        sizes={"w": w, "h": h},
        grid=(-(-w // 32), -(-h // 32), 1),
        block=(32, 8, 1),
        scalars={f"{TR}_param_2": w, f"{TR}_param_3": h},
        shapes={"in": (h, w), "out": (w, h)},
    )


TRANSPOSE = _spec(
    "outside_transpose_ldg",
    TR,
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    (".u32", ".u32"),
    _problems(tr_prob, (4096, 4096), (70, 45), (33, 97)),
    lambda problem, inp: {"out": np.ascontiguousarray(inp["in"].T)},
    None,
    Tolerance(0.0, 0.0),
)


# --- issue 31's seven everyday forms (tests/data/outside/everyday.cu) -------------------------

EVERYDAY_PTX = PTX.parent / "everyday.ptx"


def entry_spec(
    ptx_path: Path,
    entry: str,
    params: tuple[tuple[str, str | None], ...],
    buffers: tuple[BufferSpec, ...],
    problems: dict[str, Problem],
    reference_fn: Callable[..., dict],
    inputs_fn: Callable[..., dict] | None,
    tolerance: Tolerance,
) -> KernelSpec:
    """`outside_<entry>`, an entry of `ptx_path` in its own parameter order: `params` is (PTX
    type, buffer name or None for a scalar) per parameter; pointers 256-byte aligned
    (cudaMalloc's), sm_80."""
    named = tuple(
        Param(f"{entry}_param_{i}", t, "scalar" if b is None else "buffer", b)
        for i, (t, b) in enumerate(params)
    )
    return KernelSpec(
        id=f"outside_{entry}",
        family=FAM,
        entry=entry,
        ptx_path=ptx_path,
        params=named,
        buffers=buffers,
        problems=problems,
        reference_fn=reference_fn,
        inputs_fn=inputs_fn,
        alignment={q.name: 256 for q in named if q.kind == "buffer"},
        tolerance=tolerance,
        target="sm_80",
    )


_everyday = partial(entry_spec, EVERYDAY_PTX)
"""An entry of everyday.ptx (see `entry_spec`)."""


def _quarters(rng: np.random.Generator, n: int) -> np.ndarray:
    """Multiples of 1/4 in [-2, 2]: float32 sums of them are exact in any order."""
    return (rng.integers(-8, 9, n) / 4).astype(f32)


def _grid_stride(name: str, n: int, grid: int, block: int, entry: str, extra: dict) -> Problem:
    shapes = {k: v(n, grid) for k, v in extra.items()}
    scalars = {f"{entry}_param_{i}": v for i, v in EVERYDAY_SCALARS[entry](n).items()}
    return Problem({"n": n}, (grid, 1, 1), (block, 1, 1), scalars, shapes, name=name)


EVERYDAY_SCALARS = {
    "gs_saxpy": lambda n: {0: n, 1: 1.5},
    "haxpy_half": lambda n: {0: n, 1: 0.75},
    "block_sum": lambda n: {2: n},
    "histogram_smem": lambda n: {2: n},
}


def _gs_saxpy_ref(problem: Problem, inp: dict) -> dict:
    x, y = inp["x"].astype(np.float64), inp["y"].astype(np.float64)
    return {"y": (1.5 * x + y).astype(f32)}  # one rounding, as fma.rn.f32


GS_SAXPY = _everyday(
    "gs_saxpy",
    ((".u32", None), (".f32", None), (".u64", "x"), (".u64", "y")),
    (BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "inout")),
    {
        name: _grid_stride(
            name, n, g, b, "gs_saxpy", {"x": lambda n, g: (n,), "y": lambda n, g: (n,)}
        )
        for name, n, g, b in (
            ("full", 1 << 24, 1024, 256),
            ("small", 3001, 3, 128),
            ("check", 4099, 2, 64),
        )
    },
    _gs_saxpy_ref,
    None,
    Tolerance(1e-6, 1e-6),
)


def _haxpy_ref(problem: Problem, inp: dict) -> dict:
    x, y = inp["x"].astype(np.float64), inp["y"].astype(np.float64)
    return {"y": (0.75 * x + y).astype(np.float16)}  # __hfma: one rounding


def _haxpy_inputs(problem: Problem, rng: np.random.Generator) -> dict:
    n = problem.sizes["n"]
    return {
        "x": rng.uniform(-2, 2, n).astype(np.float16),
        "y": rng.uniform(-2, 2, n).astype(np.float16),
    }


def _haxpy_prob(name: str, n: int, block: int) -> Problem:
    grid = -(-n // block)
    return _grid_stride(
        name, n, grid, block, "haxpy_half", {"x": lambda n, g: (n,), "y": lambda n, g: (n,)}
    )


HAXPY_HALF = _everyday(
    "haxpy_half",
    ((".u32", None), (".b8", None), (".u64", "x"), (".u64", "y")),
    (BufferSpec("x", "float16", "in"), BufferSpec("y", "float16", "inout")),
    _problems(_haxpy_prob, (1 << 24, 256), (1001, 128), (2051, 64)),
    _haxpy_ref,
    _haxpy_inputs,
    Tolerance(1e-3, 1e-3),
)


def _block_sum_ref(problem: Problem, inp: dict) -> dict:
    x, grid, block = inp["in"], problem.grid[0], problem.block[0]
    idx = np.arange(len(x))
    block_of = (idx // block) % grid  # the block whose grid-stride slice holds element i
    return {"out": np.bincount(block_of, weights=x, minlength=grid).astype(f32)}


BLOCK_SUM = _everyday(
    "block_sum",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    {
        name: _grid_stride(
            name, n, g, 256, "block_sum", {"in": lambda n, g: (n,), "out": lambda n, g: (g,)}
        )
        for name, n, g in (("full", 1 << 24, 512), ("small", 5003, 4), ("check", 3333, 3))
    },
    _block_sum_ref,
    lambda problem, rng: {"in": _quarters(rng, problem.sizes["n"])},
    Tolerance(0.0, 0.0),
)


def _tp_prob(name: str, w: int, h: int) -> Problem:
    return Problem(
        {"w": w, "h": h},
        (-(-w // 32), -(-h // 32), 1),
        (32, 8, 1),
        {"transpose_padded_param_2": w, "transpose_padded_param_3": h},
        {"in": (h, w), "out": (w, h)},
        name=name,
    )


TRANSPOSE_PADDED = _everyday(
    "transpose_padded",
    ((".u64", "in"), (".u64", "out"), (".u32", None), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _problems(_tp_prob, (4096, 4096), (70, 45), (33, 97)),
    lambda problem, inp: {"out": np.ascontiguousarray(inp["in"].T)},
    None,
    Tolerance(0.0, 0.0),
)


def _softmax_prob(name: str, rows: int, cols: int) -> Problem:
    return Problem(
        {"rows": rows, "cols": cols},
        (rows, 1, 1),
        (128, 1, 1),
        {"row_softmax_param_2": cols},
        {"in": (rows, cols), "out": (rows, cols)},
        name=name,
    )


def _softmax_ref(problem: Problem, inp: dict) -> dict:
    x = inp["in"].astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return {"out": (e / e.sum(axis=1, keepdims=True)).astype(f32)}


ROW_SOFTMAX = _everyday(
    "row_softmax",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _problems(_softmax_prob, (4096, 1024), (5, 300), (3, 129)),
    _softmax_ref,
    lambda problem, rng: {"in": rng.uniform(-4, 4, problem.shapes["in"]).astype(f32)},
    Tolerance(2e-5, 1e-7),  # __expf is ex2.approx: a few ulp
)


def _stencil5_prob(name: str, nx: int, ny: int) -> Problem:
    return Problem(
        {"nx": nx, "ny": ny},
        (-(-nx // 16), -(-ny // 16), 1),
        (16, 16, 1),
        {"stencil5_param_2": nx, "stencil5_param_3": ny},
        {"in": (ny, nx), "out": (ny, nx)},
        name=name,
    )


def _stencil5_ref(problem: Problem, inp: dict) -> dict:
    a, out = inp["in"], inp["out"].copy()
    s = ((a[1:-1, :-2] + a[1:-1, 2:]) + a[:-2, 1:-1]) + a[2:, 1:-1]  # float32, in source order
    out[1:-1, 1:-1] = f32(0.25) * s
    return {"out": out}


STENCIL5 = _everyday(
    "stencil5",
    ((".u64", "in"), (".u64", "out"), (".u32", None), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "inout")),
    _problems(_stencil5_prob, (4096, 4096), (37, 21), (50, 33)),
    _stencil5_ref,
    None,
    Tolerance(1e-6, 1e-6),
)


def _histogram_inputs(problem: Problem, rng: np.random.Generator) -> dict:
    """Bytes, and the bins the caller zeroed (the kernel only adds to them)."""
    n = problem.sizes["n"]
    return {"data": rng.integers(0, 256, n).astype(np.uint8), "bins": np.zeros(256, np.uint32)}


HISTOGRAM_SMEM = _everyday(
    "histogram_smem",
    ((".u64", "data"), (".u64", "bins"), (".u32", None)),
    (BufferSpec("data", "uint8", "in"), BufferSpec("bins", "uint32", "inout")),
    {
        name: _grid_stride(
            name,
            n,
            g,
            256,
            "histogram_smem",
            {"data": lambda n, g: (n,), "bins": lambda n, g: (256,)},
        )
        for name, n, g in (("full", 1 << 26, 1024), ("small", 5000, 4), ("check", 3001, 3))
    },
    lambda problem, inp: {
        "bins": inp["bins"] + np.bincount(inp["data"], minlength=256).astype(np.uint32)
    },
    _histogram_inputs,
    Tolerance(0.0, 0.0),
)

EVERYDAY = (
    GS_SAXPY,
    HAXPY_HALF,
    BLOCK_SUM,
    TRANSPOSE_PADDED,
    ROW_SOFTMAX,
    STENCIL5,
    HISTOGRAM_SMEM,
)
"""Issue 31's seven everyday forms, in its order."""

SPECS = (SPMV, CONV, SCAN, GELU, ST3, DSUM, TRANSPOSE, *EVERYDAY)


def registered() -> contextlib.AbstractContextManager[tuple[KernelSpec, ...]]:
    """SPECS registered for the block's duration (other tests never see them)."""
    return registry.registered(*SPECS)
