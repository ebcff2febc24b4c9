"""`python -m chronos.features`: features and ptxas figures for every corpus kernel.

One row per kernel: whether its PTX round-trips through the parser, ptxas's registers, spill
bytes, shared memory and SASS instruction count for each requested arch, then the features
(with the ptxas figures of the first arch filled in; the trace groups are -1, since nothing is
emulated here). `--table` prints the feature documentation instead; `--csv` writes
machine-readable rows.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Sequence

from chronos.assemble import PtxasError, PtxasNotFoundError, assemble_many
from chronos.features.extract import FEATURE_NAMES, extract, feature_table
from chronos.ptx import parse


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chronos.features",
        description="Print the kernel features and ptxas figures of corpus kernels.",
    )
    parser.add_argument("kernels", nargs="*", help="kernel ids (default: the whole corpus)")
    parser.add_argument(
        "--arch", default="sm_80,sm_90", help="comma-separated ptxas targets (default sm_80,sm_90)"
    )
    parser.add_argument("--table", action="store_true", help="print the feature documentation")
    parser.add_argument("--csv", metavar="PATH", help="also write every row to a CSV file")
    parser.add_argument(
        "--no-ptxas", action="store_true", help="skip ptxas (ptxas features stay -1)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 when a kernel fails to round-trip or assemble)."""
    from kernels import list_kernels, load

    args = _parse_args(argv)
    if args.table:
        print(feature_table())
        return 0
    ids = args.kernels or list_kernels()
    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    specs = [load(k) for k in ids]
    texts = [s.ptx() for s in specs]

    t0 = time.perf_counter()
    builds: dict[str, list] = {}
    if not args.no_ptxas:
        try:
            builds = {arch: assemble_many(texts, arch) for arch in archs}
        except PtxasNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    t_asm = time.perf_counter() - t0

    header = ["kernel", "roundtrip"]
    for arch in builds:
        header += [f"{arch}_regs", f"{arch}_spill", f"{arch}_smem", f"{arch}_sass"]
    header += list(FEATURE_NAMES)
    rows: list[list[str]] = []
    failures = 0
    t_feat = 0.0
    for i, (spec, text) in enumerate(zip(specs, texts, strict=True)):
        roundtrip = str(parse(text)) == text
        failures += not roundtrip
        row = [spec.id, "ok" if roundtrip else "FAIL"]
        regs = spill = None
        for results in builds.values():
            res = results[i]
            if isinstance(res, PtxasError):
                failures += 1
                row += ["error"] * 4
                continue
            r = res.resources[spec.entry]
            if regs is None:
                regs, spill = r.registers, r.spill_bytes
            row += [
                str(r.registers),
                str(r.spill_bytes),
                str(r.shared_bytes),
                str(res.sass_instructions[spec.entry]),
            ]
        t1 = time.perf_counter()
        values = extract(text, spec.entry, registers=regs, spill_bytes=spill)
        t_feat += time.perf_counter() - t1
        row += [f"{v:.3f}" for v in values]
        rows.append(row)

    _print_summary(header, rows, len(builds))
    print(
        f"\n{len(rows)} kernels; round trip + ptxas failures: {failures}; "
        f"ptxas {', '.join(builds) or 'skipped'} in {t_asm:.1f} s; "
        f"features {1e3 * t_feat / max(len(rows), 1):.2f} ms/kernel"
    )
    if args.csv:
        with open(args.csv, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    return 1 if failures else 0


def _print_summary(header: list[str], rows: list[list[str]], n_archs: int) -> None:
    """The ptxas columns, then the features under their names (meanings: `--table`)."""
    fixed = 2 + 4 * n_archs
    widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(header[:fixed])]
    print("  ".join(h.rjust(w) for h, w in zip(header[:fixed], widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r[:fixed], widths, strict=True)))
    print()
    name_w = max(len(r[0]) for r in rows)
    widths = [max(len(n), 5) for n in FEATURE_NAMES]
    print(
        "kernel".ljust(name_w),
        " ".join(n.rjust(w) for n, w in zip(FEATURE_NAMES, widths, strict=True)),
    )
    for r in rows:
        cells = (f"{float(v):{w}.2f}" for v, w in zip(r[fixed:], widths, strict=True))
        print(r[0].ljust(name_w), " ".join(cells))


if __name__ == "__main__":
    sys.exit(main())
