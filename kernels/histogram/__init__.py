"""histogram(KIND, DATA, BINS, BLOCK, ITEMS): atomics-based histograms, global or privatised.

"global" adds every sample to the global histogram with atomicAdd; "shared" and "vec" build a
per-block histogram in shared memory (zeroed, barrier, shared atomics, barrier) and then add
each non-empty bin to the global one; "vec" reads uchar4. The grid strides over the samples,
so any n and grid size work. "partial" is the CUDA samples' histogram256 kernel: per-warp shared
sub-histograms written out as one row of partial counts per block with plain stores (the
sample's merge kernel then sums the rows).
See histogram.cu.

For the atomic kinds the histogram is an accumulator: the kernel ADDS to it, so its role is
`inout` and `make_inputs` gives it zeros (an `out` buffer would start as garbage in the
emulator, as after cudaMalloc). Counts are integers and atomic addition commutes, so the
np.bincount reference is exact for any order of the atomics. "partial" overwrites every count
of its rows (`out`).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import numpy as np

from kernels.common import cuda_spec, family_paths, param_names
from kernels.spec import BufferSpec, KernelSpec, Problem, Tolerance

FAMILY = "histogram"
HERE, SOURCE, PTX_DIR, MANIFEST = family_paths(__file__, "histogram.cu")
TOLERANCE = Tolerance(rtol=0.0, atol=0.0)
KINDS = {"global": 0, "shared": 1, "vec": 2, "partial": 3}
DATA = {"u8": ("uint8", 8), "i32": ("int32", 32)}
OUT_OF_RANGE = 4
"""i32 samples are drawn from [-4, BINS + 4): the kernel must drop the ones outside the bins."""

VARIANTS: tuple[tuple[str, str, int, int, int], ...] = (
    ("global", "u8", 256, 256, 1),
    ("global", "u8", 256, 256, 4),
    ("global", "i32", 64, 128, 2),
    ("global", "i32", 1024, 256, 1),
    ("shared", "u8", 256, 256, 1),
    ("shared", "u8", 256, 128, 4),
    ("shared", "u8", 64, 512, 2),
    ("shared", "i32", 64, 256, 1),
    ("shared", "i32", 1024, 256, 2),
    ("shared", "i32", 1024, 128, 4),
    ("vec", "u8", 256, 256, 1),
    ("vec", "u8", 256, 128, 2),
    ("vec", "u8", 64, 256, 1),
    ("partial", "u8", 256, 256, 1),
    ("partial", "i32", 64, 128, 2),
)
"""(kind, data, BINS, BLOCK, ITEMS) of every kernel."""

PROBLEMS = {"full": (1 << 24, 4224), "small": (4096, 2), "check": (3001, 3)}
"""name -> (n, blocks); full is 32 blocks per SM of an H100 (132 SMs: two waves of the
128-thread variants); "check" is odd, so the
guards and the uchar4 tail run."""


def variant_id(kind: str, data: str, bins: int, block: int, items: int) -> str:
    """Kernel id and PTX entry name, e.g. histogram_shared_u8_256_256_1."""
    return f"{FAMILY}_{kind}_{data}_{bins}_{block}_{items}"


def defines(kind: str, data: str, bins: int, block: int, items: int) -> dict[str, int | str]:
    """The nvcc -D macros of one variant."""
    return {"NAME": variant_id(kind, data, bins, block, items), "KIND": KINDS[kind],
            "DATA": DATA[data][1], "BINS": bins, "BLOCK": block, "ITEMS": items}  # fmt: skip


def make_inputs(
    kind: str, data: str, bins: int, problem: Problem, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Random samples and the zeroed histogram the atomic kinds accumulate into."""
    n = problem.sizes["n"]
    if data == "u8":
        samples = rng.integers(0, 256, size=n).astype(np.uint8)
    else:
        samples = rng.integers(-OUT_OF_RANGE, bins + OUT_OF_RANGE, size=n).astype(np.int32)
    if kind == "partial":
        return {"data": samples}
    return {"data": samples, "hist": np.zeros(bins, np.uint32)}


def _bins(data: str, bins: int, samples: np.ndarray) -> np.ndarray:
    """Each sample's bin, -1 for the dropped ones."""
    v = np.asarray(samples).astype(np.int64)
    if data == "u8":
        v = (v * bins) >> 8
    return np.where((v >= 0) & (v < bins), v, -1)


def reference(
    kind: str,
    data: str,
    bins: int,
    block: int,
    items: int,
    problem: Problem,
    inputs: Mapping[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Exact integer counts: added to the histogram's initial contents (atomic kinds), one row
    per block of the samples that block's grid-stride chunks hold ("partial")."""
    v = _bins(data, bins, inputs["data"])
    if kind == "partial":
        blocks = problem.grid[0]
        owner = (np.arange(v.size) // (block * items)) % blocks
        keep = v >= 0
        flat = np.bincount(owner[keep] * bins + v[keep], minlength=blocks * bins)
        return {"hist": flat.astype(np.uint32).reshape(blocks, bins)}
    counts = np.bincount(v[v >= 0], minlength=bins).astype(np.uint32)
    return {"hist": np.asarray(inputs["hist"], np.uint32) + counts}


def make_spec(kind: str, data: str, bins: int, block: int, items: int) -> KernelSpec:
    """The spec of one variant, pointing at its checked-in PTX."""
    entry = variant_id(kind, data, bins, block, items)
    dt = DATA[data][0]
    p = param_names(entry, 3)
    role = "out" if kind == "partial" else "inout"

    def problem(name: str) -> Problem:
        n, blocks = PROBLEMS[name]
        shapes = {"data": (n,), "hist": (blocks, bins) if kind == "partial" else (bins,)}
        return Problem(
            name=name,
            sizes={"n": n, "bins": bins},
            grid=(blocks, 1, 1),
            block=(block, 1, 1),
            scalars={p[2]: n},
            shapes=shapes,
        )

    return cuda_spec(
        FAMILY,
        entry,
        (BufferSpec("data", dt, "in"), BufferSpec("hist", "uint32", role)),
        (".u32",),
        {name: problem(name) for name in PROBLEMS},
        partial(reference, kind, data, bins, block, items),
        partial(make_inputs, kind, data, bins),
        TOLERANCE,
    )


def specs() -> list[KernelSpec]:
    """All variants, in VARIANTS order."""
    return [make_spec(*v) for v in VARIANTS]
