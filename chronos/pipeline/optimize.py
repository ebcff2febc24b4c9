"""`python -m chronos.optimize TARGET`: find a faster transform sequence for one kernel.

The tool a kernel author runs on their own kernel. TARGET is a corpus kernel id or a kernel
registered by a user module (`--module NAME` imports it first; the module calls
`kernels.register`). A search (agents/search.py) or a trained policy (`--search policy
--checkpoint PATH`) picks a sequence; it is then replayed step by step with the cycles before
and after each step (backend-labelled; the IQR for `cupy`), the final PTX is verified in the
emulator on fresh inputs, and the PTX and a JSON record (sequence, figures, PTX hashes, ptxas
version, backend, device) are written. Exit status: 0 with a result (an empty sequence when no
transform helps), 2 when the kernel cannot be measured or the result does not verify.

The search shows a progress bar (on a terminal) and ends in bounded time: exhaustive search
stops at `--max-states` states or `--max-seconds` of wall time, whichever comes first, and
then reports the best state found, saying that it is not the optimum.

    python -m chronos.optimize gemm_tile_4_4_4 --search beam --backend emulated
    python -m chronos.optimize my_kernel --module my_kernels --out my_kernel.best.ptx
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents import search as searches
from envs.constants import MAX_STEPS
from envs.mdp import State, TransformMDP

SEARCHES = (*searches.METHODS, "policy")
EXHAUSTIVE_SECONDS = 540.0
"""Exhaustive search's default wall-time budget: with the replay and the check, under 10 min."""


class OptimizeError(RuntimeError):
    """Nothing valid to report: the message says why (printed, exit status 2)."""


def import_modules(names: Sequence[str]) -> None:
    """Import user modules that register kernels; a module that fails is an OptimizeError."""
    from kernels import KernelSpecError
    from kernels import import_modules as import_kernel_modules

    try:
        import_kernel_modules(list(names))
    except KernelSpecError as exc:
        raise OptimizeError(f"--module: {exc}") from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chronos.optimize", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("target", help="kernel id (corpus, or registered by --module)")
    p.add_argument("--search", choices=SEARCHES, default="greedy", help="how to pick a sequence")
    p.add_argument("--checkpoint", type=Path, help="policy checkpoint for --search policy")
    p.add_argument("--backend", default="auto", help="auto | emulated | cupy | replay")
    p.add_argument("--store", default=None, help="measurement store path (default: in memory)")
    p.add_argument("--module", action="append", default=[], help="module registering kernels")
    p.add_argument("--out", type=Path, help="PTX output (default: <target>.best.ptx)")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS, help="longest sequence (the MDP's)")
    p.add_argument("--width", type=int, default=4, help="beam width")
    p.add_argument("--episodes", type=int, default=64, help="random-search episodes")
    p.add_argument("--seed", type=int, default=0, help="random-search seed")
    p.add_argument("--max-states", type=int, default=20_000, help="exhaustive state budget")
    p.add_argument(
        "--max-seconds",
        type=float,
        default=EXHAUSTIVE_SECONDS,
        help="exhaustive wall-time budget (0: none)",
    )
    p.add_argument(
        "--dedupe",
        choices=searches.DEDUPE,
        default="sass",
        help="exhaustive: one state per assembled SASS (default) or per PTX text (exact)",
    )
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p.parse_args(argv)


def choose(args: argparse.Namespace, mdp: TransformMDP, spec: Any) -> tuple[list[int], dict]:
    """The action ids of the chosen sequence, and what the search cost."""
    if args.search == "policy":
        if args.checkpoint is None:
            raise OptimizeError("--search policy needs --checkpoint PATH")
        if not args.checkpoint.exists():
            raise OptimizeError(f"--checkpoint {args.checkpoint}: no such file")
        from agents.checkpoint import load_policy
        from agents.rollout import rollout

        ep = rollout(mdp, [spec], load_policy(args.checkpoint), group_size=1, temperature=0.0)[0]
        kept = [s.action for s in ep.steps if s.cycles_after is not None]
        return kept, {"checkpoint": str(args.checkpoint)}
    kw: dict[str, Any] = {
        "beam": {"width": args.width},
        "random": {"episodes": args.episodes, "seed": args.seed},
        "exhaustive": {
            "max_states": args.max_states,
            "max_seconds": args.max_seconds or None,
            "dedupe": args.dedupe,
            "partial_ok": True,
        },
    }.get(args.search, {})
    try:
        r = searches.search(mdp, spec, args.search, progress=args.progress, **kw)
    except ValueError as exc:  # a budget or option out of range
        raise OptimizeError(str(exc)) from exc
    keep = ("measurements", "cache_hits", "backend_misses", "states", "wall_s")
    if args.search == "exhaustive":
        keep += ("unique_cubins", "complete", "stopped")
        print(
            f"exhaustive: {r.states} states, {r.unique_cubins} unique cubins, "
            f"{r.measurements} measurements, {r.wall_s:.1f} s"
        )
        if not r.complete:
            print(
                f"exhaustive: stopped at {r.stopped}: the best state found so far, "
                "not the optimum (raise --max-states/--max-seconds, or use --search beam)"
            )
    cost = {k: v for k, v in r.summary().items() if k in keep}
    return r.actions, {"search_options": kw, **cost}


