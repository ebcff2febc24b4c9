"""Finding and running the ptxas executable.

Each ptxas takes PTX up to one ISA version (CUDA 13.0's takes `.version 9.0`, the 13.5 wheel's
9.5; Triton emits 9.4), so `find_ptxas(isa)` walks the candidates in order and returns the
first whose ISA covers the module's `.version`. What a binary takes is asked of the binary
itself (a probe module with an impossible version makes ptxas name its own), so no release
table needs updating.

Chronos needs no CUDA toolkit: the `nvidia-cuda-nvcc` wheel on PyPI ships ptxas, as
`nvidia/cu13/bin/ptxas` (CUDA 13 wheels) or `nvidia/cuda_nvcc/bin/ptxas` (the CUDA 12
`nvidia-cuda-nvcc-cu12` wheels). `nvidia` is a namespace package without `__init__`, so
`importlib.util.find_spec` locates it without importing anything.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from chronos.assemble.errors import INSTALL_HINT, PtxasNotFoundError
from chronos.ptx.isa import declared_isa

ENV_VAR = "CHRONOS_PTXAS"
DEFAULT_DIRS: tuple[Path, ...] = (Path("/usr/local/cuda/bin"),)
WHEEL_LAYOUTS: tuple[str, ...] = ("cu13/bin", "cuda_nvcc/bin")


class PtxasIsaError(PtxasNotFoundError):
    """ptxas binaries exist, but none takes the module's PTX ISA version (a setup problem)."""


_CURRENT = re.compile(r"current version is '(\d+)\.(\d+)'")


def ptx_isa(ptx: str) -> tuple[int, int] | None:
    """The `.version` of a PTX module, e.g. (9, 4); None when it has none."""
    return declared_isa(ptx)


