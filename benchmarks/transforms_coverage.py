"""Time the action library over the corpus: masks, applications and the coverage report.

`python benchmarks/transforms_coverage.py [--arch sm_80]` prints the time per action_mask,
per apply_action (mean over all transforms and kernels) and for the full coverage table,
then the tables themselves (the ones `python -m chronos.transforms coverage` prints).
"""

from __future__ import annotations

import argparse
import time

import kernels
from chronos.transforms import CATALOGUE, action_mask, apply_action
from chronos.transforms.coverage import format_families, format_table, measure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="sm_80")
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    ids = kernels.list_kernels()
    specs = [kernels.load(k) for k in (ids[:2] if args.smoke else ids)]

    t0 = time.perf_counter()
    for s in specs:
        action_mask(s, s.ptx(), [])
    t_mask = (time.perf_counter() - t0) / len(specs)

    t0 = time.perf_counter()
    n = 0
    for s in specs:
        for i in range(len(CATALOGUE)):
            apply_action(s, s.ptx(), i)
            n += 1
    t_apply = (time.perf_counter() - t0) / n

    t0 = time.perf_counter()
    cov = measure(specs, arch=args.arch)
    t_cov = time.perf_counter() - t0
    print(f"action_mask   {t_mask * 1e3:8.1f} ms/kernel (cold parse + 20 preconditions)")
    print(f"apply_action  {t_apply * 1e3:8.1f} ms/application (warm caches)")
    print(f"coverage      {t_cov:8.1f} s for {len(specs)} kernels incl. ptxas ({args.arch})")
    print(format_table(cov.rows, args.arch))
    print(format_families(cov, args.arch))


if __name__ == "__main__":
    main()
