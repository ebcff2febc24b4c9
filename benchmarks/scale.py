"""Greedy over a fixed kernel set on 1, 2, ... local Ray measurement workers (emulated backend).

    python benchmarks/scale.py                          # in-process, then 1 and 2 Ray workers
    python benchmarks/scale.py --workers 1 2 4 --max-steps 3 --kernels gemm_tile_4_4_4

Every run starts from an empty in-memory store and empty transform/mask memos, so each one
measures every candidate greedy proposes (the figures are `emulated` estimates; the work timed
is ptxas + CPU emulation + the cost model, inside the workers). Prints, per configuration, the
wall time of the greedy search (Ray start-up and actor start excluded, shown separately),
split into the time spent waiting on the backend ("measure") and in the driver (transforms,
masks, features: "driver"), measurements per second and the speed-up over one Ray worker,
and checks that every configuration found the same sequences and cycles. See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from agents.greedy import greedy_kernel
from chronos.caching import clear_all
from chronos.measure import make_backend
from envs.mdp import TransformMDP
from kernels import load

KERNELS = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_6", "gemm_tile_4_4_4"]
ROOT = str(Path(__file__).resolve().parents[1])


def run(name: str, specs: list, max_steps: int, **opts: object) -> dict:  # type: ignore[type-arg]
    """One greedy pass over `specs`; returns timings, counts and the results."""
    clear_all()
    t0 = time.perf_counter()
    with make_backend(name, store=None, **opts) as backend:
        t1 = time.perf_counter()
        mdp = TransformMDP(backend, max_steps=max_steps)
        results = [greedy_kernel(mdp, s) for s in specs]
        t2 = time.perf_counter()
        misses = backend.stats["misses"]
    return {
        "start_s": t1 - t0,
        "wall_s": t2 - t1,
        "measure_s": mdp.measure_s,
        "measured": misses,
        "results": [
            (r.kernel_id, tuple(r.actions), r.base_cycles, r.final_cycles) for r in results
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--kernels", nargs="+", default=KERNELS)
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.workers, args.kernels, args.max_steps = [1], KERNELS[:1], 1

    import ray

    specs = [load(k) for k in args.kernels]
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    ray.init(
        num_cpus=max(args.workers),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    ray_start = time.perf_counter() - t0
    print(
        f"greedy over {len(specs)} kernels, max_steps={args.max_steps}, backend=emulated "
        f"(estimates), {os.cpu_count()} CPUs visible; ray.init {ray_start:.1f} s"
    )
    rows = [("in-process", run("emulated", specs, args.max_steps))]
    for n in args.workers:
        rows.append((f"ray x{n}", run("ray", specs, args.max_steps, backend="emulated", workers=n)))
    ray.shutdown()

    base = next((r["wall_s"] for name, r in rows if name == "ray x1"), rows[0][1]["wall_s"])
    print(
        f"{'config':<12}{'start s':>9}{'wall s':>9}{'measure s':>11}{'driver s':>10}"
        f"{'measured':>10}{'meas/s':>9}{'speed-up':>10}"
    )
    for name, r in rows:
        print(
            f"{name:<12}{r['start_s']:>9.1f}{r['wall_s']:>9.1f}{r['measure_s']:>11.1f}"
            f"{r['wall_s'] - r['measure_s']:>10.1f}{r['measured']:>10d}"
            f"{r['measured'] / r['wall_s']:>9.2f}{base / r['wall_s']:>9.2f}x"
        )
    same = all(r["results"] == rows[0][1]["results"] for _, r in rows)
    print(f"same sequences and cycles in every configuration: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
