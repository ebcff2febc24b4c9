"""Search baselines on a kernel set: greedy vs beam(k) vs exhaustive, gains and measurement costs.

    python benchmarks/search.py                                  # conf/kernels/small.yaml, emulated
    python benchmarks/search.py --kernels gemm_tile_2_2_2 --max-steps 3 --max-states 20000
    python benchmarks/search.py --methods greedy,beam --store /tmp/search.sqlite
    python benchmarks/search.py --kernels all --methods greedy,beam --width 4   # all 194 kernels

Every method runs over the one MDP (max_steps deep) and one measurement store, in the order
given, so a later method's `new` column counts only the PTX texts no earlier method measured,
while `distinct` is what it would cost alone on an empty store. Exhaustive search stops at
`--max-states` states per kernel; a `*` marks a budget-limited (lower-bound) result. Gains are
log(base/best) in the backend's units (`emulated` = the cost model's estimate).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import yaml

from agents.search import SearchResult, beam, exhaustive, greedy, random_search
from chronos.measure import make_backend
from chronos.pipeline.config import KernelsConfig, kernel_ids
from envs.mdp import TransformMDP
from kernels import load

KERNEL_SETS = Path(__file__).resolve().parents[1] / "conf" / "kernels"


def run(mdp: TransformMDP, spec: object, method: str, args: argparse.Namespace) -> SearchResult:
    if method == "greedy":
        return greedy(mdp, spec)
    if method == "beam":
        return beam(mdp, spec, args.width)
    if method == "random":
        return random_search(mdp, spec, args.episodes, args.seed)
    if method == "exhaustive":
        return exhaustive(mdp, spec, max_states=args.max_states, partial_ok=True)
    raise SystemExit(f"unknown method {method!r}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--kernels", help="a set of conf/kernels (small, all, ...) or comma-separated ids (small)"
    )
    p.add_argument("--methods", default="greedy,beam,exhaustive")
    p.add_argument("--backend", default="emulated")
    p.add_argument("--store", default=None, help="measurement store path (default: in memory)")
    p.add_argument("--max-steps", type=int, default=6)
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-states", type=int, default=2000)
    p.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = p.parse_args()
    if args.smoke:
        args.kernels, args.methods = "gemm_tile_2_2_2", "greedy,beam,random,exhaustive"
        args.max_steps, args.width, args.episodes, args.max_states = 2, 2, 2, 10
    kernel_set = KERNEL_SETS / f"{args.kernels or 'small'}.yaml"
    if kernel_set.exists():  # a set of conf/kernels (small: 2 kernels per family)
        ids = kernel_ids(KernelsConfig(**yaml.safe_load(kernel_set.read_text())))
    else:
        ids = args.kernels.split(",")
    methods = args.methods.split(",")
    totals: dict[str, list[float]] = {m: [0.0, 0, 0, 0.0] for m in methods}
    with make_backend(args.backend, store=args.store) as backend:
        mdp = TransformMDP(backend, max_steps=args.max_steps)
        label = None
        print("| kernel | method | improvement | log-gain | distinct | hits | new | states "
              "| wall s | sequence |")  # fmt: skip
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for kid in ids:
            spec = load(kid)
            for m in methods:
                t0 = time.perf_counter()
                r = run(mdp, spec, m, args)
                label = label or r.backend_label
                star = "" if r.complete else "*"
                print(
                    f"| {kid} | {r.method} | {r.improvement:+.2%}{star} | {r.log_gain:.4f} "
                    f"| {r.measurements} | {r.cache_hits} | {r.backend_misses} | {r.states} "
                    f"| {time.perf_counter() - t0:.1f} | {' → '.join(r.sequence) or '(none)'} |",
                    flush=True,
                )
                t = totals[m]
                t[0] += r.log_gain
                t[1] += r.measurements
                t[2] += r.backend_misses or 0
                t[3] += r.wall_s
        print(f"\nTotals over {len(ids)} kernels ({label}, max_steps {args.max_steps}):\n")
        print("| method | mean log-gain | geomean improvement | distinct | new | wall s |")
        print("|---|---:|---:|---:|---:|---:|")
        for m, (g, d, n, w) in totals.items():
            mean = g / len(ids)
            print(
                f"| {m} | {mean:.4f} | {math.exp(-mean) - 1:+.2%} | {d:.0f} | {n:.0f} | {w:.0f} |"
            )


if __name__ == "__main__":
    main()
