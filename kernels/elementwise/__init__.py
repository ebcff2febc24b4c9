"""elementwise(KIND, BLOCK, ITEMS): grid-stride saxpy, fp16 axpy and a fused relu(a*x + b*z).

Every kernel loops over the array in chunks of BLOCK*ITEMS elements (BLOCK threads, ITEMS
elements each, `#pragma unroll`) with a bounds check per element, so the grid is independent
of n; the vectorized variants (float4, __half2) finish the n % 4 (n % 2) tail with scalar code;
saxpy_contig gives each thread ITEMS contiguous elements (thread coarsening), a run that lies
wholly inside the array unguarded and the ragged last run element by element. See
elementwise.cu.

Inputs are dyadic, `rng.integers(-8, 9) / 4`, and the scalars a = 3, b = -2 are small
integers: every product and sum is a multiple of 1/4 of magnitude <= 10, exact in float32 and
in float16 (11-bit significand), so the float64 reference is bit-exact whatever the order of
operations or FMA contraction.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from kernels.common import cuda_spec, family_paths, param_names
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "elementwise"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "elementwise.cu")
TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
ALPHA = 3
BETA = -2
"""Integer-valued float scalars (launch scalars are ints; the PTX parameter is .f32)."""

KINDS = {"saxpy": 0, "saxpy_vec4": 1, "haxpy": 2, "haxpy_h2": 3, "fused": 4, "saxpy_contig": 5}
VECTOR = {"saxpy": 1, "saxpy_vec4": 4, "haxpy": 1, "haxpy_h2": 2, "fused": 1, "saxpy_contig": 1}
"""Elements per load: the vectorized kinds cover n // VECTOR vectors in the main loop."""
DTYPE = {"saxpy": "float32", "saxpy_vec4": "float32", "haxpy": "float16", "haxpy_h2": "float16",
         "fused": "float32", "saxpy_contig": "float32"}  # fmt: skip

VARIANTS: tuple[tuple[str, int, int], ...] = (
    ("saxpy", 128, 1),
    ("saxpy", 256, 1),
    ("saxpy", 256, 4),
    ("saxpy", 512, 2),
    ("saxpy_vec4", 128, 1),
    ("saxpy_vec4", 256, 2),
    ("haxpy", 256, 1),
    ("haxpy", 256, 4),
    ("haxpy_h2", 128, 1),
    ("haxpy_h2", 256, 2),
    ("fused", 128, 1),
    ("fused", 256, 2),
    ("fused", 256, 4),
    ("saxpy_contig", 128, 2),
    ("saxpy_contig", 256, 4),
)
"""(kind, BLOCK, ITEMS) of every kernel."""

PROBLEMS = {"full": (1 << 24, 4224), "small": (4096, 2), "check": (3001, 3)}
"""name -> (n, blocks); "check" is odd and ragged, so the scalar tails and guards run."""


def variant_id(kind: str, block: int, items: int) -> str:
    """Kernel id and PTX entry name, e.g. elementwise_saxpy_256_4."""
    return f"{FAMILY}_{kind}_{block}_{items}"


def defines(kind: str, block: int, items: int) -> dict[str, int | str]:
    """The nvcc -D macros of one variant."""
    return {"NAME": variant_id(kind, block, items), "KIND": KINDS[kind], "BLOCK": block,
            "ITEMS": items}  # fmt: skip


def _dyadic(rng: np.random.Generator, n: int, dtype: str) -> np.ndarray:
    return (rng.integers(-8, 9, size=n) / 4).astype(dtype)


def make_inputs(kind: str, problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dyadic x, y (z): exact in the kernel's type (see the module docstring)."""
    n, dt = problem.sizes["n"], DTYPE[kind]
    if kind == "fused":
        return {"x": _dyadic(rng, n, dt), "z": _dyadic(rng, n, dt)}
    return {"x": _dyadic(rng, n, dt), "y": _dyadic(rng, n, dt)}


def reference(
    kind: str, problem: Problem, inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """float64 arithmetic, exact for the dyadic inputs, rounded once to the output type."""
    x = np.asarray(inputs["x"], np.float64)
    if kind == "fused":
        z = np.asarray(inputs["z"], np.float64)
        return {"out": np.maximum(ALPHA * x + BETA * z, 0.0).astype(DTYPE[kind])}
    y = np.asarray(inputs["y"], np.float64)
    return {"y": (ALPHA * x + y).astype(DTYPE[kind])}


def make_spec(kind: str, block: int, items: int) -> KernelSpec:
    """The spec of one variant, pointing at its checked-in PTX."""
    entry = variant_id(kind, block, items)
    dt = DTYPE[kind]
    p = param_names(entry, 6)
    if kind == "fused":
        scalar_types = (".f32", ".f32", ".u32")
        buffers = (BufferSpec("x", dt, "in"), BufferSpec("z", dt, "in"),
                   BufferSpec("out", dt, "out"))  # fmt: skip
    else:
        scalar_types = (".f32", ".u32")
        buffers = (BufferSpec("x", dt, "in"), BufferSpec("y", dt, "inout"))

    def problem(name: str) -> Problem:
        n, blocks = PROBLEMS[name]
        scalars = {p[3]: ALPHA, p[4]: BETA, p[5]: n} if kind == "fused" else {p[2]: ALPHA, p[3]: n}
        return Problem(
            name=name,
            sizes={"n": n},
            grid=(blocks, 1, 1),
            block=(block, 1, 1),
            scalars=scalars,
            shapes={b.name: (n,) for b in buffers},
        )

    return cuda_spec(
        FAMILY,
        entry,
        buffers,
        scalar_types,
        {name: problem(name) for name in PROBLEMS},
        partial(reference, kind),
        partial(make_inputs, kind),
        TOLERANCE,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(*v) for v in VARIANTS]
