"""How fast the CPU emulator verifies kernels and produces `emulated` measurements.

    python benchmarks/emulate.py [--arch sm_90] [--limit 64] [--workers 2] [--approx] [--smoke]

1. Per corpus kernel: emulation of the "small" problem with verification (decode cached),
   without and with the dynamic trace the cost model needs.
2. Emulated measurements per second through `EmulatedBackend.report` (ptxas + emulation +
   verification + cost model): cold (assembly and decode caches emptied, distinct PTX) and
   warm (repeated PTX: ptxas and decode come from the caches), in one process and in a pool
   of worker processes.
3. With `--approx` (only this part): what verifying approximate instructions at their PTX ISA
   bounds costs, on every corpus kernel whose PTX, as shipped or after `fast_math`, executes
   them: `verify` (tolerance, races checked) with and without the perturbed runs.

Figures from the cost model are estimates, printed as such.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from _common import machine

import kernels
from chronos.assemble import cache_clear
from chronos.emulate import verify
from chronos.emulate.decode import cache_clear as decode_cache_clear
from chronos.measure.backends.emulated import EmulatedBackend


def variant(ptx: str, i: int) -> str:
    """A semantically identical PTX with a distinct hash (defeats every cache)."""
    return ptx + f"\n// variant {i}\n"


def per_kernel(ids: list[str]) -> None:
    print("\n1. emulation + verification per kernel (small problem, decode cached)")
    rows = []
    for k in ids:
        spec = kernels.load(k)
        ptx = spec.ptx()
        verify(spec, ptx)
        t0 = time.perf_counter()
        bare = verify(spec, ptx, races=False)
        t1 = time.perf_counter()
        plain = verify(spec, ptx)
        t2 = time.perf_counter()
        traced = verify(spec, ptx, trace=True)
        t3 = time.perf_counter()
        assert bare.ok and plain.ok and traced.ok, (k, plain.error, traced.error)
        steps = traced.run.steps if traced.run else 0
        rows.append((k, t1 - t0, t2 - t1, t3 - t2, steps))
    for k, a, b, c, steps in rows:
        print(
            f"   {k:18s} {a * 1e3:7.1f} ms   race-checked {b * 1e3:7.1f} ms   "
            f"traced {c * 1e3:7.1f} ms   {steps:6d} steps"
        )
    bare = [r[1] for r in rows]
    plain = [r[2] for r in rows]
    traced = [r[3] for r in rows]
    print(
        f"   {len(rows)} kernels: mean {statistics.mean(bare) * 1e3:.1f} ms "
        f"(max {max(bare) * 1e3:.1f} ms); race-checked mean {statistics.mean(plain) * 1e3:.1f} ms "
        f"(x{sum(plain) / sum(bare):.2f}); traced + race-checked mean "
        f"{statistics.mean(traced) * 1e3:.1f} ms (max {max(traced) * 1e3:.1f} ms); all bit-exact"
    )


def _measure(args: tuple[str, str, str]) -> float:
    kernel_id, ptx, arch = args
    rep = EmulatedBackend(arch=arch).report(kernels.load(kernel_id), ptx)
    assert rep.valid and rep.cost is not None, rep.error
    return rep.cost.estimate


def throughput(ids: list[str], arch: str, workers: int) -> None:
    print("\n2. emulated measurements per second (ptxas + emulation + verify + cost model)")
    specs = [kernels.load(k) for k in ids]
    cold_jobs = [(s.id, variant(s.ptx(), i), arch) for i, s in enumerate(specs)]
    cache_clear()
    decode_cache_clear()
    t0 = time.perf_counter()
    estimates = [_measure(j) for j in cold_jobs]
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    for j in cold_jobs:
        _measure(j)
    warm = time.perf_counter() - t0
    n = len(cold_jobs)
    print(f"   1 process, cold: {n / cold:6.1f} measurements/s ({cold / n * 1e3:.0f} ms each)")
    print(f"   1 process, warm: {n / warm:6.1f} measurements/s ({warm / n * 1e3:.0f} ms each)")
    if workers > 1:
        jobs = [(s.id, variant(s.ptx(), 1000 + i), arch) for i, s in enumerate(specs)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_measure, [(ids[0], specs[0].ptx(), arch)] * workers))
            t0 = time.perf_counter()
            list(pool.map(_measure, jobs))
            par = time.perf_counter() - t0
        print(f"   {workers} processes, cold: {n / par:6.1f} measurements/s")
    lo, hi = min(estimates), max(estimates)
    print(f"   estimates (model units, {arch}): {lo:.0f} .. {hi:.0f}")


def approx_cost(ids: list[str]) -> None:
    print("\n3. verification with the approximations at their bounds (small problem)")
    from chronos.transforms import CATALOGUE, apply_action

    fast_math = next(i for i, t in enumerate(CATALOGUE) if t.name == "fast_math")
    rows = []
    for k in ids:
        spec = kernels.load(k)
        res = apply_action(spec, spec.ptx(), fast_math)
        for label, ptx in (("as shipped", spec.ptx()), ("fast_math", res.ptx)):
            if label == "fast_math" and not res.changed:
                continue
            nominal = verify(spec, ptx, exact=False, approx=False)  # also warms the decoder
            if not nominal.run or not nominal.run.approx_executed:
                continue
            t0 = time.perf_counter()
            verify(spec, ptx, exact=False, approx=False)
            t1 = time.perf_counter()
            pushed = verify(spec, ptx, exact=False)
            t2 = time.perf_counter()
            rows.append((k, label, t1 - t0, t2 - t1, pushed.ok, pushed.kind))
    for k, label, a, b, _ok, kind in rows:
        print(f"   {k:40s} {label:10s} {a * 1e3:7.1f} ms  pushed {b * 1e3:7.1f} ms  {kind}")
    if rows:
        nom, push = sum(r[2] for r in rows), sum(r[3] for r in rows)
        print(
            f"   {len(rows)} kernel states execute approximations: nominal mean "
            f"{nom / len(rows) * 1e3:.1f} ms, with the 3 pushed runs "
            f"{push / len(rows) * 1e3:.1f} ms (x{push / nom:.2f}); "
            f"{sum(r[4] for r in rows)} verify"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--limit", type=int, default=64, help="corpus kernels to use")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--approx", action="store_true", help="only part 3, on the whole corpus")
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.limit, args.workers = 2, 1
    print(f"chronos emulator benchmark on {machine()}")
    if args.approx:
        approx_cost(kernels.list_kernels())
        return
    ids = kernels.list_kernels()[: args.limit]
    per_kernel(ids)
    throughput(ids, args.arch, args.workers)


if __name__ == "__main__":
    main()
