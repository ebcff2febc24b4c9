"""transpose: out = in.T for a rows x cols matrix through a padded shared-memory tile.

Variants differ in the tile (16, 32, 64), the rows of the tile each block covers per step
(BLOCK_ROWS: each thread moves TILE / BLOCK_ROWS elements), the element type (fp32, fp16) and
whether the shared tile is padded by one column against bank conflicts; see transpose.cu.
Every access is guarded, so the contract claims no divisibility and the "check" problem has
ragged edges in both dimensions. A transpose moves values without arithmetic: verification
is bit-exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from kernels.common import cuda_spec, family_paths, macros, param_names, precision
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "transpose"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "transpose.cu")
TOLERANCE = Tolerance(rtol=0.0, atol=0.0)
FULL_ROWS, FULL_COLS = 4096, 3072


class Variant(NamedTuple):
    tile: int
    block_rows: int
    half: bool
    pad: bool = True

    @property
    def id(self) -> str:
        pad = "" if self.pad else "_nopad"
        return f"{FAMILY}_{precision(self.half)}_t{self.tile}x{self.block_rows}{pad}"

    @property
    def defines(self) -> dict[str, int | str]:
        return macros(self, {})


VARIANTS = tuple(
    Variant(*v)
    for v in (
        (32, 8, False),
        (32, 4, False),
        (32, 16, False),
        (32, 32, False),
        (16, 4, False),
        (16, 8, False),
        (16, 16, False),
        (64, 4, False),
        (64, 8, False),
        (32, 8, False, False),
        (32, 8, True),
        (64, 8, True),
        (16, 4, True),
        (32, 16, True),
        (32, 8, True, False),
    )
)


def _problem(name: str, v: Variant, rows: int, cols: int) -> Problem:
    p = param_names(v.id, 4)
    grid = (-(-cols // v.tile), -(-rows // v.tile), 1)
    return Problem(
        name=name,
        sizes={"rows": rows, "cols": cols},
        grid=grid,
        block=(v.tile, v.block_rows, 1),
        scalars={p[2]: rows, p[3]: cols},
        shapes={"in": (rows, cols), "out": (cols, rows)},
    )


def problems(v: Variant) -> dict[str, Problem]:
    """full: thousands of tiles; small: whole tiles; check: ragged edges in both dimensions."""
    t = v.tile
    return {
        "full": _problem("full", v, FULL_ROWS, FULL_COLS),
        "small": _problem("small", v, 2 * t, 3 * t),
        "check": _problem("check", v, t + 7, 2 * t + 5),
    }


def make_inputs(problem: Problem, rng: np.random.Generator, half: bool) -> dict[str, np.ndarray]:
    x = rng.uniform(-1.0, 1.0, size=problem.shapes["in"])
    return {"in": x.astype(np.float16 if half else np.float32)}


def reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"out": np.ascontiguousarray(np.asarray(inputs["in"]).T)}


def make_spec(v: Variant) -> KernelSpec:
    dtype = "float16" if v.half else "float32"
    return cuda_spec(
        FAMILY,
        v.id,
        (BufferSpec("in", dtype, "in"), BufferSpec("out", dtype, "out")),
        (".u32", ".u32"),
        problems(v),
        reference,
        inputs_fn=lambda prob, rng, half=v.half: make_inputs(prob, rng, half),
        tolerance=TOLERANCE,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(v) for v in VARIANTS]
