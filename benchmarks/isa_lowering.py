"""ISA lowering over the corpus: what a CUDA 12 machine gets is the same kernel.

    python benchmarks/isa_lowering.py [--per-family 2] [--archs sm_80,sm_86,sm_89,sm_90]
                                      [--smoke] [--no-emulate] [--json OUT]

Cases: every corpus kernel, and the output of every mask-legal transform on the first
`--per-family` kernels of each family (`--smoke`: one kernel per family, no transforms).
For each case, lowered with chronos.ptx.isa (chronos.measure.harness.compat.lower_for_driver):

1. it assembles with a CUDA 12 ptxas (the newest found, e.g. nvidia-cuda-nvcc-cu12 12.9)
   for every `--archs` entry;
2. the newest ptxas that takes the original text gives byte-identical SASS (`.text` hash) for
   the original and the lowered text on sm_80: `.version` changes nothing in the code;
3. the emulator computes bit-identical outputs from both (small problem, seed 0).

Figures are counts of PTX texts; no GPU is involved. tests/test_isa_lowering.py runs a sample.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import kernels
from chronos.assemble import PtxasError, assemble_many, find_ptxas_for, ptxas_version
from chronos.assemble.ptxas import ptxas_for_driver
from chronos.measure.harness.compat import lower_for_driver
from chronos.ptx.isa import declared_isa, isa_str

ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90")
SASS_ARCH = "sm_80"
CUDA12_DRIVER = 12000
"""Lower as for the oldest CUDA 12 driver: what is left must load on every 12.x."""


@dataclass(frozen=True)
class Case:
    """One PTX text: a corpus kernel, or a transform's output on it."""

    kernel: str
    action: str
    ptx: str
    lowered: str

    @property
    def name(self) -> str:
        return f"{self.kernel}+{self.action}" if self.action else self.kernel


def family_heads(per_family: int) -> list[str]:
    """The first `per_family` kernel ids (sorted) of every family."""
    by_family: dict[str, list[str]] = collections.defaultdict(list)
    for kid in sorted(kernels.list_kernels()):
        by_family[kernels.load(kid).family].append(kid)
    return [k for fam in sorted(by_family) for k in by_family[fam][:per_family]]


def make_cases(kernel_ids: list[str], transformed: list[str]) -> list[Case]:
    """Each of `kernel_ids` as it is, and every mask-legal transform on each of `transformed`."""
    from chronos.transforms import CATALOGUE, STOP, action_mask, apply_action

    out = []
    for kid in kernel_ids:
        ptx = kernels.load(kid).ptx()
        out.append(Case(kid, "", ptx, lower_for_driver(ptx, CUDA12_DRIVER)[0]))
    for kid in transformed:
        spec = kernels.load(kid)
        ptx = spec.ptx()
        for a in np.flatnonzero(action_mask(spec, ptx, [])):
            if a == STOP:
                continue
            res = apply_action(spec, ptx, int(a))
            if res.changed:
                low = lower_for_driver(res.ptx, CUDA12_DRIVER)[0]
                out.append(Case(kid, CATALOGUE[a].name, res.ptx, low))
    return out


def cuda12_ptxas() -> Path:
    """The newest CUDA 12 ptxas found (PATH, CUDA_HOME, the nvidia-cuda-nvcc-cu12 wheel)."""
    exe, why = ptxas_for_driver(12, (7, 0))
    if exe is None or not ptxas_version(exe).startswith("12."):
        raise SystemExit(f"no CUDA 12 ptxas: {why}")
    return exe


def assemble_failures(cases: list[Case], archs: tuple[str, ...], exe: Path) -> list[str]:
    """'case arch: error' for every lowered text `exe` rejects."""
    failed = []
    for arch in archs:
        results = assemble_many([c.lowered for c in cases], arch=arch, ptxas=exe)
        for c, r in zip(cases, results, strict=True):
            if isinstance(r, PtxasError):
                failed.append(f"{c.name} {arch}: {str(r).splitlines()[0]}")
    return failed


def sass_differences(cases: list[Case], arch: str = SASS_ARCH) -> list[str]:
    """Cases whose original and lowered texts give different SASS under one ptxas."""
    isa = max(filter(None, (declared_isa(c.ptx) for c in cases)))
    exe = find_ptxas_for(isa)
    both = assemble_many([t for c in cases for t in (c.ptx, c.lowered)], arch=arch, ptxas=exe)
    diff = []
    for i, c in enumerate(cases):
        a, b = both[2 * i], both[2 * i + 1]
        if isinstance(a, PtxasError) or isinstance(b, PtxasError):
            diff.append(f"{c.name}: {a if isinstance(a, PtxasError) else b}")
        elif a.module_text_sha256 != b.module_text_sha256:
            diff.append(f"{c.name}: SASS differs")
    return diff


def emulator_differences(cases: list[Case]) -> list[str]:
    """Cases whose original and lowered texts compute different bytes in the emulator."""
    from chronos.emulate import emulate

    diff = []
    for c in cases:
        spec = kernels.load(c.kernel)
        a, b = emulate(spec, c.ptx).outputs, emulate(spec, c.lowered).outputs
        if set(a) != set(b) or any(
            np.asarray(a[k]).tobytes() != np.asarray(b[k]).tobytes() for k in a
        ):
            diff.append(c.name)
    return diff


def run(per_family: int, archs: tuple[str, ...], smoke: bool, emulate_too: bool) -> dict:
    t0 = time.perf_counter()
    if smoke:
        ids, transformed = family_heads(1), []
    else:
        ids, transformed = sorted(kernels.list_kernels()), family_heads(per_family)
    cases = make_cases(ids, transformed)
    isas = collections.Counter(isa_str(declared_isa(c.lowered) or (0, 0)) for c in cases)
    exe = cuda12_ptxas()
    t1 = time.perf_counter()
    failed = assemble_failures(cases, archs, exe)
    t2 = time.perf_counter()
    sass = sass_differences(cases)
    t3 = time.perf_counter()
    emu = emulator_differences(cases) if emulate_too else None
    t4 = time.perf_counter()
    return {
        "backend": "none (ptxas and the CPU emulator; no GPU)",
        "cases": len(cases),
        "corpus_kernels": len(ids),
        "transformed_kernels": len(transformed),
        "lowered_isa": dict(sorted(isas.items())),
        "ptxas_cuda12": f"{ptxas_version(exe)} ({exe})",
        "archs": list(archs),
        "assembled": len(cases) * len(archs) - len(failed),
        "assemble_failures": failed,
        "sass_arch": SASS_ARCH,
        "ptxas_sass": ptxas_version(find_ptxas_for((9, 0))),
        "sass_differences": sass,
        "emulator_differences": emu,
        "seconds": {
            "lower": round(t1 - t0, 1),
            "assemble": round(t2 - t1, 1),
            "sass": round(t3 - t2, 1),
            "emulate": round(t4 - t3, 1),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-family", type=int, default=2)
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--smoke", action="store_true", help="one kernel per family, no transforms")
    ap.add_argument("--no-emulate", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="write the result here too")
    args = ap.parse_args(argv)
    res = run(
        args.per_family, tuple(args.archs.split(",")), args.smoke, emulate_too=not args.no_emulate
    )
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    bad = res["assemble_failures"] or res["sass_differences"] or res["emulator_differences"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
