"""gemm_tile(TM, TN, TK): the 64-variant tiled SGEMM corpus, C = A @ B.

An 8x8 thread block computes a BM x BN tile of C (BM = 8*TM, BN = 8*TN), stepping K by
BK = 8*TK through shared memory; each thread copies TM x TK adjacent elements of A and
TK x TN of B per step and owns a TM x TN block of accumulators. Copies are unguarded because
every problem is a multiple of the tile, which is what leaves runs of scalar global loads at
consecutive offsets for the vectorizing and scheduling transforms (see gemm_tile.cu).

Inputs are small dyadic values, `rng.integers(-8, 9) / 4` in float32. Every product is a
multiple of 1/16 of magnitude <= 4, and every partial sum is a multiple of 1/16 of magnitude
<= 4*K, so with K <= 2**18 all of them are exact in float32 (24-bit significand). The result is
therefore independent of summation order and of FMA contraction, and the float64 reference is
bit-exact for ANY correct kernel: "bit-exact" verification of an exact transform means
something, and only rounding-changing transforms need the tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from kernels.common import cuda_spec, family_paths, param_names
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "gemm_tile"
TILES = (2, 4, 6, 8)
THREADS = 8
"""Threads per block side: the block is THREADS x THREADS."""

HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "gemm_tile.cu")
TOLERANCE = Tolerance(rtol=1e-5, atol=1e-5)

FULL_WAVES = 2
"""The "full" grid holds at least this many waves of CTAs on FULL_SMS SMs, at the most CTAs per
SM the thread, block and shared-memory limits allow (registers only lower it, adding waves), so
that a transform changing occupancy changes the number of waves and shows in the timing."""
FULL_SMS = 132
"""SMs of the largest target (H100 SXM / H200)."""
SM_MAX_CTAS = 32
SM_MAX_THREADS = 2048
SM_SHARED_BYTES = 228 * 1024
CTA_RESERVED_SHARED = 1024
"""Shared memory the driver reserves per CTA on sm_80/sm_90."""
FULL_K_STEPS = 4
SMALL_GRID = (2, 2, 1)
SMALL_K_STEPS = 2
CHECK_GRID = (3, 1, 1)
CHECK_K_STEPS = 3
"""The semantic sweeps' second problem: a non-square grid and an odd number of K steps, so
a transform that only holds for the "small" shape is caught (the contract's divisibility
keeps every size a multiple of the tile)."""
MAX_EXACT_K = 2**18
"""Largest K for which dyadic inputs keep every partial sum exact in float32."""


def variant_id(tm: int, tn: int, tk: int) -> str:
    """Kernel id and PTX entry name, e.g. gemm_tile_4_6_8."""
    return f"{FAMILY}_{tm}_{tn}_{tk}"


def variants() -> list[tuple[int, int, int]]:
    """All (TM, TN, TK) in the corpus, in id order."""
    return [(tm, tn, tk) for tm in TILES for tn in TILES for tk in TILES]


VARIANTS = tuple(variants())
"""(TM, TN, TK) of every kernel, in id order."""


def defines(tm: int, tn: int, tk: int) -> dict[str, int | str]:
    """The nvcc -D macros of one variant."""
    return {"TM": tm, "TN": tn, "TK": tk}


def shared_bytes(tm: int, tn: int, tk: int) -> int:
    """Static shared memory of a variant: the A (BM x BK) and B (BK x BN) float32 tiles."""
    return 4 * THREADS * THREADS * tk * (tm + tn)


def full_grid(tm: int, tn: int, tk: int) -> tuple[int, int, int]:
    """A square grid of at least FULL_WAVES waves at the highest possible residency."""
    per_sm = min(
        SM_MAX_CTAS,
        SM_MAX_THREADS // (THREADS * THREADS),
        SM_SHARED_BYTES // (shared_bytes(tm, tn, tk) + CTA_RESERVED_SHARED),
    )
    side = math.isqrt(FULL_WAVES * FULL_SMS * per_sm - 1) + 1
    return (side, side, 1)


def _problem(
    name: str, entry: str, tm: int, tn: int, tk: int, grid: tuple[int, int, int], k_steps: int
) -> Problem:
    bm, bn, bk = THREADS * tm, THREADS * tn, THREADS * tk
    m, n, k = grid[1] * bm, grid[0] * bn, k_steps * bk
    return Problem(
        name=name,
        sizes={"M": m, "N": n, "K": k},
        grid=grid,
        block=(THREADS, THREADS, 1),
        dynamic_shared_bytes=0,
        scalars={f"{entry}_param_3": m, f"{entry}_param_4": n, f"{entry}_param_5": k},
        shapes={"A": (m, k), "B": (k, n), "C": (m, n)},
    )


def make_inputs(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dyadic A and B (see the module docstring for why)."""
    if problem.sizes["K"] > MAX_EXACT_K:
        raise ValueError(f"K={problem.sizes['K']} > {MAX_EXACT_K}: sums would round")
    a = (rng.integers(-8, 9, size=problem.shapes["A"]) / 4).astype(np.float32)
    b = (rng.integers(-8, 9, size=problem.shapes["B"]) / 4).astype(np.float32)
    return {"A": a, "B": b}


def reference(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """C = A @ B in float64, exact for dyadic inputs, so bit-exact for any correct kernel."""
    a = np.asarray(inputs["A"], np.float64)
    b = np.asarray(inputs["B"], np.float64)
    return {"C": (a @ b).astype(np.float32)}


def make_spec(tm: int, tn: int, tk: int) -> KernelSpec:
    """The spec of one variant, pointing at its checked-in PTX."""
    entry = variant_id(tm, tn, tk)
    p = param_names(entry, 6)
    return cuda_spec(
        FAMILY,
        entry,
        tuple(BufferSpec(name, "float32", "out" if name == "C" else "in") for name in "ABC"),
        (".u32", ".u32", ".u32"),
        {
            "full": _problem("full", entry, tm, tn, tk, full_grid(tm, tn, tk), FULL_K_STEPS),
            "small": _problem("small", entry, tm, tn, tk, SMALL_GRID, SMALL_K_STEPS),
            "check": _problem("check", entry, tm, tn, tk, CHECK_GRID, CHECK_K_STEPS),
        },
        reference,
        make_inputs,
        TOLERANCE,
        divisibility={p[3]: THREADS * tm, p[4]: THREADS * tn, p[5]: THREADS * tk},
    )


def specs() -> list[KernelSpec]:
    """All 64 variants."""
    return [make_spec(*v) for v in variants()]
