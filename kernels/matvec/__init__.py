"""matvec(KIND, DTYPE, BLOCK, ITEMS): y = A x (gemv) in six common styles, fp32 and fp16 A/x.

"row" and "col" give each thread whole rows (ITEMS of them) of a row-major A or of A stored
transposed; "colsmem" also stages x through shared memory, "colblk" gives each thread ITEMS
adjacent rows of the transposed A (register blocking); "warp" and "warpvec" give each row
to one warp, which strides over the columns (scalar, or float4 / __half2 loads) and reduces with
__shfl_down_sync. Every row and column is bounds-checked. See matvec.cu.

Inputs are dyadic, `rng.integers(-8, 9) / 4`: every product is a multiple of 1/16 of magnitude
<= 4, every partial sum a multiple of 1/16 below 4*N, exact in float32 for N <= 2**18, so the
float64 reference is bit-exact whatever the summation order (shuffle tree, unrolling, FMA).
fp16 A and x hold the same values exactly; y is float32.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from kernels.common import cuda_spec, family_paths, param_names
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "matvec"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "matvec.cu")
TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
WARP = 32
MAX_EXACT_N = 2**18
KINDS = {"row": 0, "col": 1, "colsmem": 2, "warp": 3, "warpvec": 4, "colblk": 5}
DTYPES = {"f32": "float32", "f16": "float16"}
VEC = {"f32": 4, "f16": 2}
"""Elements per vector load of the warpvec kind: N must be a multiple of it."""

VARIANTS: tuple[tuple[str, str, int, int], ...] = (
    ("row", "f32", 128, 1),
    ("row", "f32", 256, 2),
    ("col", "f32", 128, 1),
    ("col", "f32", 256, 2),
    ("col", "f16", 256, 1),
    ("colsmem", "f32", 128, 1),
    ("colsmem", "f32", 256, 1),
    ("colsmem", "f16", 128, 2),
    ("warp", "f32", 128, 1),
    ("warp", "f32", 256, 4),
    ("warp", "f16", 128, 2),
    ("warpvec", "f32", 128, 1),
    ("warpvec", "f16", 256, 1),
    ("colblk", "f32", 128, 2),
    ("colblk", "f32", 32, 4),
)
"""(kind, dtype, BLOCK threads, ITEMS) of every kernel (ITEMS: rows per thread for the
thread-per-row kinds, adjacent rows per thread for "colblk", columns per lane step for
"warp")."""

PROBLEMS = {"full": (1 << 20, 64), "small": (64, 96), "check": (77, 45)}
"""name -> (M, N); "check" is ragged against the block, the warp, the shared x tile and every
vector width: nothing in those kernels needs N to be even."""
CHECK_VEC = (77, 52)
"""The warpvec kernels' "check" problem: still ragged, but N a multiple of 4, as they need."""


def variant_id(kind: str, dtype: str, block: int, items: int) -> str:
    """Kernel id and PTX entry name, e.g. matvec_warp_f32_256_4."""
    return f"{FAMILY}_{kind}_{dtype}_{block}_{items}"


def defines(kind: str, dtype: str, block: int, items: int) -> dict[str, int | str]:
    """The nvcc -D macros of one variant."""
    return {"NAME": variant_id(kind, dtype, block, items), "KIND": KINDS[kind],
            "HALF": int(dtype == "f16"), "BLOCK": block, "ITEMS": items}  # fmt: skip


def make_inputs(dtype: str, problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dyadic A and x (see the module docstring)."""
    if problem.sizes["N"] > MAX_EXACT_N:
        raise ValueError(f"N={problem.sizes['N']} > {MAX_EXACT_N}: sums would round")
    return {
        "A": (rng.integers(-8, 9, size=problem.shapes["A"]) / 4).astype(dtype),
        "x": (rng.integers(-8, 9, size=problem.shapes["x"]) / 4).astype(dtype),
    }


def reference(
    transposed: bool, problem: Problem, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """y = A x in float64, exact for the dyadic inputs."""
    a = np.asarray(inputs["A"], np.float64)
    x = np.asarray(inputs["x"], np.float64)
    return {"y": ((a.T if transposed else a) @ x).astype(np.float32)}


def make_spec(kind: str, dtype: str, block: int, items: int) -> KernelSpec:
    """The spec of one variant, pointing at its checked-in PTX."""
    entry = variant_id(kind, dtype, block, items)
    dt = DTYPES[dtype]
    p = param_names(entry, 5)
    transposed = kind in ("col", "colsmem", "colblk")

    def problem(name: str) -> Problem:
        m, n = CHECK_VEC if (name, kind) == ("check", "warpvec") else PROBLEMS[name]
        if kind in ("warp", "warpvec"):
            blocks = -(-m // (block // WARP))
        else:
            blocks = -(-m // (block * items))
        return Problem(
            name=name,
            sizes={"M": m, "N": n},
            grid=(blocks, 1, 1),
            block=(block, 1, 1),
            scalars={p[3]: m, p[4]: n},
            shapes={"A": (n, m) if transposed else (m, n), "x": (n,), "y": (m,)},
        )

    return cuda_spec(
        FAMILY,
        entry,
        (BufferSpec("A", dt, "in"), BufferSpec("x", dt, "in"), BufferSpec("y", "float32", "out")),
        (".u32", ".u32"),
        {name: problem(name) for name in PROBLEMS},
        partial(reference, transposed),
        partial(make_inputs, dt),
        TOLERANCE,
        divisibility={p[4]: VEC[dtype]} if kind == "warpvec" else {},
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(*v) for v in VARIANTS]
