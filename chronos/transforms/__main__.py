"""`python -m chronos.transforms coverage [--arch sm_80] [--kernels a,b] [--family f]`,
`python -m chronos.transforms show KERNEL TRANSFORM` (unified diff, or why it is masked) and
`python -m chronos.transforms info KERNEL` (every action's verdict on the kernel) and
`python -m chronos.transforms why [--kernels a,b] [--family f] [--transforms t,u]` (per
structural transform, one line per kernel it does not apply to, naming the unmet condition);
`--module NAME` imports a module of user kernels first."""

from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m chronos.transforms")
    sub = ap.add_subparsers(dest="cmd", required=True)
    user = argparse.ArgumentParser(add_help=False)
    user.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="import this module first (it registers user kernels); repeatable",
    )
    cov = sub.add_parser(
        "coverage", parents=[user], help="per-transform action coverage over the corpus"
    )
    cov.add_argument("--arch", default="sm_80")
    cov.add_argument("--kernels", default=None, help="comma-separated kernel ids (default all)")
    cov.add_argument("--family", default=None, help="comma-separated families (default all)")
    cov.add_argument("--json", default=None, help="write the per-kernel SASS-change sets here")
    sh = sub.add_parser("show", parents=[user], help="diff of one transform on one kernel")
    sh.add_argument("kernel")
    sh.add_argument("transform")
    sh.add_argument("-U", "--context", type=int, default=3)
    inf = sub.add_parser(
        "info", parents=[user], help="each action's verdict on one kernel (and why)"
    )
    inf.add_argument("kernel")
    why = sub.add_parser(
        "why", parents=[user], help="per transform: where it does not apply, and why (one line)"
    )
    why.add_argument("--kernels", default=None, help="comma-separated kernel ids (default all)")
    why.add_argument("--family", default=None, help="comma-separated families (default all)")
    why.add_argument(
        "--transforms",
        default=None,
        help="comma-separated transforms (default: the structural ones, coverage.STRUCTURAL)",
    )
    sub.add_parser("list", help="the catalogue")
    return ap


def _kernel_ids(args: argparse.Namespace) -> list[str]:
    from kernels import list_kernels

    if args.kernels:
        return args.kernels.split(",")
    if args.family:
        return [k for f in args.family.split(",") for k in list_kernels(f)]
    return list(list_kernels())


def _why(args: argparse.Namespace) -> int:
    from kernels import load

    from .catalogue import ACTION_NAMES
    from .coverage import STRUCTURAL, why_not

    names = tuple(args.transforms.split(",")) if args.transforms else STRUCTURAL
    unknown = [n for n in names if n not in ACTION_NAMES]
    if unknown:
        print(f"unknown transform(s) {unknown}; known: {', '.join(ACTION_NAMES)}", file=sys.stderr)
        return 2
    sys.stdout.write(why_not([load(k) for k in _kernel_ids(args)], names))
    return 0


def _coverage(args: argparse.Namespace) -> int:
    """The coverage table; exit status 1 when an action is dead or a duplicate."""
    from kernels import load

    from .coverage import format_families, format_table, measure

    ids = _kernel_ids(args)
    cov = measure([load(k) for k in ids], arch=args.arch, progress=True)
    rows = cov.rows
    print(format_table(rows, args.arch))
    print()
    print(format_families(cov, args.arch))
    if args.json:
        import json

        with open(args.json, "w") as fh:
            json.dump({r.name: sorted(h) for r, h in zip(rows, cov.changed, strict=True)}, fh)
    dead = [r.name for r in rows if r.changes_sass == 0]
    dups = [f"{r.name} (= {', '.join(r.duplicates)})" for r in rows if r.duplicates]
    n = len(ids)
    if dead:
        print(f"DEFECT: no SASS change on any of these {n} kernels: {', '.join(dead)}")
    if dups:
        print(
            f"DEFECT: same SASS as another action on every one of these {n} kernels: "
            f"{'; '.join(dups)}"
        )
    return 1 if dead or dups else 0


def _show(args: argparse.Namespace) -> int:
    from kernels import load

    from .catalogue import ACTION_NAMES
    from .coverage import show

    if args.transform not in ACTION_NAMES:
        print(
            f"unknown transform {args.transform!r}; known: {', '.join(ACTION_NAMES)}",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(show(load(args.kernel), args.transform, args.context))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    from kernels import KernelSpecError, import_modules, load

    try:
        import_modules(getattr(args, "module", []))
    except KernelSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from .catalogue import CATALOGUE
    from .coverage import info

    if args.cmd == "coverage":
        return _coverage(args)
    if args.cmd == "show":
        return _show(args)
    if args.cmd == "why":
        return _why(args)
    if args.cmd == "info":
        sys.stdout.write(info(load(args.kernel)))
        return 0
    for i, t in enumerate(CATALOGUE):
        print(f"{i:>2} {t.name:<15} {t.group:<8} {'exact' if t.exact else 'rounding'}  {t.summary}")
    print(f"{len(CATALOGUE):>2} stop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
