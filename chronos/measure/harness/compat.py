"""Which CUDA driver can load a PTX text: the PTX ISA version against the driver's version.

A driver JIT-compiles PTX of an ISA version no newer than its own CUDA release (PTX ISA 9.0 =
CUDA 13.0 = driver R580; 8.x = CUDA 12.x). nvcc 13 writes `.version 9.0` into everything, so
the PTX is first lowered to the ISA its contents need (chronos.ptx.isa: ISA 7.0-7.4 for the
corpus and every transform, which CUDA 11.4+ takes); a module that still needs more than the
driver has is refused here with the instruction and line to blame, as one invalid measurement
instead of a raw CUDA_ERROR_UNSUPPORTED_PTX_VERSION. Mapping from the PTX ISA release notes.
"""

from __future__ import annotations

from chronos.ptx.isa import Isa, IsaNeeds, declared_isa, isa_str, lower_isa

_PTX_TO_CUDA: dict[tuple[int, int], tuple[int, int]] = {
    (4, 0): (6, 0),
    (4, 1): (6, 5),
    (4, 2): (7, 0),
    (4, 3): (7, 5),
    (5, 0): (8, 0),
    **{(6, m): (9, m) for m in range(3)},
    (6, 3): (10, 0),
    (6, 4): (10, 1),
    (6, 5): (10, 2),
    **{(7, m): (11, m) for m in range(9)},
    **{(8, m): (12, m) for m in range(6)},
    (8, 6): (12, 7),
    (8, 7): (12, 8),
    (8, 8): (12, 9),
}


class IsaTooNewError(ValueError):
    """The PTX, lowered as far as it goes, still needs a newer driver than the one present."""


def ptx_isa_version(ptx: str) -> tuple[int, int] | None:
    """The `.version` of a PTX module, or None when it has none."""
    return declared_isa(ptx)


def min_cuda_version(isa: tuple[int, int]) -> int:
    """The oldest CUDA driver version (1000 * major + 10 * minor) that loads PTX ISA `isa`."""
    if isa in _PTX_TO_CUDA:
        major, minor = _PTX_TO_CUDA[isa]
    elif isa[0] >= 9:  # ISA 9.x shipped with CUDA 13.x
        major, minor = isa[0] + 4, isa[1]
    elif isa < (4, 0):  # CUDA 5.5 and older: any driver of today takes it
        return 0
    else:
        raise ValueError(f"unknown PTX ISA version {isa[0]}.{isa[1]}")
    return 1000 * major + 10 * minor


def max_isa(driver_version: int) -> Isa:
    """The newest PTX ISA a driver of `driver_version` (cudaDriverGetVersion) JIT-compiles."""
    if driver_version >= 13000:
        return (driver_version // 1000 - 4, (driver_version % 1000) // 10)
    fits = [isa for isa, (ma, mi) in _PTX_TO_CUDA.items() if 1000 * ma + 10 * mi <= driver_version]
    if not fits:
        raise ValueError(f"CUDA driver {cuda_version_str(driver_version)} predates PTX ISA 4.0")
    return max(fits)


def cuda_version_str(v: int) -> str:
    """12040 -> '12.4' (cudaDriverGetVersion's encoding)."""
    return f"{v // 1000}.{(v % 1000) // 10}"


def lower_for_driver(ptx: str, driver_version: int) -> tuple[str, IsaNeeds]:
    """(`ptx` with `.version` lowered to what it needs, what it needs); raises IsaTooNewError
    naming the instruction (or directive, or target) and line that needs more than the driver
    has. `driver_version` <= 0 (unknown) only lowers."""
    lowered, needs = lower_isa(ptx)
    isa = declared_isa(lowered)
    if isa is None or driver_version <= 0 or min_cuda_version(isa) <= driver_version:
        return lowered, needs
    top = max_isa(driver_version)
    if needs.unknown and needs.lowest == needs.declared:
        culprit = f"it keeps `.version {isa_str(isa)}`: {needs.unknown[0].describe()}"
    else:
        culprit = f"it needs {needs.binding.describe() if needs.binding else '?'}"
    need = min_cuda_version(isa)
    r580 = ", an R580+ driver" if need >= 13000 else ""
    raise IsaTooNewError(
        f"the CUDA {cuda_version_str(driver_version)} driver takes PTX up to ISA "
        f"{isa_str(top)}, but this module needs ISA {isa_str(isa)} (CUDA "
        f"{cuda_version_str(need)}{r580}): {culprit}"
    )


def driver_problem(driver_version: int, ptx: str) -> str | None:
    """Why a driver of `driver_version` cannot load `ptx` even lowered, or None when it can
    (or when the driver version is unknown)."""
    try:
        lower_for_driver(ptx, driver_version)
    except IsaTooNewError as exc:
        return str(exc)
    return None
