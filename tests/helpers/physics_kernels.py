"""Specs for tests/data/physics: the microbenchmarks the cost model is held to.

Our own kernels with the access patterns of the public gpu-benches suite (stream, pointer
chase, L1/L2 cache sums) and a grid-stride saxpy for the Little's-law sweep. Each builder
returns a KernelSpec whose "full" problem is the launch the measured curve timed (grid, block,
buffer sizes, the shared memory that pins blocks per SM) and whose "small" problem is what the
emulator runs; `benchmarks/physics.py` and `tests/test_physics.py` estimate them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chronos.arch import ArchProfile
from chronos.emulate.memory import GLOBAL_BASE, unkind_offset
from kernels import BufferSpec, KernelSpec, Problem, Tolerance
from kernels.common import cuda_spec

PTX = Path(__file__).resolve().parents[1] / "data" / "physics" / "physics.ptx"
FAM = "physics"
STREAM_N = (1 << 27) + 2
"""gpu-stream's array length: 2^27 + 2 doubles, 1 GiB per array."""
STREAM_KINDS = {"init": ("a",), "read": ("b",), "scale": ("b",), "triad": ("b", "d")}
"""Kernel -> the arrays it reads (every kind but read writes `a`)."""
LINE = 128


def _spec(entry: str, buffers, scalars: tuple[str, ...], problems, ref, inputs=None):
    """`kernels.common.cuda_spec` of an entry of physics.ptx (its buffers' pointers, 256-byte
    aligned, then `scalars`; the `in` buffers read-only), verified exactly."""
    exact = Tolerance(0.0, 0.0)
    args = (buffers, scalars, problems, ref, inputs, exact)
    return cuda_spec(FAM, entry, *args, kernel_id=f"{FAM}_{entry}", ptx_path=PTX)


def two_blocks_shared(prof: ArchProfile) -> int:
    """Dynamic shared bytes that leave room for exactly two blocks per SM (gpu-stream's trick)."""
    return prof.shared_per_sm // 2 - prof.shared_reserved_per_block


