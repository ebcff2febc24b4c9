"""Specs for tests/data/outside/staging.cu: global -> shared staging in issue 31's everyday
styles (reduction inputs with a zero fill, a block-stride row loop, a zero-padded row in an
unrolled loop, a 2-D tile with a halo, a tile loop), the kernels cp_async is tested on.
Inputs are multiples of 1/4, so every sum is exact and the references are bit-exact in any
order."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kernels import BufferSpec, KernelSpec, Problem, Tolerance
from tests.helpers import registry
from tests.helpers.outside_kernels import entry_spec

f32 = np.float32
PTX = Path(__file__).resolve().parents[1] / "data" / "outside" / "staging.ptx"


def _spec(
    entry: str,
    params: tuple[tuple[str, str | None], ...],
    buffers: tuple[BufferSpec, ...],
    problems: dict[str, Problem],
    reference_fn: Callable[..., dict],
) -> KernelSpec:
    return entry_spec(
        PTX, entry, params, buffers, problems, reference_fn, _quarters, Tolerance(0.0, 0.0)
    )


def _quarters(problem: Problem, rng: np.random.Generator) -> dict:
    """Every "in"/"x"/"a" buffer: multiples of 1/4 in [-2, 2]."""
    return {
        k: (rng.integers(-8, 9, shape) / 4).astype(f32)
        for k, shape in problem.shapes.items()
        if k in ("in", "a", "x")
    }


def _probs(make: Callable[..., Problem], *sizes: tuple) -> dict[str, Problem]:
    names = ("full", "small", "check")
    return {name: make(name, *args) for name, args in zip(names, sizes, strict=True)}


# stage_block_sum: one partial sum per block of 256
def _bs_prob(name: str, n: int) -> Problem:
    g = -(-n // 256)
    return Problem(
        {"n": n},
        (g, 1, 1),
        (256, 1, 1),
        {"stage_block_sum_param_2": n},
        {"in": (n,), "out": (g,)},
        name=name,
    )


def _bs_ref(problem: Problem, inp: dict) -> dict:
    x = inp["in"]
    g = problem.grid[0]
    return {"out": np.bincount(np.arange(len(x)) // 256, weights=x, minlength=g).astype(f32)}


STAGE_BLOCK_SUM = _spec(
    "stage_block_sum",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _probs(_bs_prob, (1 << 22,), (1000,), (513,)),
    _bs_ref,
)


def _row_prob(entry: str, out_cols: int | None = None) -> Callable[..., Problem]:
    """Problems of `entry`, one block of 128 per row: `in` is rows x cols, `out` rows x cols
    or rows x `out_cols`."""

    def make(name: str, rows: int, cols: int) -> Problem:
        return Problem(
            {"rows": rows, "cols": cols},
            (rows, 1, 1),
            (128, 1, 1),
            {f"{entry}_param_2": cols},
            {"in": (rows, cols), "out": (rows, out_cols or cols)},
            name=name,
        )

    return make


# stage_row_center: one block of 128 per row (cols <= 1024)


STAGE_ROW_CENTER = _spec(
    "stage_row_center",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _probs(_row_prob("stage_row_center"), (4096, 1024), (3, 300), (2, 129)),
    lambda problem, inp: {"out": inp["in"] - inp["in"].max(axis=1, keepdims=True)},
)


# stage_row_mirror: one block of 128 per row (cols <= 2048), zero-padded to 2048
def _rm_ref(problem: Problem, inp: dict) -> dict:
    x = inp["in"]
    p = np.zeros((x.shape[0], 2048), f32)
    p[:, : x.shape[1]] = x
    return {"out": p + p[:, ::-1]}


STAGE_ROW_MIRROR = _spec(
    "stage_row_mirror",
    ((".u64", "in"), (".u64", "out"), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _probs(_row_prob("stage_row_mirror", 2048), (4096, 2048), (3, 1500), (2, 129)),
    _rm_ref,
)


# stage_stencil5: 16x16 threads, 18x18 tile, zero outside the grid
def _st_prob(name: str, nx: int, ny: int) -> Problem:
    return Problem(
        {"nx": nx, "ny": ny},
        (-(-nx // 16), -(-ny // 16), 1),
        (16, 16, 1),
        {"stage_stencil5_param_2": nx, "stage_stencil5_param_3": ny},
        {"in": (ny, nx), "out": (ny, nx)},
        name=name,
    )


def _st_ref(problem: Problem, inp: dict) -> dict:
    p = np.pad(inp["in"], 1)
    return {"out": ((p[1:-1, :-2] + p[1:-1, 2:]) + p[:-2, 1:-1]) + p[2:, 1:-1]}


STAGE_STENCIL5 = _spec(
    "stage_stencil5",
    ((".u64", "in"), (".u64", "out"), (".u32", None), (".u32", None)),
    (BufferSpec("in", "float32", "in"), BufferSpec("out", "float32", "out")),
    _probs(_st_prob, (4096, 4096), (37, 21), (50, 33)),
    _st_ref,
)


# stage_matvec: 128 threads, one row each, x staged 128 at a time
def _mv_prob(name: str, rows: int, cols: int) -> Problem:
    return Problem(
        {"rows": rows, "cols": cols},
        (-(-rows // 128), 1, 1),
        (128, 1, 1),
        {"stage_matvec_param_3": rows, "stage_matvec_param_4": cols},
        {"a": (rows, cols), "x": (cols,), "y": (rows,)},
        name=name,
    )


def _mv_ref(problem: Problem, inp: dict) -> dict:
    a, x = inp["a"].astype(np.float64), inp["x"].astype(np.float64)
    return {"y": (a @ x).astype(f32)}


STAGE_MATVEC = _spec(
    "stage_matvec",
    ((".u64", "a"), (".u64", "x"), (".u64", "y"), (".u32", None), (".u32", None)),
    (
        BufferSpec("a", "float32", "in"),
        BufferSpec("x", "float32", "in"),
        BufferSpec("y", "float32", "out"),
    ),
    _probs(_mv_prob, (4096, 4096), (200, 300), (131, 129)),
    _mv_ref,
)

STAGING = (STAGE_BLOCK_SUM, STAGE_ROW_CENTER, STAGE_ROW_MIRROR, STAGE_STENCIL5, STAGE_MATVEC)


def registered() -> contextlib.AbstractContextManager[tuple[KernelSpec, ...]]:
    """STAGING registered for the block's duration."""
    return registry.registered(*STAGING)
