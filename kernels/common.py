"""What the CUDA families' specs share: their layout, the contract's defaults and the spec.

Every CUDA family is a package `kernels/<family>/` holding one source, `ptx/<id>.ptx` and
`manifest.json` (`family_paths`); its kernels are compiled for sm_80 (`TARGET`), take their
buffers 256-byte aligned (`ALIGNMENT`) and pass the buffers' pointers first, in the order of
the buffers, then the scalars (`cuda_spec`). The row-wise families (softmax, layernorm) also
share their launch shape: a warp or a whole block per row (`row_block_shape`, `row_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kernels.spec import BufferSpec, InputsFn, KernelSpec, Param, Problem, ReferenceFn, Tolerance

TARGET = "sm_80"
ALIGNMENT = 256
"""Every buffer of a CUDA family is claimed aligned to this many bytes."""
KERNELS = Path(__file__).resolve().parent


def family_paths(module_file: str, source: str) -> tuple[Path, Path, Path, Path]:
    """(HERE, SOURCE, PTX_DIR, MANIFEST) of the family package whose `__init__.py` is
    `module_file`, with its CUDA source named `source`."""
    here = Path(module_file).resolve().parent
    return here, here / source, here / "ptx", here / "manifest.json"


def param_names(entry: str, count: int) -> list[str]:
    """nvcc's names of an entry's parameters: <entry>_param_0 ..."""
    return [f"{entry}_param_{i}" for i in range(count)]


def cuda_spec(
    family: str,
    entry: str,
    buffers: Sequence[BufferSpec],
    scalars: Sequence[str],
    problems: Mapping[str, Problem],
    reference_fn: ReferenceFn,
    inputs_fn: InputsFn | None,
    tolerance: Tolerance,
    divisibility: Mapping[str, int] | None = None,
    kernel_id: str | None = None,
    ptx_path: Path | None = None,
) -> KernelSpec:
    """The spec of an nvcc-compiled kernel `entry` of `family`: one `.u64` pointer per buffer,
    in the order of `buffers`, each ALIGNMENT-aligned, then one scalar parameter per PTX type in
    `scalars`; sm_80. Its id and PTX default to the entry and kernels/<family>/ptx/<entry>.ptx
    (the corpus: id = entry = PTX file stem)."""
    k = len(buffers)
    p = param_names(entry, k + len(scalars))
    pointers = tuple(Param(n, ".u64", "buffer", b.name) for n, b in zip(p, buffers, strict=False))
    values = tuple(Param(n, t, "scalar") for n, t in zip(p[k:], scalars, strict=True))
    return KernelSpec(
        id=kernel_id or entry,
        family=family,
        entry=entry,
        ptx_path=ptx_path or KERNELS / family / "ptx" / f"{entry}.ptx",
        params=pointers + values,
        buffers=tuple(buffers),
        problems=problems,
        reference_fn=reference_fn,
        inputs_fn=inputs_fn,
        alignment={q.name: ALIGNMENT for q in pointers},
        divisibility=dict(divisibility or {}),
        tolerance=tolerance,
        target=TARGET,
    )


def precision(half: bool) -> str:
    """The element type in a variant id: "f16" or "f32"."""
    return "f16" if half else "f32"


def macros(variant: Any, choices: Mapping[str, Sequence[str]]) -> dict[str, int | str]:
    """The nvcc -D macros of a variant (a NamedTuple with an `id`): each field, upper-cased,
    as an int (a bool as 0 or 1; a string as its index in `choices[field]`), in field order,
    then NAME, the id (the entry's name)."""
    out: dict[str, int | str] = {}
    for field, value in variant._asdict().items():
        out[field.upper()] = choices[field].index(value) if field in choices else int(value)
    out["NAME"] = variant.id
    return out


def row_block_shape(mode: str, block: int) -> tuple[int, int, int]:
    """A warp per row ("warp": 32 x block/32 threads) or a block per row ("block")."""
    return (32, block // 32, 1) if mode == "warp" else (block, 1, 1)


def rows_per_block(mode: str, block: int) -> int:
    """Rows a block covers: one per warp ("warp") or one ("block")."""
    return block // 32 if mode == "warp" else 1


def row_problems(
    mode: str,
    block: int,
    ipt: int,
    full: tuple[int, int],
    problem: Callable[[str, int, int, int], Problem],
) -> dict[str, Problem]:
    """full: one row per warp/block, thousands of blocks; small: whole steps; check: ragged.

    `problem(name, rows, cols, grid)` makes one; `full` is its (rows, cols)."""
    rpb = rows_per_block(mode, block)
    step = (32 if mode == "warp" else block) * ipt
    return {
        "full": problem("full", full[0], full[1], full[0] // rpb),
        "small": problem("small", 2 * rpb, 2 * step, 2),
        # Two blocks for three blocks' worth of rows: the row loop runs twice, the last ragged.
        "check": problem("check", max(3 * rpb - 1, 3), step + 19, 2),
    }
