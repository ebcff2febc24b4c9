"""stencil2d(MODE, POINTS, DTYPE, BX, BY, ITEMS): one 5- or 9-point Jacobi step on a 2-D grid.

A BX x BY block computes BX columns by BY*ITEMS rows (ITEMS points per thread, BY rows apart);
interior points get the weighted neighbour sum, boundary points are copied, and every point is
guarded, so the problems need not be multiples of the block. MODE "shared" stages a halo tile
in shared memory behind a barrier, "direct" loads every neighbour from global memory. See
stencil2d.cu.

Inputs are dyadic, `rng.integers(-8, 9) / 4`, and the weights are powers of two (5 points:
1/2, 1/8; 9 points: 1/4, 1/8, 1/16): every product and partial sum is a multiple of 1/64 of
magnitude <= 2, exact in float32 and float16 alike, so the float64 reference is bit-exact for
any order of summation or FMA contraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from kernels.common import cuda_spec, family_paths, param_names
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "stencil2d"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "stencil2d.cu")
TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
WEIGHTS = {5: (0.5, 0.125, 0.0), 9: (0.25, 0.125, 0.0625)}
"""POINTS -> (centre, edge, corner) weights, as in stencil2d.cu."""
DTYPES = {"f32": "float32", "f16": "float16"}

VARIANTS: tuple[tuple[str, int, str, int, int, int], ...] = (
    ("direct", 5, "f32", 32, 8, 1),
    ("direct", 5, "f32", 32, 4, 2),
    ("direct", 5, "f32", 16, 16, 1),
    ("direct", 5, "f32", 64, 4, 4),
    ("shared", 5, "f32", 32, 8, 1),
    ("shared", 5, "f32", 32, 4, 4),
    ("shared", 5, "f32", 16, 16, 2),
    ("direct", 9, "f32", 32, 8, 1),
    ("shared", 9, "f32", 32, 8, 2),
    ("direct", 5, "f16", 32, 8, 1),
    ("shared", 5, "f16", 32, 8, 2),
    ("direct", 9, "f16", 64, 4, 2),
    ("shared", 9, "f16", 16, 16, 1),
)
"""(mode, points, dtype, BX, BY, ITEMS) of every kernel."""

PROBLEMS = {"full": (4096, 4096), "small": (64, 32), "check": (45, 27)}
"""name -> (nx, ny); "check" is ragged in both dimensions, so the edge guards matter."""


def variant_id(mode: str, points: int, dtype: str, bx: int, by: int, items: int) -> str:
    """Kernel id and PTX entry name, e.g. stencil2d_shared_9pt_f16_16x16_1."""
    return f"{FAMILY}_{mode}_{points}pt_{dtype}_{bx}x{by}_{items}"


def defines(mode: str, points: int, dtype: str, bx: int, by: int, items: int) -> dict:
    """The nvcc -D macros of one variant."""
    return {
        "NAME": variant_id(mode, points, dtype, bx, by, items),
        "SHARED": int(mode == "shared"),
        "POINTS": points,
        "HALF": int(dtype == "f16"),
        "BX": bx,
        "BY": by,
        "ITEMS": items,
    }


def make_inputs(dtype: str, problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A dyadic grid (see the module docstring)."""
    return {"inp": (rng.integers(-8, 9, size=problem.shapes["inp"]) / 4).astype(dtype)}


def stencil(grid: np.ndarray, points: int) -> np.ndarray:
    """One Jacobi step in float64: weighted neighbours inside, the input on the boundary."""
    c0, c1, c2 = WEIGHTS[points]
    g = np.asarray(grid, np.float64)
    out = g.copy()
    c = g[1:-1, 1:-1]
    edge = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    corner = g[:-2, :-2] + g[:-2, 2:] + g[2:, :-2] + g[2:, 2:]
    out[1:-1, 1:-1] = c0 * c + c1 * edge + c2 * corner
    return out


def reference(
    points: int, dtype: str, problem: Problem, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Exact for the dyadic inputs (see the module docstring)."""
    return {"out": stencil(inputs["inp"], points).astype(dtype)}


def make_spec(mode: str, points: int, dtype: str, bx: int, by: int, items: int) -> KernelSpec:
    """The spec of one variant, pointing at its checked-in PTX."""
    entry = variant_id(mode, points, dtype, bx, by, items)
    dt = DTYPES[dtype]
    p = param_names(entry, 4)

    def problem(name: str) -> Problem:
        nx, ny = PROBLEMS[name]
        rows = by * items
        return Problem(
            name=name,
            sizes={"nx": nx, "ny": ny},
            grid=(-(-nx // bx), -(-ny // rows), 1),
            block=(bx, by, 1),
            scalars={p[2]: nx, p[3]: ny},
            shapes={"inp": (ny, nx), "out": (ny, nx)},
        )

    return cuda_spec(
        FAMILY,
        entry,
        (BufferSpec("inp", dt, "in"), BufferSpec("out", dt, "out")),
        (".u32", ".u32"),
        {name: problem(name) for name in PROBLEMS},
        partial(reference, points, dt),
        partial(make_inputs, dt),
        TOLERANCE,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(*v) for v in VARIANTS]
