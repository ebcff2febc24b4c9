"""The full semantic sweep of the action catalogue, in the CPU emulator.

    python benchmarks/transforms_semantics.py [--family reduce,softmax] [--kernels a,b]
        [--seeds 0,1] [--sequences 2] [--max-len 6] [--workers 2] [--module mykernels]
        [--transforms fast_math]

For every kernel: every transform alone, then `--sequences` seeded random mask-respecting
episodes of up to `--max-len` actions, each verified on every problem of
`chronos.transforms.semantics.SIZES` the spec defines ("small" and the ragged "check") and on
every seed: exact transforms bit for bit against the UNTRANSFORMED kernel's outputs,
rounding-changing ones against the reference within spec.tolerance. Prints the failures, the
counts per family and the time (backend: the CPU emulator). Exit status 1 on any failure.
The sampled version is tests/test_transforms_semantics.py. `--module` sweeps your own
kernels too (the module registers them; `--family` then names your family). `--transforms`
checks only the named transforms alone (add `--sequences 0` to skip the episodes), e.g.
fast_math, whose checks run every approximate instruction pushed to its PTX ISA bound.
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import kernels
from chronos.progress import Progress


def sweep_kernel(
    args: tuple[str, tuple[int, ...], int, int, frozenset[str] | None],
) -> tuple[str, int, list[str]]:
    """(kernel, checks run, failures) for one kernel; `only`: the transforms to check alone."""
    from chronos.transforms import CATALOGUE, apply_action
    from chronos.transforms.semantics import check, random_episode, sizes_of

    kernel_id, seeds, sequences, max_len, only = args
    spec = kernels.load(kernel_id)
    cases: list[tuple[str, str, bool]] = []
    for i, t in enumerate(CATALOGUE):
        if only is not None and t.name not in only:
            continue
        res = apply_action(spec, spec.ptx(), i)
        if res.changed:
            cases.append((t.name, res.ptx, t.exact))
    rng = np.random.default_rng([2026, zlib.crc32(kernel_id.encode())])
    for _ in range(sequences):
        ptx, applied = random_episode(spec, rng, max_len)
        if applied:
            names = "+".join(CATALOGUE[a].name for a in applied)
            exact = all(CATALOGUE[a].exact for a in applied)
            cases.append((names, ptx, exact))
    fails, n = [], 0
    for name, ptx, exact in cases:
        for size in sizes_of(spec):
            for seed in seeds:
                n += 1
                err = check(spec, ptx, exact, size=size, seed=seed)
                if err:
                    fails.append(f"{kernel_id} [{name}] {size} seed {seed}: {err[:300]}")
    return kernel_id, n, fails


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default=None, help="comma-separated families (default all)")
    ap.add_argument("--kernels", default=None, help="comma-separated kernel ids")
    ap.add_argument("--seeds", default="0,1", help="input seeds, comma-separated")
    ap.add_argument("--sequences", type=int, default=2, help="random episodes per kernel")
    ap.add_argument("--max-len", type=int, default=6, help="longest random episode")
    ap.add_argument("--workers", type=int, default=2, help="processes")
    ap.add_argument("--transforms", default=None, help="comma-separated: only these, alone")
    ap.add_argument(
        "--module",
        action="append",
        default=[],
        metavar="NAME",
        help="import this module first (it registers user kernels); repeatable",
    )
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.kernels, args.seeds, args.sequences, args.max_len = "gemm_tile_2_2_2", "0", 1, 2
        args.workers = 1
    if args.module:
        try:
            kernels.import_modules(args.module)
        except kernels.KernelSpecError as exc:
            ap.error(str(exc))
    if args.kernels:
        ids = args.kernels.split(",")
    elif args.family:
        ids = [k for f in args.family.split(",") for k in kernels.list_kernels(f)]
    else:
        ids = kernels.list_kernels()
    seeds = tuple(int(s) for s in args.seeds.split(","))
    only = frozenset(args.transforms.split(",")) if args.transforms else None
    if only is not None:
        from chronos.transforms import CATALOGUE

        unknown = only - {t.name for t in CATALOGUE}
        if unknown:
            ap.error(f"unknown transforms: {', '.join(sorted(unknown))}")
    t0 = time.perf_counter()
    checks: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    fails: list[str] = []
    jobs = [(k, seeds, args.sequences, args.max_len, only) for k in ids]
    with (
        ProcessPoolExecutor(args.workers) as pool,
        Progress("transforms_semantics", unit="kernel", total=len(jobs)) as bar,
    ):
        for kernel_id, n, bad in pool.map(sweep_kernel, jobs):
            bar.update(1, failed=len(fails) + len(bad))
            fam = kernels.load(kernel_id).family
            checks[fam] += n
            failed[fam] += len(bad)
            fails += bad
            print(f"{kernel_id:<45} {n:>4} checks {len(bad):>3} failed", flush=True)
    for f in fails:
        print("FAIL", f)
    print(f"\n{'family':<12} {'checks':>7} {'failed':>7}   (backend: emulated, CPU)")
    for fam in sorted(checks):
        print(f"{fam:<12} {checks[fam]:>7} {failed[fam]:>7}")
    total = sum(checks.values())
    print(
        f"{len(ids)} kernels, {total} checks, {len(fails)} failed, {time.perf_counter() - t0:.0f} s"
    )
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
