"""layernorm: per-row normalisation with gamma and beta, fp32 statistics, fp32 or fp16 storage.

Variants differ in the row mapping (one warp or one block per row), the statistics (two-pass,
Welford, or one-pass sum and sum of squares), block size, items per thread and storage type;
see layernorm.cu. Accesses are guarded and rows grid-strided, so the contract claims no
divisibility; "check" has ragged columns and more rows than the grid covers in one step.

Tolerance (the reference is float64 on the same stored inputs, rounded to the output type):
the fp32 statistics differ from float64 by about cols * 2**-24 relative (the one-pass sum of
squares loses a little more to cancellation: inputs have mean ~0.25 and variance ~0.33, so
E[x^2] is only ~1.2x the variance), rsqrt.approx is within 2**-22.9 relative, and outputs
are up to ~3 in magnitude, so fp32 is held to rtol = atol = 1e-4. An fp16 output may round
to the neighbouring half of the reference's (one ulp <= 2**-10 relative) after that error:
fp16 is held to rtol = 2e-3, atol = 2e-3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from kernels import common
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "layernorm"
HERE, SOURCE, PTX_DIR, MANIFEST = common.family_paths(__file__, "layernorm.cu")
EPS = 1e-5
"""The kernel's epsilon (EPS in layernorm.cu)."""
TOLERANCE_F32 = Tolerance(rtol=1e-4, atol=1e-4)
TOLERANCE_F16 = Tolerance(rtol=2e-3, atol=2e-3)
FULL_ROWS, FULL_COLS = 16384, 1024
MODES = ("warp", "block")
STATS = ("twopass", "welford", "sumsq")


class Variant(NamedTuple):
    mode: str
    stats: str
    block: int
    ipt: int
    half: bool

    @property
    def id(self) -> str:
        dtype = common.precision(self.half)
        return f"{FAMILY}_{self.mode}_{self.stats}_{dtype}_b{self.block}_i{self.ipt}"

    @property
    def defines(self) -> dict[str, int | str]:
        return common.macros(self, {"mode": MODES, "stats": STATS})

    @property
    def block_shape(self) -> tuple[int, int, int]:
        return common.row_block_shape(self.mode, self.block)


VARIANTS = tuple(
    Variant(*v)
    for v in (
        ("block", "twopass", 128, 4, False),
        ("block", "twopass", 256, 2, False),
        ("block", "twopass", 512, 1, False),
        ("block", "welford", 128, 4, False),
        ("block", "welford", 256, 4, False),
        ("block", "welford", 1024, 1, False),
        ("block", "sumsq", 256, 4, False),
        ("block", "twopass", 256, 4, True),
        ("block", "welford", 128, 8, True),
        ("warp", "twopass", 128, 4, False),
        ("warp", "welford", 128, 2, False),
        ("warp", "sumsq", 256, 4, False),
        ("warp", "twopass", 128, 8, True),
        ("warp", "welford", 64, 4, True),
    )
)


def _problem(name: str, v: Variant, rows: int, cols: int, grid: int) -> Problem:
    p = common.param_names(v.id, 6)
    return Problem(
        name=name,
        sizes={"rows": rows, "cols": cols},
        grid=(grid, 1, 1),
        block=v.block_shape,
        scalars={p[4]: rows, p[5]: cols},
        shapes={"x": (rows, cols), "gamma": (cols,), "beta": (cols,), "y": (rows, cols)},
    )


def problems(v: Variant) -> dict[str, Problem]:
    """See `kernels.common.row_problems`."""
    made = lambda name, rows, cols, grid: _problem(name, v, rows, cols, grid)  # noqa: E731
    return common.row_problems(v.mode, v.block, v.ipt, (FULL_ROWS, FULL_COLS), made)


def make_inputs(problem: Problem, rng: np.random.Generator, half: bool) -> dict[str, np.ndarray]:
    """x uniform in [-0.75, 1.25) (a non-zero mean), gamma around 1, beta around 0."""
    dt = np.float16 if half else np.float32
    cols = problem.shapes["gamma"]
    return {
        "x": rng.uniform(-0.75, 1.25, size=problem.shapes["x"]).astype(dt),
        "gamma": rng.uniform(0.5, 1.5, size=cols).astype(dt),
        "beta": rng.uniform(-0.5, 0.5, size=cols).astype(dt),
    }


def reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """float64 layer norm of the stored inputs (biased variance), rounded to the output type."""
    x = np.asarray(inputs["x"])
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    var = ((x64 - mean) ** 2).mean(axis=1, keepdims=True)
    g = np.asarray(inputs["gamma"], np.float64)
    b = np.asarray(inputs["beta"], np.float64)
    return {"y": ((x64 - mean) / np.sqrt(var + EPS) * g + b).astype(x.dtype)}


def make_spec(v: Variant) -> KernelSpec:
    dtype = "float16" if v.half else "float32"
    ins = tuple(BufferSpec(name, dtype, "in") for name in ("x", "gamma", "beta"))
    return common.cuda_spec(
        FAMILY,
        v.id,
        (*ins, BufferSpec("y", dtype, "out")),
        (".u32", ".u32"),
        problems(v),
        reference,
        inputs_fn=lambda prob, rng, half=v.half: make_inputs(prob, rng, half),
        tolerance=TOLERANCE_F16 if v.half else TOLERANCE_F32,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(v) for v in VARIANTS]
