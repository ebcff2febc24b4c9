"""PTX -> cubin with the figures the rest of Chronos reads off it.

The environment needs registers and spills (features, occupancy), a SASS instruction count
(a cheap cost signal) and a hash of the machine code: the action-coverage report counts a
transform as effective only when the `.text` hash moves, since a PTX change that ptxas
normalises away cannot change the timing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from chronos.assemble import ptxas as ptxas_module
from chronos.assemble.elf import text_sections
from chronos.assemble.errors import PtxasError, PtxasTimeoutError
from chronos.assemble.ptxas import find_ptxas_for, ptx_isa, ptxas_version, run_ptxas
from chronos.assemble.resources import Resources, parse_resources
from chronos.assemble.sass import count_instructions
from chronos.caching import BoundedCache, CacheInfo
from chronos.ptx import ptx_sha256

DEFAULT_ARCH = "sm_90"
DEFAULT_TIMEOUT_S = 120.0
CACHE_SIZE = 2048
_ARCH = re.compile(r"^sm_(?P<sm>\d+)[af]?$")
_RESERVED_ARGS = re.compile(r"^(-o|--output-file|-arch|--gpu-name|-O\d*|--opt-level)(=.*)?$")


@dataclass(frozen=True)
class Assembly:
    """One successful ptxas run. Per-function dicts are keyed by PTX function name.

    `text_sha256` and `sass_instructions` cover every `.text.<name>` section (entries and any
    device function ptxas kept separate); `resources` covers entries. `module_text_sha256`
    hashes all `.text` sections together: equal hashes mean identical SASS.
    """

    cubin: bytes
    arch: str
    opt_level: int
    resources: dict[str, Resources]
    sass_instructions: dict[str, int]
    text_sha256: dict[str, str]
    module_text_sha256: str
    ptx_sha256: str
    ptxas_version: str
    log: str
    ptxas_seconds: float

    @property
    def entries(self) -> list[str]:
        return list(self.resources)


def _deterministic(exc: BaseException) -> bool:
    """Rejections repeat exactly on a rerun; timeouts and OS failures might not."""
    return isinstance(exc, PtxasError) and not isinstance(exc, PtxasTimeoutError)


_cache: BoundedCache[Assembly] = BoundedCache(CACHE_SIZE, remember=_deterministic, name="assemble")


def assemble(
    ptx: str,
    arch: str = DEFAULT_ARCH,
    opt_level: int = 3,
    extra_args: Sequence[str] = (),
    *,
    ptxas: Path | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
) -> Assembly:
    """Assemble `ptx` for `arch` (sm_70 or newer), from the in-process cache when possible.

    Raises PtxasError when ptxas rejects the PTX (PtxasTimeoutError past `timeout` seconds),
    PtxasNotFoundError when there is no ptxas, ValueError for bad arguments.
    """
    m = _ARCH.match(arch)
    if not m or int(m["sm"]) < 70:
        raise ValueError(f"arch must be sm_70 or newer, like 'sm_90' or 'sm_90a'; got {arch!r}")
    if opt_level not in (0, 1, 2, 3):
        raise ValueError(f"opt_level must be 0..3, got {opt_level}")
    extra = tuple(str(a) for a in extra_args)
    if reserved := [a for a in extra if _RESERVED_ARGS.match(a)]:
        raise ValueError(f"extra_args may not set {reserved}: assemble() controls them")
    exe = ptxas or _ptxas_for_environment(ptx_isa(ptx))
    arch = _arch_for(ptx, arch)
    ptx_sha = ptx_sha256(ptx)
    version = ptxas_version(exe)
    key = (ptx_sha, arch, opt_level, extra, str(exe), version)
    result = _cache.get(
        key,
        lambda: _assemble_uncached(ptx, ptx_sha, arch, opt_level, extra, exe, version, timeout),
    )
    return _private_copy(result)


def assemble_many(
    ptxs: Sequence[str],
    arch: str = DEFAULT_ARCH,
    workers: int | None = None,
    opt_level: int = 3,
    extra_args: Sequence[str] = (),
    *,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    progress: str | None = None,
    ptxas: Path | None = None,
) -> list[Assembly | PtxasError]:
    """Assemble many PTX texts in parallel, in input order; rejections are returned, not raised.

    ptxas runs as a subprocess, so threads give real parallelism. `workers` defaults to the
    CPU count. Duplicates and cached texts cost one ptxas run at most. `progress`: a label
    for a progress bar on stderr (none when None). `ptxas`: this binary rather than the
    first found that takes each text's ISA.
    """
    n = workers or os.cpu_count() or 1

    def one(ptx: str) -> Assembly | PtxasError:
        try:
            exe = ptxas or _ptxas_for_environment(ptx_isa(ptx))
            return assemble(ptx, arch, opt_level, extra_args, ptxas=exe, timeout=timeout)
        except PtxasError as exc:
            return exc

    def bar(results: Iterable[Assembly | PtxasError]) -> list[Assembly | PtxasError]:
        if progress is None:
            return list(results)
        from tqdm import tqdm

        return list(tqdm(results, total=len(ptxs), desc=progress, unit="ptx", leave=False))

    if n == 1 or len(ptxs) <= 1:
        return bar(one(p) for p in ptxs)
    with ThreadPoolExecutor(max_workers=min(n, len(ptxs)), thread_name_prefix="ptxas") as pool:
        return bar(pool.map(one, ptxs))


def _arch_for(ptx: str, arch: str) -> str:
    """`arch`, or its arch-specific variant when the PTX targets that (`.target sm_90a`
    asked for as sm_90): such PTX assembles only for the variant, and it runs on that SM."""
    m = _TARGET.search(ptx)
    if m:
        for target in (t.strip() for t in m[1].split(",")):
            if target[:-1] == arch and target[-1:] in ("a", "f"):
                return target
    return arch


_TARGET = re.compile(r"^\s*\.target\s+([^\n;/]+)", re.M)


def _ptxas_for_environment(isa: tuple[int, int] | None = None) -> Path:
    """find_ptxas_for(isa), remembered per lookup environment: the search stats a dozen
    paths, which would cost more than the cache hit it precedes."""
    key = tuple(os.environ.get(v) for v in ("CHRONOS_PTXAS", "PATH", "CUDA_HOME"))
    key += (ptxas_module.DEFAULT_DIRS, isa)
    found = _found_ptxas.get(key)
    if found is None or not found.is_file():
        found = _found_ptxas[key] = find_ptxas_for(isa)
    return found


def ptxas_version_for(ptx: str) -> str:
    """The version of the ptxas `assemble` would use for `ptx` ("none" without one): it is
    part of every measurement's provenance and store key."""
    try:
        return ptxas_version(_ptxas_for_environment(ptx_isa(ptx)))
    except ptxas_module.PtxasNotFoundError:
        return "none"


