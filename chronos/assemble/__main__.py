"""`python -m chronos.assemble FILE.ptx [--arch sm_80]`: what ptxas makes of a PTX file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chronos.assemble.assembly import DEFAULT_ARCH, assemble
from chronos.assemble.errors import PtxasError, PtxasNotFoundError

_COLUMNS = ("entry", "regs", "spill st", "spill ld", "stack", "smem", "cmem", "bar", "sass")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chronos.assemble",
        description="Assemble a PTX file with ptxas; print resources and SASS size per entry.",
    )
    parser.add_argument("ptx", type=Path, help="PTX file")
    parser.add_argument("--arch", default=DEFAULT_ARCH, help=f"target SM (default {DEFAULT_ARCH})")
    parser.add_argument("-O", "--opt-level", type=int, default=3, choices=range(4))
    parser.add_argument("--log", action="store_true", help="also print ptxas's -v output")
    args = parser.parse_args(argv)
    try:
        asm = assemble(args.ptx.read_text(), args.arch, args.opt_level)
    except PtxasNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    except PtxasError as exc:
        print(f"{args.ptx}: {exc}", file=sys.stderr)
        return 1
    if args.log:
        print(asm.log.rstrip())
    rows = [_COLUMNS]
    for name in dict.fromkeys([*asm.resources, *asm.sass_instructions]):
        r = asm.resources.get(name)
        figures = (
            (
                r.registers,
                r.spill_stores,
                r.spill_loads,
                r.stack_bytes,
                r.shared_bytes,
                r.const_bytes,
                r.barriers,
            )
            if r
            else ("-",) * 7
        )
        rows.append((name, *map(str, figures), str(asm.sass_instructions.get(name, "-"))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))
    print(
        f"{args.arch} -O{args.opt_level}, ptxas {asm.ptxas_version}, {asm.ptxas_seconds:.3f} s; "
        f"byte counts per thread except smem/cmem; .text sha256 {asm.module_text_sha256[:16]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