def _iqr(m: Any) -> str:
    q1, q3 = getattr(m, "cycles_q1", None), getattr(m, "cycles_q3", None)
    if q1 is None or q3 is None or getattr(m, "estimate", False):
        return ""
    return f" (IQR {q1:.0f}-{q3:.0f})"


def replay(mdp: TransformMDP, s0: State, actions: Sequence[int], label: str) -> tuple[State, list]:
    """Apply the sequence step by step (measurements are store hits), printing each step."""
    names = mdp.tx.ACTION_NAMES
    print(f"{s0.kernel_id}: {s0.cycles:.0f} cycles{_iqr(s0.measurement)} [{label}]")
    steps, state = [], s0
    for i, a in enumerate(actions, 1):
        out = mdp.step(state, a)
        if out.invalid or out.info.get("reason") != "applied":
            raise OptimizeError(f"step {i} ({names[a]}) did not apply: {out.info.get('reason')}")
        nxt = out.state
        gain = nxt.cycles / state.cycles - 1
        print(
            f"  {i}. {names[a]:<14} {state.cycles:>10.0f} -> {nxt.cycles:>10.0f} cycles"
            f"{_iqr(nxt.measurement)} ({gain:+.1%})"
        )
        steps.append(
            {
                "action": names[a],
                "cycles_before": state.cycles,
                "cycles_after": nxt.cycles,
                "cycles_q1": getattr(nxt.measurement, "cycles_q1", None),
                "cycles_q3": getattr(nxt.measurement, "cycles_q3", None),
                "ptx_sha256": nxt.ptx_sha256,
            }
        )
        state = nxt
    return state, steps


def check(spec: Any, ptx: str) -> dict[str, Any]:
    """Emulate the final PTX on inputs the search did not see (seed 1) against the reference."""
    from chronos.emulate.verify import verify

    v = verify(spec, ptx, exact=True, seed=1)
    if v.ok and v.approx_runs:  # a GPU's approximations are only bounded: no bit-exact claim
        kind = "within the kernel's tolerance, approximations at their bounds"
        return {"ok": True, "kind": kind, "seed": 1}
    if v.ok:
        return {"ok": True, "kind": "bit-exact", "seed": 1}
    if v.kind == "mismatch" and verify(spec, ptx, exact=False, seed=1).ok:
        return {"ok": True, "kind": "within the kernel's tolerance", "seed": 1}
    raise OptimizeError(f"the optimized PTX does not verify ({v.kind}): {v.error}")


def optimize(args: argparse.Namespace) -> dict[str, Any]:
    """Search, replay, verify, write; returns the JSON record."""
    from chronos.assemble.ptxas import find_ptxas, ptxas_version
    from chronos.measure import make_backend
    from kernels import load

    import_modules(args.module)
    try:
        spec = load(args.target)
    except KeyError as exc:
        raise OptimizeError(str(exc.args[0] if exc.args else exc)) from exc
    with make_backend(args.backend, store=args.store) as backend:
        mdp = TransformMDP(backend, max_steps=args.max_steps)
        try:
            s0 = mdp.initial(spec)
        except RuntimeError as exc:
            raise OptimizeError(str(exc)) from exc
        estimate = bool(getattr(s0.measurement, "estimate", False))
        name = str(getattr(backend, "name", args.backend))
        label = f"{'emulated estimate' if estimate else name}, {backend.device}"
        t0 = time.perf_counter()
        actions, cost = choose(args, mdp, spec)
        search_s = time.perf_counter() - t0
        print(f"search: {args.search}")
        final, steps = replay(mdp, s0, actions, label)
    verified = check(spec, final.ptx)
    out = args.out or Path(f"{spec.id}.best.ptx")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(final.ptx)
    record = {
        "kernel_id": spec.id,
        "search": args.search,
        "sequence": [s["action"] for s in steps],
        "steps": steps,
        "base_cycles": s0.cycles,
        "final_cycles": final.cycles,
        "improvement": final.cycles / s0.cycles - 1,
        "log_gain": math.log(s0.cycles / final.cycles),
        "backend": name,
        "estimate": estimate,
        "device": str(backend.device),
        "harness_version": getattr(final.measurement, "harness_version", ""),
        "base_ptx_sha256": s0.ptx_sha256,
        "final_ptx_sha256": hashlib.sha256(final.ptx.encode()).hexdigest(),
        "ptxas_version": ptxas_version(find_ptxas()),
        "max_steps": args.max_steps,
        "search_s": search_s,
        "verified": verified,
        "ptx_path": str(out),
        **cost,
    }
    out.with_suffix(".json").write_text(json.dumps(record, indent=2, default=str))
    if steps:
        print(
            f"{spec.id}: {s0.cycles:.0f} -> {final.cycles:.0f} cycles "
            f"({record['improvement']:+.1%}, {label}); verified {verified['kind']}"
        )
    else:
        print(f"{spec.id}: no transform sequence improved on the original ({label})")
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return record


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # The searches' one-line summaries (chronos.progress) go to stderr.
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        optimize(args)
    except OptimizeError as exc:
        print(f"chronos.optimize: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
