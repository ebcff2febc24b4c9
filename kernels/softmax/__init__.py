"""softmax: row softmax of a rows x cols matrix, fp32 arithmetic, fp32 or fp16 storage.

Variants differ in the row mapping (one warp or one block per row), block size, items per
thread, the exponential and division (`expf` and IEEE `/`, or `__expf` = ex2.approx and
`__fdividef`) and the storage type; see softmax.cu. Every access is guarded and the rows are
grid-strided, so the contract claims no divisibility; the "check" problem has ragged columns,
a partial last block of rows and a grid smaller than the rows.

Tolerance (the reference is float64 on the same inputs, rounded to the output type): the
kernel's exponentials are within a few ulp (expf) or ~2**-21 relative (ex2.approx after the
rounded `x * log2(e)` product, |x - max| <= 8), its sums differ from the float64 order by
<= cols * 2**-24 relative and are divided once more, so fp32 outputs are held to
rtol = 1e-5 (atol = 1e-7 for the smallest probabilities). An fp16 output may round to the
neighbouring half of the reference's: one fp16 ulp is <= 2**-10 relative, so fp16 is held to
rtol = 2e-3, atol = 1e-5 (subnormal halves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from kernels import common
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "softmax"
HERE, SOURCE, PTX_DIR, MANIFEST = common.family_paths(__file__, "softmax.cu")
TOLERANCE_F32 = Tolerance(rtol=1e-5, atol=1e-7)
TOLERANCE_F16 = Tolerance(rtol=2e-3, atol=1e-5)
INPUT_RANGE = 4.0
"""Inputs are uniform in [-INPUT_RANGE, INPUT_RANGE), so |x - max| <= 2 * INPUT_RANGE."""
FULL_ROWS, FULL_COLS = 16384, 1024
MODES = ("warp", "block")


class Variant(NamedTuple):
    mode: str
    block: int
    ipt: int
    fast: bool
    half: bool

    @property
    def id(self) -> str:
        fast = "_fast" if self.fast else ""
        return f"{FAMILY}_{self.mode}_{common.precision(self.half)}_b{self.block}_i{self.ipt}{fast}"

    @property
    def defines(self) -> dict[str, int | str]:
        return common.macros(self, {"mode": MODES})

    @property
    def block_shape(self) -> tuple[int, int, int]:
        return common.row_block_shape(self.mode, self.block)


VARIANTS = tuple(
    Variant(*v)
    for v in (
        ("warp", 128, 1, False, False),
        ("warp", 128, 4, True, False),
        ("warp", 256, 2, False, False),
        ("warp", 64, 8, True, False),
        ("warp", 128, 2, False, True),
        ("warp", 256, 4, True, True),
        ("block", 128, 4, False, False),
        ("block", 256, 1, True, False),
        ("block", 256, 4, False, False),
        ("block", 512, 2, True, False),
        ("block", 1024, 1, False, False),
        ("block", 256, 2, False, True),
        ("block", 128, 8, True, True),
        ("block", 512, 4, True, True),
    )
)


def _problem(name: str, v: Variant, rows: int, cols: int, grid: int) -> Problem:
    p = common.param_names(v.id, 4)
    return Problem(
        name=name,
        sizes={"rows": rows, "cols": cols},
        grid=(grid, 1, 1),
        block=v.block_shape,
        scalars={p[2]: rows, p[3]: cols},
        shapes={"x": (rows, cols), "y": (rows, cols)},
    )


def problems(v: Variant) -> dict[str, Problem]:
    """See `kernels.common.row_problems`."""
    made = lambda name, rows, cols, grid: _problem(name, v, rows, cols, grid)  # noqa: E731
    return common.row_problems(v.mode, v.block, v.ipt, (FULL_ROWS, FULL_COLS), made)


def make_inputs(problem: Problem, rng: np.random.Generator, half: bool) -> dict[str, np.ndarray]:
    x = rng.uniform(-INPUT_RANGE, INPUT_RANGE, size=problem.shapes["x"])
    return {"x": x.astype(np.float16 if half else np.float32)}


def reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float64 softmax of the stored inputs, rounded to the output type."""
    x = np.asarray(inputs["x"])
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    return {"y": (e / e.sum(axis=1, keepdims=True)).astype(x.dtype)}


def make_spec(v: Variant) -> KernelSpec:
    dtype = "float16" if v.half else "float32"
    return common.cuda_spec(
        FAMILY,
        v.id,
        (BufferSpec("x", dtype, "in"), BufferSpec("y", dtype, "out")),
        (".u32", ".u32"),
        problems(v),
        reference,
        inputs_fn=lambda prob, rng, half=v.half: make_inputs(prob, rng, half),
        tolerance=TOLERANCE_F16 if v.half else TOLERANCE_F32,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(v) for v in VARIANTS]