def max_ptx_isa(ptxas: Path) -> tuple[int, int] | None:
    """The newest PTX ISA `ptxas` assembles (None if it would not say)."""
    stat = ptxas.stat()
    return _max_isa(str(ptxas), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _max_isa(ptxas: str, mtime_ns: int, size: int) -> tuple[int, int] | None:
    with tempfile.TemporaryDirectory(prefix="chronos-ptxas-isa-") as tmp:
        Path(tmp, "probe.ptx").write_text(".version 99.9\n.target sm_80\n.address_size 64\n")
        out = subprocess.run(
            [ptxas, "-arch=sm_80", "-o", "probe.cubin", "probe.ptx"],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    m = _CURRENT.search(out.stdout + out.stderr)
    return (int(m[1]), int(m[2])) if m else None


def candidates() -> list[Path]:
    """Every ptxas in search order ($CHRONOS_PTXAS alone when set), without duplicates."""
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        return [find_ptxas()]
    found: list[Path] = []
    dirs = list(DEFAULT_DIRS)
    if cuda_home := os.environ.get("CUDA_HOME"):
        dirs.insert(0, Path(cuda_home) / "bin")
    for hit in (shutil.which("ptxas"), *(shutil.which("ptxas", path=str(d)) for d in dirs)):
        if hit and Path(hit).resolve() not in found:
            found.append(Path(hit).resolve())
    for wheel in wheel_ptxases():
        if wheel not in found:
            found.append(wheel)
    return found


def find_ptxas_for(isa: tuple[int, int] | None) -> Path:
    """The first ptxas (in `find_ptxas` order) that takes PTX ISA `isa`; any when None.

    Raises PtxasIsaError naming each binary and the ISA it takes when none is new enough.
    """
    first = find_ptxas()
    if isa is None:
        return first
    seen = []
    for exe in candidates():
        top = max_ptx_isa(exe)
        if top is None or top >= isa:
            return exe
        seen.append(f"{exe} (ISA {top[0]}.{top[1]}, ptxas {ptxas_version(exe)})")
    raise PtxasIsaError(
        f"the PTX is ISA {isa[0]}.{isa[1]} (.version), which none of the ptxas found takes: "
        f"{'; '.join(seen)}. Install a newer ptxas (`pip install -U nvidia-cuda-nvcc`) or "
        f"point {ENV_VAR} at one."
    )


def find_ptxas() -> Path:
    """The ptxas to use: $CHRONOS_PTXAS, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin, the wheel.

    An explicit $CHRONOS_PTXAS that is not an executable is an error, not something to search
    past: the user asked for that binary.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file() and os.access(path, os.X_OK):
            return path.resolve()
        raise PtxasNotFoundError(
            f"{ENV_VAR}={explicit} is not an executable file. Point it at ptxas, or unset it "
            f"to search PATH, $CUDA_HOME/bin, /usr/local/cuda/bin and the nvidia-cuda-nvcc "
            f"wheel. {INSTALL_HINT}"
        )
    on_path = shutil.which("ptxas")
    if on_path:
        return Path(on_path).resolve()
    dirs = list(DEFAULT_DIRS)
    if cuda_home := os.environ.get("CUDA_HOME"):
        dirs.insert(0, Path(cuda_home) / "bin")
    for d in dirs:
        if found := shutil.which("ptxas", path=str(d)):
            return Path(found).resolve()
    if wheel := wheel_ptxas():
        return wheel
    raise PtxasNotFoundError(
        f"ptxas not found (looked at ${ENV_VAR}, PATH, "
        f"{', '.join(str(d) for d in dirs)} and the nvidia-cuda-nvcc wheel). {INSTALL_HINT}"
    )


def ptxas_available() -> bool:
    """Can `find_ptxas` find one (PATH, CUDA dirs or the nvidia-cuda-nvcc wheel)?"""
    try:
        find_ptxas()
    except PtxasNotFoundError:
        return False
    return True


def wheel_ptxas() -> Path | None:
    """ptxas from an installed `nvidia-cuda-nvcc` (or `-cu12`) wheel, if any (13.x first)."""
    found = wheel_ptxases()
    return found[0] if found else None


def wheel_ptxases() -> list[Path]:
    """Every wheel ptxas: `nvidia-cuda-nvcc` 13.x and `nvidia-cuda-nvcc-cu12` can both be
    installed (their files do not overlap), and a CUDA 12 driver needs the latter's cubins."""
    try:
        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    found: list[Path] = []
    for root in spec.submodule_search_locations:
        for layout in WHEEL_LAYOUTS:
            hit = shutil.which("ptxas", path=str(Path(root) / layout))
            if hit and Path(hit).resolve() not in found:
                found.append(Path(hit).resolve())
    return found


def cuda_major(ptxas: Path) -> int | None:
    """The CUDA major release of a ptxas (12 for "12.9.86"); None when it would not say."""
    m = re.match(r"(\d+)\.", ptxas_version(ptxas))
    return int(m[1]) if m else None


def ptxas_for_driver(driver_major: int, isa: tuple[int, int] | None) -> tuple[Path | None, str]:
    """(the ptxas whose cubins a CUDA `driver_major` driver loads, why), or (None, why not).

    A driver loads cubins of its own CUDA major and older ones (a 12.2 driver takes 12.9's:
    CUDA minor-version compatibility), never a newer major's (CUDA 13 cubins are a new ELF
    ABI). Among the candidates that also take PTX ISA `isa`, the newest release wins.
    """
    usable: list[tuple[tuple[int, ...], Path]] = []
    seen = []
    for exe in candidates():
        version, major, top = ptxas_version(exe), cuda_major(exe), max_ptx_isa(exe)
        seen.append(f"{exe} ({version})")
        if major is None or major > driver_major or (isa and top and top < isa):
            continue
        usable.append((tuple(int(x) for x in re.findall(r"\d+", version)), exe))
    if usable:
        exe = max(usable)[1]
        return exe, f"ptxas {ptxas_version(exe)} ({exe}): cubins a CUDA {driver_major} driver loads"
    return None, (
        f"no ptxas of CUDA {driver_major} or older that takes this PTX among "
        f"{'; '.join(seen) or 'none found'} (`pip install nvidia-cuda-nvcc-cu12` for a CUDA "
        "12 driver)"
    )


@dataclass(frozen=True)
class PtxasRun:
    """One ptxas invocation: exit status, merged stdout+stderr, wall time, cubin (if any)."""

    returncode: int
    log: str
    seconds: float
    cubin: bytes | None


def run_ptxas(
    ptxas: Path,
    ptx: str,
    arch: str,
    opt_level: int,
    extra_args: Sequence[str],
    timeout: float | None,
) -> PtxasRun:
    """Assemble `ptx` in a private temporary directory; raises subprocess.TimeoutExpired.

    The file is called kernel.ptx and ptxas runs inside the directory, so diagnostics read
    `ptxas kernel.ptx, line 12; error : ...` whatever the temporary path was.
    """
    with tempfile.TemporaryDirectory(prefix="chronos-ptxas-") as tmp:
        src, out = Path(tmp, "kernel.ptx"), Path(tmp, "kernel.cubin")
        src.write_text(ptx, encoding="utf-8")
        cmd = [
            str(ptxas),
            f"-arch={arch}",
            "-v",
            f"-O{opt_level}",
            *extra_args,
            "-o",
            out.name,
            src.name,
        ]
        start = time.perf_counter()
        proc = subprocess.run(
            cmd,
            cwd=tmp,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout,
            check=False,
        )
        seconds = time.perf_counter() - start
        cubin = out.read_bytes() if proc.returncode == 0 and out.exists() else None
    return PtxasRun(proc.returncode, proc.stdout, seconds, cubin)


def ptxas_version(ptxas: Path) -> str:
    """The release of a ptxas binary, e.g. "13.0.88" (from `ptxas --version`)."""
    stat = ptxas.stat()
    return _version(str(ptxas), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _version(ptxas: str, mtime_ns: int, size: int) -> str:
    out = subprocess.run(
        [ptxas, "--version"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    m = re.search(r"V(\d+\.\d+\.\d+)", out) or re.search(r"release (\d+\.\d+)", out)
    return m[1] if m else "unknown"
