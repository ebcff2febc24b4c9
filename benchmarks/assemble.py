"""How much ptxas costs a training step, and how much the cache saves.

    python benchmarks/assemble.py [--arch sm_90] [--repeats 5] [--limit 16] [--smoke]

Per kernel: the cold time (cache emptied first, so a full ptxas run: process start, temp files,
assembly, ELF parse) and the cache-hit time (hash the PTX, look it up, copy the result). Then
the whole set through `assemble_many`, serially and with a thread per CPU, which is what the
measurement layer does while the GPU times other candidates. Uses the kernel corpus when
`kernels` has one, else a few synthetic kernels.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable

from chronos.assemble import assemble, assemble_many, cache_clear, find_ptxas, ptxas_version


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            if m := re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M):
                cpu = m[1].strip()
    except OSError:
        pass
    return f"{platform.node()}: {cpu}, {os.cpu_count()} CPUs, {platform.platform()}"


def synthetic() -> dict[str, str]:
    """Register-hog kernels of growing size: n loads, a barrier, n stores (n values live)."""

    def hog(n: int) -> str:
        lines = [
            ".version 8.0",
            ".target sm_80",
            ".address_size 64",
            ".visible .entry hog(.param .u64 a, .param .u64 b)",
            "{",
            f"  .reg .f32 %f<{n}>;",
            "  .reg .b64 %rd<3>;",
            "  ld.param.u64 %rd1, [a];",
            "  ld.param.u64 %rd2, [b];",
            *[f"  ld.global.f32 %f{i}, [%rd1+{4 * i}];" for i in range(n)],
            "  bar.sync 0;",
            *[f"  st.global.f32 [%rd2+{4 * i}], %f{n - 1 - i};" for i in range(n)],
            "  ret;",
            "}",
        ]
        return "\n".join(lines) + "\n"

    return {f"synthetic_hog_{n}": hog(n) for n in (8, 32, 64, 128, 256)}


def corpus(limit: int) -> dict[str, str]:
    try:
        import kernels

        ids = list(kernels.list_kernels())[:limit]
        return {k: kernels.load(k).ptx() for k in ids}
    except (ImportError, AttributeError):
        return {}


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="sm_90")
    parser.add_argument("--repeats", type=int, default=5, help="cold runs per kernel (median)")
    parser.add_argument("--hits", type=int, default=1000, help="cache hits per kernel (mean)")
    parser.add_argument("--limit", type=int, default=16, help="corpus kernels to time")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.hits, args.limit = 1, 10, 2

    exe = find_ptxas()
    ptxs = corpus(args.limit)
    source = "kernel corpus" if ptxs else "synthetic kernels (no corpus found)"
    ptxs = ptxs or synthetic()
    print(f"machine: {machine()}")
    print(f"ptxas:   {exe} ({ptxas_version(exe)}), -arch={args.arch} -O3")
    print(f"kernels: {len(ptxs)} {source}\n")
    print(f"{'kernel':<28} {'SASS':>6} {'regs':>5} {'cold ms':>9} {'hit us':>8} {'speed-up':>9}")
    for name, ptx in ptxs.items():
        colds = []
        for _ in range(args.repeats):
            cache_clear()
            colds.append(timed(lambda ptx=ptx: assemble(ptx, args.arch)))
        asm = assemble(ptx, args.arch)
        hit = timed(lambda ptx=ptx: [assemble(ptx, args.arch) for _ in range(args.hits)])
        hit /= args.hits
        cold = statistics.median(colds)
        entry = next(iter(asm.resources))
        print(
            f"{name:<28} {asm.sass_instructions[entry]:>6} {asm.resources[entry].registers:>5} "
            f"{cold * 1e3:>9.1f} {hit * 1e6:>8.1f} {cold / hit:>8.0f}x"
        )

    texts = list(ptxs.values())
    workers = os.cpu_count() or 1
    cache_clear()
    serial = timed(lambda: assemble_many(texts, args.arch, workers=1))
    cache_clear()
    parallel = timed(lambda: assemble_many(texts, args.arch, workers=workers))
    print(
        f"\nassemble_many, {len(texts)} kernels, cold: serial {serial * 1e3:.0f} ms, "
        f"{workers} workers {parallel * 1e3:.0f} ms ({serial / parallel:.1f}x)"
    )


if __name__ == "__main__":
    main()