_found_ptxas: dict[tuple, Path] = {}


def cache_info() -> CacheInfo:
    """Hits, misses and size of the process-wide assembly cache."""
    return _cache.info()


def cache_clear() -> None:
    """Empty the process-wide assembly cache (e.g. for cold timings)."""
    _cache.clear()


def _assemble_uncached(
    ptx: str,
    ptx_sha: str,
    arch: str,
    opt_level: int,
    extra: tuple[str, ...],
    exe: Path,
    version: str,
    timeout: float | None,
) -> Assembly:
    try:
        run = run_ptxas(exe, ptx, arch, opt_level, extra, timeout)
    except subprocess.TimeoutExpired as exc:
        log = exc.output if isinstance(exc.output, str) else ""
        raise PtxasTimeoutError(
            f"ptxas ran past its {timeout} s limit ({arch}, -O{opt_level})", None, log, []
        ) from None
    if run.returncode != 0 or run.cubin is None:
        raise PtxasError.from_log(run.returncode, run.log, ptx)
    texts = text_sections(run.cubin)
    module_hash = hashlib.sha256()
    for name in sorted(texts):
        module_hash.update(f"{name}\0{len(texts[name])}\0".encode())
        module_hash.update(texts[name])
    return Assembly(
        cubin=run.cubin,
        arch=arch,
        opt_level=opt_level,
        resources=parse_resources(run.log),
        sass_instructions={name: count_instructions(t) for name, t in texts.items()},
        text_sha256={name: hashlib.sha256(t).hexdigest() for name, t in texts.items()},
        module_text_sha256=module_hash.hexdigest(),
        ptx_sha256=ptx_sha,
        ptxas_version=version,
        log=run.log,
        ptxas_seconds=run.seconds,
    )


def _private_copy(a: Assembly) -> Assembly:
    """A copy with its own dicts, so a caller that edits one cannot corrupt the cache."""
    return dataclasses.replace(
        a,
        resources=dict(a.resources),
        sass_instructions=dict(a.sass_instructions),
        text_sha256=dict(a.text_sha256),
    )
