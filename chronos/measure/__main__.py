"""`python -m chronos.measure KERNEL [--transforms a,b,c] [--backend ...] [--store PATH] [--json]`

Measures a kernel's checked-in PTX and, with --transforms, the PTX after applying the named
transforms in order, and prints the figures with the backend that made them (an emulated
figure is printed as an estimate). Exit status 1 when a measurement is invalid, 2 on usage
errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from chronos.fmt import speedup as fmt_speedup
from chronos.measure.measurement import Measurement


def apply_transforms(spec: Any, ptx: str, names: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Apply named transforms in order; returns the PTX and one log entry per transform."""
    try:
        from chronos.transforms import ACTION_NAMES, apply_action
    except ImportError as exc:
        raise SystemExit(
            f"error: --transforms needs chronos.transforms, which is not importable here ({exc})"
        ) from None
    names_list = list(ACTION_NAMES)
    steps = []
    for name in names:
        if name not in names_list:
            raise SystemExit(f"error: unknown transform {name!r}; known: {', '.join(names_list)}")
        res = apply_action(spec, ptx, names_list.index(name))
        new, changed, reason = (res.ptx, res.changed, res.reason) if hasattr(res, "ptx") else res
        steps.append({"transform": name, "changed": bool(changed), "reason": reason})
        ptx = new
    return ptx, steps


def describe(m: Measurement) -> str:
    """Human-readable figures of one measurement."""
    label = "estimate" if m.estimate else "measured"
    head = f"backend {m.backend} on {m.device} ({label}, harness {m.harness_version})"
    if not m.valid:
        return f"{head}\n  INVALID: {m.error}\n  regs {m.regs} spills {m.spills}"
    iqr = f"IQR [{m.cycles_q1:.0f}, {m.cycles_q3:.0f}]" if m.cycles_q1 is not None else ""
    lines = [
        head,
        f"  cycles {m.cycles:.0f} {'(estimate) ' if m.estimate else ''}{iqr} over n={m.n}",
        f"  time {m.time_ns:.0f} ns at {m.clock_mhz or float('nan'):.0f} MHz"
        if m.time_ns is not None
        else "  time n/a",
        f"  registers {m.regs}, spills {m.spills} bytes",
    ]
    if "regs_instrumented" in m.extra:
        lines.append(f"  registers of the instrumented build {m.extra['regs_instrumented']}")
    if "throttled_samples" in m.extra:
        lines.append(f"  throttled samples {m.extra['throttled_samples']}")
    phases = m.extra.get("phases")
    if phases:
        lines.append("  phases " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in phases.items()))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chronos.measure", description=__doc__)
    parser.add_argument("kernel", help="kernel id, e.g. gemm_tile_4_4_4")
    parser.add_argument("--transforms", default="", help="comma-separated transform names")
    parser.add_argument(
        "--backend", default="auto", help="emulated | cupy | replay | auto (default auto)"
    )
    parser.add_argument(
        "--store",
        default="default",
        help="measurement store file; 'default' = $CHRONOS_STORE or "
        "~/.cache/chronos/measurements.sqlite; 'none' = in memory only",
    )
    parser.add_argument("--fallback", default=None, help="replay only: 'emulated' on a miss")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="import this module first (it registers user kernels); repeatable",
    )
    return parser


def _measure(
    args: argparse.Namespace, spec: Any, texts: list[str]
) -> tuple[str | None, list[Measurement], dict[str, Any]]:
    """The backend's auto reason, one Measurement per text, and the backend's stats; raises
    the setup errors main reports with exit status 2."""
    from chronos.measure.backends.factory import make_backend

    store: Any = None if args.store.lower() == "none" else args.store
    opts: dict[str, Any] = {}
    if args.backend == "replay" and args.fallback:
        opts["fallback"] = args.fallback
    with make_backend(args.backend, store=store, **opts) as backend:
        reason = getattr(backend, "auto_reason", None)
        results = backend.measure_many(spec, texts)
        stats = backend.stats
    return reason, results, stats


def _print_text(
    spec: Any,
    reason: str | None,
    steps: list[dict[str, Any]],
    base: Measurement,
    final: Measurement,
    speedup: float | None,
    stats: dict[str, Any],
) -> None:
    if reason:
        print(reason)
    print(f"kernel {spec.id}")
    if steps:
        print("baseline:\n  " + describe(base).replace("\n", "\n  "))
        for s in steps:
            print(
                f"transform {s['transform']}: {'changed' if s['changed'] else 'no change'}"
                f"{' (' + str(s['reason']) + ')' if s['reason'] else ''}"
            )
        print("after transforms:\n  " + describe(final).replace("\n", "\n  "))
        if speedup is not None:
            text = fmt_speedup(1.0 / speedup - 1.0)
            print(f"speed-up {text}{' (estimate)' if final.estimate else ''}")
    else:
        print(describe(final))
    print(f"store hits {stats.get('hits')} misses {stats.get('misses')}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    from kernels import KernelSpecError, import_modules, load

    try:
        import_modules(args.module)
        spec = load(args.kernel)
    except (KeyError, KernelSpecError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base_ptx = spec.ptx()
    names = [n.strip() for n in args.transforms.split(",") if n.strip()]
    ptx, steps = apply_transforms(spec, base_ptx, names) if names else (base_ptx, [])
    from chronos.measure.backends.cupy import CupyBackendError
    from chronos.measure.backends.replay import ReplayMiss
    from chronos.measure.store import StoreError

    try:
        reason, results, stats = _measure(args, spec, [base_ptx, ptx] if names else [base_ptx])
    except (ReplayMiss, CupyBackendError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = results[0]
    final = results[-1]
    speedup = None
    if names and base.valid and final.valid and final.cycles:
        speedup = base.cycles / final.cycles  # type: ignore[operator]
    if args.json:
        print(
            json.dumps(
                {
                    "kernel": spec.id,
                    "backend": final.backend,
                    "selected": reason,
                    "transforms": steps,
                    "baseline": base.to_dict(),
                    "measurement": final.to_dict(),
                    "speedup": speedup,
                    "stats": stats,
                },
                indent=2,
                default=str,
            )
        )
    else:
        _print_text(spec, reason, steps, base, final, speedup, stats)
    return 0 if final.valid else 1


if __name__ == "__main__":
    sys.exit(main())
