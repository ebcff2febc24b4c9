"""The slow, full correctness sweep: every corpus kernel x many random transform sequences.

    python benchmarks/emulate_sweep.py [--sequences 20] [--max-len 6] [--seed 0] [--workers 2]

Each sequence applies up to `--max-len` random actions allowed by the action mask (stopping
early at random), then verifies the final PTX in the emulator: bit-exact when every applied
transform is exact, within the kernel's tolerance otherwise. Prints counts by outcome, the
transforms involved in failures, the slowest verifications and the total time. The fast,
bounded version of this check is tests/test_emulate_corpus.py.
"""

from __future__ import annotations

import argparse
import os
import time
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

import kernels
from chronos.emulate import verify
from chronos.progress import Progress


def one_kernel(args: tuple[str, int, int, int]) -> list[tuple[str, list[str], str, str, float]]:
    """(kernel, transform names, outcome kind, error, seconds) for each sequence."""
    from chronos import transforms

    kernel_id, sequences, max_len, seed = args
    rng = np.random.default_rng([seed, zlib.crc32(kernel_id.encode())])
    spec = kernels.load(kernel_id)
    out = []
    for _ in range(sequences):
        ptx = spec.ptx()
        applied: list[int] = []
        for _ in range(int(rng.integers(1, max_len + 1))):
            mask = np.asarray(transforms.action_mask(spec, ptx, applied), bool)
            legal = [int(a) for a in np.flatnonzero(mask) if a != transforms.STOP]
            if not legal:
                break
            action = legal[int(rng.integers(len(legal)))]
            res = transforms.apply_action(spec, ptx, action)
            applied.append(action)
            if res.changed:
                ptx = res.ptx
        names = [transforms.CATALOGUE[a].name for a in applied]
        exact = all(transforms.CATALOGUE[a].exact for a in applied)
        t0 = time.perf_counter()
        v = verify(spec, ptx, exact=exact)
        out.append((kernel_id, names, v.kind, v.error or "", time.perf_counter() - t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=20, help="random sequences per kernel")
    ap.add_argument("--max-len", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--limit", type=int, default=None, help="only the first N kernels")
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.sequences, args.max_len, args.limit, args.workers = 1, 2, 2, 1
    ids = kernels.list_kernels()[: args.limit]
    jobs = [(k, args.sequences, args.max_len, args.seed) for k in ids]
    t0 = time.perf_counter()
    results: list[tuple[str, list[str], str, str, float]] = []
    with Progress("emulate_sweep", unit="kernel", total=len(jobs)) as bar:
        if args.workers > 1:
            with ProcessPoolExecutor(args.workers) as pool:
                for rows in pool.map(one_kernel, jobs):
                    results += rows
                    bar.update(1, failed=sum(r[2] != "ok" for r in results))
        else:
            for job in jobs:
                results += one_kernel(job)
                bar.update(1, failed=sum(r[2] != "ok" for r in results))
    wall = time.perf_counter() - t0
    kinds = Counter(r[2] for r in results)
    print(
        f"{len(results)} sequences over {len(ids)} kernels in {wall:.1f} s ({args.workers} workers)"
    )
    for kind, n in kinds.most_common():
        print(f"   {kind:12s} {n}")
    blame: Counter[str] = Counter()
    failures = [r for r in results if r[2] != "ok"]
    for r in failures:
        blame.update(set(r[1]))
    if failures:
        print("transforms present in failing sequences:")
        for name, n in blame.most_common():
            print(f"   {name:16s} {n}")
        print("first failures:")
        for k, names, kind, err, _ in failures[:10]:
            print(f"   {k} {names}: {kind}: {err[:160]}")
    times = sorted(results, key=lambda r: -r[4])[:5]
    per = [r[4] for r in results]
    print(
        f"verification: mean {np.mean(per) * 1e3:.0f} ms, "
        f"slowest {', '.join(f'{r[0]} {r[4] * 1e3:.0f} ms' for r in times)}"
    )


if __name__ == "__main__":
    main()
