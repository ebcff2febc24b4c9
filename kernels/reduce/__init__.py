"""reduce: fp32 sums of a vector or of each row of a matrix, combined across blocks by atomics.

Variants differ in block size, items per thread, input type (fp32 or fp16, accumulated in
fp32), the in-block combine (warp shuffles + shared partials, shared-memory tree, or shared
atomics) and shape (1-D grid-stride sum or 2-D row sums); see reduce.cu.

Output roles: the kernels `atomicAdd` into their output, so it must hold zeros before the
launch. It is an `inout` buffer whose input is zeros, not an `out`: the emulator zero-fills
`out` buffers, but the GPU harness poisons them (0xFF) to catch unwritten elements, and only
restores `inout` buffers from the spec's inputs before each verified launch.

Inputs are dyadic, `rng.integers(-2, 3) / 2` (exact in fp16 too), so every partial sum is a
multiple of 1/2 of magnitude <= n <= 2**22 and exact in fp32: the result is independent of
the summation and atomic order, and the float64 reference is bit-exact for any correct kernel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from kernels.common import cuda_spec, family_paths, macros, param_names, precision
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "reduce"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "reduce.cu")
TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)
MODES = ("shfl", "tree", "satom")
MAX_EXACT_TERMS = 2**23
"""Largest element count whose dyadic sums stay exact in fp32 (multiples of 1/2 below 2**23)."""

FULL_N = 2**22
FULL_MAX_GRID = 4096
FULL_ROWS, FULL_COLS = 2048, 8192


class Variant(NamedTuple):
    block: int
    ipt: int
    half: bool
    mode: str
    rows: bool

    @property
    def id(self) -> str:
        kind = "rows" if self.rows else "sum"
        return f"{FAMILY}_{kind}_{precision(self.half)}_b{self.block}_i{self.ipt}_{self.mode}"

    @property
    def defines(self) -> dict[str, int | str]:
        return macros(self, {"mode": MODES})


VARIANTS = tuple(
    Variant(*v)
    for v in (
        (128, 1, False, "shfl", False),
        (256, 4, False, "shfl", False),
        (512, 8, False, "shfl", False),
        (256, 2, False, "tree", False),
        (512, 4, False, "tree", False),
        (1024, 1, False, "tree", False),
        (256, 4, False, "satom", False),
        (128, 8, False, "satom", False),
        (256, 4, True, "shfl", False),
        (512, 8, True, "tree", False),
        (128, 2, True, "satom", False),
        (128, 4, False, "shfl", True),
        (256, 2, True, "tree", True),
        (512, 1, False, "satom", True),
    )
)


def _problem(name: str, v: Variant, grid: tuple[int, int, int], sizes: dict[str, int]) -> Problem:
    p = param_names(v.id, 4)
    if v.rows:
        rows, cols = sizes["rows"], sizes["cols"]
        scalars = {p[2]: rows, p[3]: cols}
        shapes = {"x": (rows, cols), "out": (rows,)}
    else:
        scalars = {p[2]: sizes["n"]}
        shapes = {"x": (sizes["n"],), "out": (1,)}
    return Problem(
        name=name, sizes=sizes, grid=grid, block=(v.block, 1, 1), scalars=scalars, shapes=shapes
    )


def problems(v: Variant) -> dict[str, Problem]:
    """full: several waves on an H100; small and check: emulator-sized, check with ragged tails."""
    chunk = v.block * v.ipt
    if v.rows:
        gx = max(1, min(FULL_COLS // chunk, 4))
        return {
            "full": _problem("full", v, (gx, FULL_ROWS, 1), {"rows": FULL_ROWS, "cols": FULL_COLS}),
            "small": _problem("small", v, (1, 3, 1), {"rows": 3, "cols": 2 * chunk}),
            "check": _problem("check", v, (2, 5, 1), {"rows": 5, "cols": 2 * chunk + 13}),
        }
    grid = min(FULL_N // chunk, FULL_MAX_GRID)
    return {
        "full": _problem("full", v, (grid, 1, 1), {"n": FULL_N}),
        "small": _problem("small", v, (2, 1, 1), {"n": 4 * chunk}),
        "check": _problem("check", v, (3, 1, 1), {"n": 5 * chunk - 37}),
    }


def make_inputs(problem: Problem, rng: np.random.Generator, half: bool) -> dict[str, np.ndarray]:
    """Dyadic x (see the module docstring) and the zeros the atomics accumulate into."""
    shape = problem.shapes["x"]
    if int(np.prod(shape)) > MAX_EXACT_TERMS:
        raise ValueError(f"{shape} has more than {MAX_EXACT_TERMS} terms: sums would round")
    x = (rng.integers(-2, 3, size=shape) / 2).astype(np.float16 if half else np.float32)
    return {"x": x, "out": np.zeros(problem.shapes["out"], np.float32)}


def reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float64 sum (exact for dyadic inputs) over the last axis."""
    x = np.asarray(inputs["x"], np.float64)
    total = x.sum(axis=-1).reshape(problem.shapes["out"])
    return {"out": total.astype(np.float32)}


def make_spec(v: Variant) -> KernelSpec:
    x = BufferSpec("x", "float16" if v.half else "float32", "in")
    return cuda_spec(
        FAMILY,
        v.id,
        (x, BufferSpec("out", "float32", "inout")),
        (".u32", ".u32") if v.rows else (".u32",),
        problems(v),
        reference,
        inputs_fn=lambda prob, rng, half=v.half: make_inputs(prob, rng, half),
        tolerance=TOLERANCE,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(v) for v in VARIANTS]
