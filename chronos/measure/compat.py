"""Which CUDA driver can load a PTX text: the PTX ISA version against the driver's version.

A driver JIT-compiles, and loads cubins built from, PTX of an ISA version no newer than its own
CUDA release (PTX ISA 9.0 = CUDA 13.0 = driver R580). The corpus PTX is ISA 9.0 (nvcc 13), so on
an older driver every module load fails; this says so once, before anything is timed, instead
of turning each kernel into an invalid measurement. Mapping from the PTX ISA release notes.
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^\s*\.version\s+(\d+)\.(\d+)", re.M)
_PTX_TO_CUDA: dict[tuple[int, int], tuple[int, int]] = {
    **{(7, m): (11, m) for m in range(9)},
    **{(8, m): (12, m) for m in range(6)},
    (8, 6): (12, 7),
    (8, 7): (12, 8),
    (8, 8): (12, 9),
}


def ptx_isa_version(ptx: str) -> tuple[int, int] | None:
    """The `.version` of a PTX module, or None when it has none."""
    m = _VERSION.search(ptx)
    return (int(m[1]), int(m[2])) if m else None


def min_cuda_version(isa: tuple[int, int]) -> int:
    """The oldest CUDA driver version (1000 * major + 10 * minor) that loads PTX ISA `isa`."""
    if isa in _PTX_TO_CUDA:
        major, minor = _PTX_TO_CUDA[isa]
    elif isa[0] >= 9:  # ISA 9.x shipped with CUDA 13.x
        major, minor = isa[0] + 4, isa[1]
    else:
        raise ValueError(f"unknown PTX ISA version {isa[0]}.{isa[1]}")
    return 1000 * major + 10 * minor


def cuda_version_str(v: int) -> str:
    """12040 -> '12.4' (cudaDriverGetVersion's encoding)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def driver_problem(driver_version: int, ptx: str) -> str | None:
    """Why a driver of `driver_version` cannot load `ptx`, or None when it can (or when the PTX
    names no ISA version)."""
    isa = ptx_isa_version(ptx)
    if isa is None or driver_version <= 0:
        return None
    need = min_cuda_version(isa)
    if driver_version >= need:
        return None
    return (
        f"the CUDA driver supports CUDA {cuda_version_str(driver_version)}, but this PTX is ISA "
        f"{isa[0]}.{isa[1]}, which needs CUDA {cuda_version_str(need)} or newer"
        + (" (an R580+ driver)" if need >= 13000 else "")
        + ": update the driver, or use the 'emulated' or 'replay' backend"
    )
