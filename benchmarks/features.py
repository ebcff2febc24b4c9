"""Feature extraction speed over the corpus: parse + the static features, per kernel (CPU only).

    python benchmarks/features.py [--repeats 5]

Prints the median and worst per-kernel time of `extract(ptx_text)` (parse included) and of
`extract(module)` (parse excluded); the design's budget is well under 10 ms per kernel.
No GPU or ptxas is involved: the two ptxas features are passed in by callers that assembled.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from chronos.features import extract
from chronos.ptx import parse
from kernels import list_kernels, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = parser.parse_args()
    ids = list_kernels()
    if args.smoke:
        args.repeats, ids = 1, ids[:3]

    specs = [load(k) for k in ids]
    texts = [(s, s.ptx()) for s in specs]
    with_parse: list[float] = []
    without_parse: list[float] = []
    for spec, text in texts:
        best_full = best_feat = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            module = parse(text)
            t1 = time.perf_counter()
            extract(module, spec.entry)
            t2 = time.perf_counter()
            best_full = min(best_full, t2 - t0)
            best_feat = min(best_feat, t2 - t1)
        with_parse.append(best_full * 1e3)
        without_parse.append(best_feat * 1e3)

    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, python {platform.python_version()}")
    print(f"{len(texts)} kernels, best of {args.repeats} per kernel (CPU, no backend involved)")
    for label, xs in (("parse + features", with_parse), ("features only", without_parse)):
        print(
            f"{label:17s} median {statistics.median(xs):6.2f} ms/kernel   "
            f"max {max(xs):6.2f} ms   total {sum(xs):7.1f} ms"
        )


if __name__ == "__main__":
    main()
