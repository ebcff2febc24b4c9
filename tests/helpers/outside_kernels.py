"""Specs for tests/data/outside: five kernels from outside the corpus (`registered()`).

They stand for the kernels a user brings: no transform was written against them, so the
semantic sweep in tests/test_outside_kernels.py is a held-out check of every transform's
legality proof (and of bfloat16 buffers, compared as floats within the tolerance).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import kernels
from kernels import (
    BufferSpec,
    KernelSpec,
    Param,
    Problem,
    Tolerance,
    bfloat16_from_float,
    bfloat16_to_float,
)

PTX = Path(__file__).resolve().parents[1] / "data" / "outside" / "outside.ptx"
FAM = "outside"
f32 = np.float32


def P(entry: str, i: int, t: str, kind: str, buf: str | None = None) -> Param:
    return Param(f"{entry}_param_{i}", t, kind, buf)


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


SPMV = KernelSpec(
    id="outside_spmv",
    family=FAM,
    entry="spmv_csr",
    ptx_path=PTX,
    params=tuple(
        P("spmv_csr", i, ".u64", "buffer", b)
        for i, b in enumerate(["rowptr", "col", "val", "x", "y"])
    )
    + (P("spmv_csr", 5, ".u32", "scalar"),),
    buffers=(
        BufferSpec("rowptr", "int32", "in"),
        BufferSpec("col", "int32", "in"),
        BufferSpec("val", "float32", "in"),
        BufferSpec("x", "float32", "in"),
        BufferSpec("y", "float32", "out"),
    ),
    problems={
        "full": spmv_prob("full", 1 << 20),
        "small": spmv_prob("small", 300),
        "check": spmv_prob("check", 517),
    },
    reference_fn=spmv_ref,
    inputs_fn=spmv_inputs,
    read_only=("rowptr", "col", "val", "x"),
    alignment={f"spmv_csr_param_{i}": 256 for i in range(5)},
    tolerance=Tolerance(1e-5, 1e-5),
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


CONV = KernelSpec(
    id="outside_conv1d",
    family=FAM,
    entry="conv1d",
    ptx_path=PTX,
    params=(
        P("conv1d", 0, ".u64", "buffer", "in"),
        P("conv1d", 1, ".u64", "buffer", "w"),
        P("conv1d", 2, ".u64", "buffer", "out"),
        P("conv1d", 3, ".u32", "scalar"),
    ),
    buffers=(
        BufferSpec("in", "float32", "in"),
        BufferSpec("w", "float32", "in"),
        BufferSpec("out", "float32", "out"),
    ),
    problems={
        "full": conv_prob("full", 1 << 22),
        "small": conv_prob("small", 1000),
        "check": conv_prob("check", 1531),
    },
    reference_fn=conv_ref,
    inputs_fn=None,
    alignment={"conv1d_param_0": 256, "conv1d_param_1": 256, "conv1d_param_2": 256},
    tolerance=Tolerance(1e-5, 1e-5),
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


SCAN = KernelSpec(
    id="outside_scan",
    family=FAM,
    entry="scan_block",
    ptx_path=PTX,
    params=(
        P("scan_block", 0, ".u64", "buffer", "in"),
        P("scan_block", 1, ".u64", "buffer", "out"),
        P("scan_block", 2, ".u32", "scalar"),
    ),
    buffers=(BufferSpec("in", "int32", "in"), BufferSpec("out", "int32", "out")),
    problems={
        "full": scan_prob("full", 1 << 22),
        "small": scan_prob("small", 700),
        "check": scan_prob("check", 1100),
    },
    reference_fn=scan_ref,
    inputs_fn=scan_inputs,
    alignment={"scan_block_param_0": 256, "scan_block_param_1": 256},
    tolerance=Tolerance(0.0, 0.0),
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


GELU = KernelSpec(
    id="outside_gelu_bf16",
    family=FAM,
    entry="gelu_bf16",
    ptx_path=PTX,
    params=(
        P("gelu_bf16", 0, ".u64", "buffer", "x"),
        P("gelu_bf16", 1, ".u64", "buffer", "y"),
        P("gelu_bf16", 2, ".u32", "scalar"),
    ),
    buffers=(BufferSpec("x", "bfloat16", "in"), BufferSpec("y", "bfloat16", "out")),
    problems={
        "full": gelu_prob("full", 1 << 24, 1024),
        "small": gelu_prob("small", 3000, 4),
        "check": gelu_prob("check", 5001, 3),
    },
    reference_fn=gelu_ref,
    inputs_fn=gelu_inputs,
    alignment={"gelu_bf16_param_0": 256, "gelu_bf16_param_1": 256},
    tolerance=Tolerance(1e-2, 1e-2),
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


ST3 = KernelSpec(
    id="outside_stencil3d",
    family=FAM,
    entry="stencil3d",
    ptx_path=PTX,
    params=(
        P("stencil3d", 0, ".u64", "buffer", "in"),
        P("stencil3d", 1, ".u64", "buffer", "out"),
        P("stencil3d", 2, ".u32", "scalar"),
        P("stencil3d", 3, ".u32", "scalar"),
        P("stencil3d", 4, ".u32", "scalar"),
    ),
    buffers=(BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "inout")),
    problems={
        "full": st_prob("full", 512, 512, 64),
        "small": st_prob("small", 40, 12, 5),
        "check": st_prob("check", 67, 19, 4),
    },
    reference_fn=st_ref,
    inputs_fn=None,
    read_only=("in",),
    alignment={"stencil3d_param_0": 256, "stencil3d_param_1": 256},
    tolerance=Tolerance(1e-5, 1e-5),
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


DSUM = KernelSpec(
    id="outside_dsum",
    family=FAM,
    entry="dsum",
    ptx_path=PTX,
    params=(
        P("dsum", 0, ".u64", "buffer", "x"),
        P("dsum", 1, ".u64", "buffer", "out"),
        P("dsum", 2, ".u32", "scalar"),
    ),
    buffers=(BufferSpec("x", "float64", "in"), BufferSpec("out", "float64", "out")),
    problems={
        "full": dsum_prob("full", 1 << 22, 512),
        "small": dsum_prob("small", 600, 3),
        "check": dsum_prob("check", 901, 2),
    },
    reference_fn=dsum_ref,
    inputs_fn=None,
    alignment={"dsum_param_0": 256, "dsum_param_1": 256},
    tolerance=Tolerance(1e-12, 1e-12),
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


TRANSPOSE = KernelSpec(
    id="outside_transpose_ldg",
    family=FAM,
    entry=TR,
    ptx_path=PTX,
    params=(
        P(TR, 0, ".u64", "buffer", "in"),
        P(TR, 1, ".u64", "buffer", "out"),
        P(TR, 2, ".u32", "scalar"),
        P(TR, 3, ".u32", "scalar"),
    ),
    buffers=(BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    problems={
        "full": tr_prob("full", 4096, 4096),
        "small": tr_prob("small", 70, 45),
        "check": tr_prob("check", 33, 97),
    },
    reference_fn=lambda problem, inp: {"out": np.ascontiguousarray(inp["in"].T)},
    inputs_fn=None,
    alignment={f"{TR}_param_0": 256, f"{TR}_param_1": 256},
    tolerance=Tolerance(0.0, 0.0),
)

SPECS = (SPMV, CONV, SCAN, GELU, ST3, DSUM, TRANSPOSE)


@contextlib.contextmanager
def registered() -> Iterator[tuple[KernelSpec, ...]]:
    """The specs registered for the block's duration (other tests never see them)."""
    for s in SPECS:
        kernels.register(s, replace=True)
    try:
        yield SPECS
    finally:
        for s in SPECS:
            kernels.unregister(s.id)