def stream_spec(kind: str, block: int, prof: ArchProfile, n_full: int = STREAM_N) -> KernelSpec:
    """gpu-stream's `kind` kernel at `block` threads, two blocks per SM, over n_full doubles."""
    entry = f"stream_{kind}"
    arrays = ("a",) + tuple(x for x in STREAM_KINDS[kind] if x != "a")
    smem = two_blocks_shared(prof)

    def prob(name: str, n: int) -> Problem:
        return Problem(
            name=name,
            sizes={"n": n},
            grid=(n // block + 1, 1, 1),
            block=(block, 1, 1),
            scalars={
                **({f"{entry}_param_{len(arrays)}": 3} if kind != "read" else {}),
                f"{entry}_param_{len(arrays) + (kind != 'read')}": n,
            },  # fmt: skip
            shapes={x: (n,) for x in arrays},
            dynamic_shared_bytes=smem,
        )

    scalars = (".u32",) if kind == "read" else (".f64", ".u32")

    def ref(problem: Problem, inp: dict) -> dict:
        n = problem.sizes["n"]
        if kind == "init":
            return {"a": np.full(n, 3.0)}
        if kind == "read":
            return {"a": inp["a"]}
        if kind == "scale":
            return {"a": inp["b"] * 3.0}
        return {"a": inp["b"] * 3.0 + inp["d"]}

    def inputs(problem: Problem, rng: np.random.Generator) -> dict:
        # Dyadic values: b * 3 + d is exact with or without FMA contraction.
        n = problem.sizes["n"]
        return {x: rng.integers(-8, 9, n) / 4 for x in arrays if x != "a" or kind == "read"}

    roles = {"a": "out" if kind in ("init", "scale", "triad") else "inout"}
    buffers = tuple(BufferSpec(x, "float64", roles.get(x, "in")) for x in arrays)
    small = 4 * block - 3  # four blocks, the last one ragged
    problems = {"full": prob("full", n_full), "small": prob("small", small)}
    return _spec(entry, buffers, scalars, problems, ref, inputs)


def saxpy_spec(warps_per_sm: int, prof: ArchProfile, n_full: int = 1 << 26) -> KernelSpec:
    """A grid-stride saxpy with `warps_per_sm` resident warps on every SM (one or two blocks)."""
    entry = "saxpy_gridstride"
    blocks = 1 if warps_per_sm <= 32 else 2
    block = 32 * warps_per_sm // blocks

    def prob(name: str, n: int, grid: int) -> Problem:
        return Problem(
            name=name,
            sizes={"n": n},
            grid=(grid, 1, 1),
            block=(block, 1, 1),
            scalars={f"{entry}_param_2": 3, f"{entry}_param_3": n},
            shapes={"y": (n,), "x": (n,)},
        )

    def ref(problem: Problem, inp: dict) -> dict:
        return {"y": (np.float32(3) * inp["x"] + inp["y"]).astype(np.float32)}

    def inputs(problem: Problem, rng: np.random.Generator) -> dict:
        n = problem.sizes["n"]
        return {v: (rng.integers(-8, 9, n) / 4).astype(np.float32) for v in ("x", "y")}

    buffers = (BufferSpec("y", "float32", "inout"), BufferSpec("x", "float32", "in"))
    small_grid = 2 * blocks
    problems = {
        "full": prob("full", n_full, prof.sms * blocks),
        "small": prob("small", small_grid * block * 8, small_grid),  # 8 iterations a thread
    }
    return _spec(entry, buffers, (".f32", ".u32"), problems, ref, inputs)


def chase_spec(buffer_bytes: int, steps: int) -> KernelSpec:
    """One warp follows a random cycle of pointers through every 128-byte line of
    `buffer_bytes`, `steps` loads (the same problem in the emulator and "on the GPU").

    The buffer holds the addresses themselves, as gpu-benches' does: the emulator places the
    first buffer at a fixed address (chronos.emulate.memory), which the inputs are built for;
    were that to change, the chase would fault and the estimate say so."""
    entry = "pointer_chase"
    base = GLOBAL_BASE + unkind_offset(0, 256)

    def prob(name: str, nbytes: int) -> Problem:
        return Problem(
            name=name,
            sizes={"bytes": nbytes, "steps": steps},
            grid=(1, 1, 1),
            block=(32, 1, 1),
            scalars={f"{entry}_param_2": steps},
            shapes={"next": (nbytes // 8,), "out": (32,)},
        )

    def inputs(problem: Problem, rng: np.random.Generator) -> dict:
        lines = problem.sizes["bytes"] // LINE
        order = rng.permutation(lines)
        nxt = np.zeros(problem.sizes["bytes"] // 8, np.uint64)
        nxt[order * (LINE // 8)] = base + np.roll(order, -1) * LINE  # one cycle through all
        return {"next": nxt}

    def ref(problem: Problem, inp: dict) -> dict:
        p = base
        nxt = inp["next"]
        for _ in range(problem.sizes["steps"]):
            p = int(nxt[(p - base) // 8])
        return {"out": np.full(32, p, np.uint64)}

    buffers = (BufferSpec("next", "uint64", "in"), BufferSpec("out", "uint64", "out"))
    problems = {"full": prob("full", buffer_bytes), "small": prob("small", buffer_bytes)}
    return _spec(entry, buffers, (".u32",), problems, ref, inputs)


L1_SIZES_KB = (4, 16, 32, 64)
"""The data-set sizes the L1 kernel is built for (one entry each, as gpu-benches' template)."""


def l1_spec(kb: int, sms: int, iters: int) -> KernelSpec:
    """gpu-benches' L1 kernel for a `kb` kB data set: one block of 256 threads per SM sums
    the same floats `iters` times (the emulator runs one block: every block does the same)."""
    if kb not in L1_SIZES_KB:
        raise ValueError(f"l1_sum is built for {L1_SIZES_KB} kB, not {kb}")
    entry = f"l1_sum_{kb}kb"
    n = kb * 256

    def prob(name: str, grid: int) -> Problem:
        return Problem(
            name=name,
            sizes={"n": n, "iters": iters},
            grid=(grid, 1, 1),
            block=(256, 1, 1),
            scalars={f"{entry}_param_2": 0, f"{entry}_param_3": iters},
            shapes={"b": (n,), "out": (256,)},
        )

    def inputs(problem: Problem, rng: np.random.Generator) -> dict:
        return {"b": np.zeros(n, np.float32), "out": np.zeros(256, np.float32)}

    def ref(problem: Problem, inp: dict) -> dict:
        return {"out": inp["out"]}

    buffers = (BufferSpec("b", "float32", "in"), BufferSpec("out", "float32", "inout"))
    problems = {"full": prob("full", sms), "small": prob("small", 1)}
    return _spec(entry, buffers, (".u32", ".u32"), problems, ref, inputs)


def l2_spec(
    chunk_bytes: int, chunks: int, block: int, grid: int, iters: int, small_grid: int = 2
) -> KernelSpec:
    """gpu-benches' L2 kernel: blocks sum a*a over their chunk `iters` times; block b reads
    chunk b % chunks (512 kB chunks cycled by many blocks)."""
    entry = "l2_sum"
    n = chunk_bytes // 8

    def prob(name: str, g: int, k: int) -> Problem:
        return Problem(
            name=name,
            sizes={"chunk": n, "chunks": k, "iters": iters},
            grid=(g, 1, 1),
            block=(block, 1, 1),
            scalars={f"{entry}_param_2": n, f"{entry}_param_3": k, f"{entry}_param_4": iters},
            shapes={"a": (n * k,), "out": (g,)},
        )

    def inputs(problem: Problem, rng: np.random.Generator) -> dict:
        return {
            "a": rng.integers(-4, 5, problem.shapes["a"]).astype(np.float64),
            "out": np.zeros(problem.shapes["out"]),
        }

    def ref(problem: Problem, inp: dict) -> dict:
        return {"out": inp["out"]}

    buffers = (BufferSpec("a", "float64", "in"), BufferSpec("out", "float64", "inout"))
    small_k = min(chunks, small_grid)
    problems = {"full": prob("full", grid, chunks), "small": prob("small", small_grid, small_k)}
    return _spec(entry, buffers, (".u32",) * 3, problems, ref, inputs)
