"""`python -m chronos.transforms coverage [--arch sm_90] [--kernels a,b]` and
`python -m chronos.transforms show KERNEL TRANSFORM` (unified diff); `--module NAME` imports a
module of user kernels first."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
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
    cov.add_argument("--arch", default="sm_90")
    cov.add_argument("--kernels", default=None, help="comma-separated kernel ids (default all)")
    sh = sub.add_parser("show", parents=[user], help="diff of one transform on one kernel")
    sh.add_argument("kernel")
    sh.add_argument("transform")
    sh.add_argument("-U", "--context", type=int, default=3)
    sub.add_parser("list", help="the catalogue")
    args = ap.parse_args(argv)

    from kernels import KernelSpecError, import_modules, list_kernels, load

    try:
        import_modules(getattr(args, "module", []))
    except KernelSpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from .catalogue import ACTION_NAMES, CATALOGUE
    from .coverage import coverage, format_table, show

    if args.cmd == "coverage":
        ids = args.kernels.split(",") if args.kernels else list(list_kernels())
        rows = coverage([load(k) for k in ids], arch=args.arch, progress=True)
        print(format_table(rows, args.arch))
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
    if args.cmd == "show":
        if args.transform not in ACTION_NAMES:
            print(
                f"unknown transform {args.transform!r}; known: {', '.join(ACTION_NAMES)}",
                file=sys.stderr,
            )
            return 2
        sys.stdout.write(show(load(args.kernel), args.transform, args.context))
        return 0
    for i, t in enumerate(CATALOGUE):
        print(f"{i:>2} {t.name:<15} {t.group:<8} {'exact' if t.exact else 'rounding'}  {t.summary}")
    print(f"{len(CATALOGUE):>2} stop")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
