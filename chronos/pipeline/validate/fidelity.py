"""How well the `emulated` cost model ranks what a GPU measured: the model's fidelity check.

    python benchmarks/fidelity.py --store PATH [--arch sm_89] [--depth 2] [--backend cupy]
    python -m chronos.pipeline.validate.fidelity ...   (the same)

A measurement store (chronos.measure.store) keys records by the PTX's hash, not its text, so
the states are rebuilt: from every kernel in the store, every mask-legal transform sequence up
to `--depth` actions is applied (chronos.transforms) and hashed; each state whose hash has a
valid record of `--backend` (default: any non-estimate backend) is re-estimated with the
`emulated` backend. Printed:

* Spearman rank correlation between measured cycles and estimates, over all matched states
  and per family (ranks across kernels mix problem sizes; per family is the sharper test);
* per action, the share of (state, state + action) pairs, both measured, where the estimate
  moves in the same direction as the measurement (changes under `--tie` count as no move).

The estimates are ESTIMATES of the model named below; the measurements are whatever the store
holds (their backend and device are printed).
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import spearmanr

import kernels
from chronos.measure.backends.emulated import EmulatedBackend
from chronos.measure.costmodel import MODEL_VERSION
from chronos.measure.store import MeasurementStore
from chronos.ptx import ptx_sha256
from chronos.transforms import ACTION_NAMES, action_mask, apply_action

STOP = ACTION_NAMES.index("stop")


@dataclass
class State:
    kernel_id: str
    family: str
    ptx: str
    applied: tuple[int, ...]
    parent: int | None
    action: int | None
    measured: float | None = None
    estimate: float | None = None


def measured_cycles(store: MeasurementStore, backend: str | None) -> dict[tuple[str, str], float]:
    """(kernel id, PTX hash) -> cycles of the valid, non-estimate records (median if several)."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for m in store:
        if not m.valid or m.cycles is None or m.estimate:
            continue
        if backend is not None and m.backend != backend:
            continue
        found[(m.kernel_id, m.ptx_sha256)].append(float(m.cycles))
    return {k: sorted(v)[len(v) // 2] for k, v in found.items()}


def states(kernel_id: str, depth: int) -> list[State]:
    """Every state reachable by mask-legal sequences of at most `depth` actions (BFS)."""
    spec = kernels.load(kernel_id)
    out = [State(kernel_id, spec.family, spec.ptx(), (), None, None)]
    seen = {ptx_sha256(out[0].ptx)}
    frontier = [0]
    for _ in range(depth):
        nxt = []
        for i in frontier:
            s = out[i]
            mask = action_mask(spec, s.ptx, list(s.applied))
            for a in map(int, mask.nonzero()[0]):
                if a == STOP:
                    continue
                res = apply_action(spec, s.ptx, a)
                if not res.changed:
                    continue
                out.append(State(kernel_id, spec.family, res.ptx, (*s.applied, a), i, a))
                h = ptx_sha256(res.ptx)
                if h not in seen:
                    seen.add(h)
                    nxt.append(len(out) - 1)
        frontier = nxt
    return out


def spearman(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 3:
        return None
    rho = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return None if rho is None or math.isnan(rho) else float(rho)


def evaluate(
    store: MeasurementStore,
    arch: str,
    depth: int,
    backend: str | None = None,
    tie: float = 0.0,
) -> dict[str, object]:
    """Match, re-estimate and score; returns the figures `main` prints."""
    measured = measured_cycles(store, backend)
    em = EmulatedBackend(arch=arch)
    all_states: list[State] = []
    for kid in sorted({k for k, _ in measured}):
        try:
            kernels.load(kid)
        except kernels.UnknownKernelError:
            continue
        for s in states(kid, depth):
            s.measured = measured.get((kid, ptx_sha256(s.ptx)))
            all_states.append(s)
    estimates: dict[tuple[str, str], float | None] = {}
    for s in all_states:
        if s.measured is None:
            continue
        key = (s.kernel_id, ptx_sha256(s.ptx))
        if key not in estimates:
            rep = em.report(kernels.load(s.kernel_id), s.ptx)
            estimates[key] = rep.cost.estimate if rep.valid and rep.cost else None
        s.estimate = estimates[key]
    scored = {}
    for s in all_states:
        if s.measured is not None and s.estimate is not None:
            scored[(s.kernel_id, ptx_sha256(s.ptx))] = (s.family, s.measured, s.estimate)
    per_family: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for fam, m, e in scored.values():
        per_family[fam].append((m, e))
    agree: dict[str, list[bool]] = defaultdict(list)
    base_of: dict[str, int] = {}
    for i, s in enumerate(all_states):
        if s.parent is None:
            base_of[s.kernel_id] = i
            continue
        p = all_states[s.parent]
        if None in (s.measured, s.estimate, p.measured, p.estimate):
            continue
        dm = _direction(s.measured / p.measured - 1.0, tie)  # type: ignore[operator]
        de = _direction(s.estimate / p.estimate - 1.0, tie)  # type: ignore[operator]
        agree[ACTION_NAMES[s.action or 0]].append(dm == de)
    return {
        "records": len(measured),
        "matched": len(scored),
        "spearman": spearman([(m, e) for _, m, e in scored.values()]),
        "per_family": {f: (len(v), spearman(v)) for f, v in sorted(per_family.items())},
        "direction": {a: (len(v), sum(v) / len(v)) for a, v in sorted(agree.items())},
    }


def _direction(rel: float, tie: float) -> int:
    return 0 if abs(rel) <= tie else (1 if rel > 0 else -1)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True, type=Path, help="measurement store (SQLite)")
    ap.add_argument("--arch", default="sm_89", help="arch of the re-estimates (the GPU's)")
    ap.add_argument("--depth", type=int, default=2, help="longest transform sequence rebuilt")
    ap.add_argument("--backend", default=None, help="only records of this backend (e.g. cupy)")
    ap.add_argument("--tie", type=float, default=0.0, help="relative change counted as none")
    args = ap.parse_args(argv)
    if not args.store.exists():
        ap.error(f"--store {args.store} does not exist")
    with MeasurementStore(args.store, readonly=True) as store:
        print(f"store {args.store}: {store.summary()}")
        r = evaluate(store, args.arch, args.depth, args.backend, args.tie)
    print(
        f"emulated {MODEL_VERSION} ESTIMATES ({args.arch}) vs measured cycles: "
        f"{r['matched']} of {r['records']} measured states rebuilt (depth {args.depth})"
    )
    rho = r["spearman"]
    print(f"Spearman overall: {'n/a' if rho is None else f'{rho:+.3f}'}")
    for fam, (n, rho) in r["per_family"].items():  # type: ignore[union-attr]
        print(f"  {fam:12s} {n:5d} states  Spearman {'n/a' if rho is None else f'{rho:+.3f}'}")
    print("direction agreement per action (state -> state + action, both measured):")
    for a, (n, share) in r["direction"].items():  # type: ignore[union-attr]
        print(f"  {a:14s} {n:5d} pairs  {share:6.1%}")


if __name__ == "__main__":
    main()
