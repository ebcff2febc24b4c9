"""What one measurement costs, where the time goes, and how repeatable it is.

    python benchmarks/measure.py [--backend auto|emulated|cupy] [--kernels 8]
                                 [--processes 10] [--hits 2000] [--smoke]

1. Per-measurement latency split into assemble / load / verify / time, for the backend in
   use (named in the output). `cupy`: the phases the worker reports (ptxas for both builds,
   module load, verification launch, warm-up + timed launches). `emulated`: ptxas (cold
   cache), PTX decode (cold), emulation + verification of the small problem, and the cost
   model ("time" = the estimate, not a timing).
2. Store hit latency: `backend.measure` of a stored PTX (sha256 + SQLite lookup + decode), and
   the bare `MeasurementStore.get`.
3. Repeatability: the median cycles of one kernel measured in `--processes` fresh processes;
   coefficient of variation of those medians (target <= 0.5% on a GPU; the emulated figure is
   deterministic, so its CV is 0 by construction).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine

import kernels
from chronos.assemble import ptxas_version_for
from chronos.measure import make_backend, ptx_sha256
from kernels.spec import spec_fingerprint

OPTS: dict[str, str] = {}
"""Extra make_backend options (the cupy worker target of a dry run)."""


def resolve_backend(name: str) -> tuple[str, str]:
    if name != "auto":
        return name, f"{name} (asked for)"
    from chronos.measure.backends.auto import choose_backend

    return choose_backend()


def emulated_phases(spec) -> dict[str, float]:
    """Cold phase times of one emulated measurement (seconds), the same steps as
    EmulatedBackend.report: ptxas (with line info) and the SASS decode, PTX decode, emulation
    + verification, cost model."""
    from chronos.assemble import assemble, cache_clear
    from chronos.assemble.disasm import sass_function, with_line_info
    from chronos.caching import clear_all
    from chronos.emulate import verify
    from chronos.emulate.decode import cache_clear as decode_cache_clear
    from chronos.emulate.decode import decode
    from chronos.measure.backends.emulated import EmulatedBackend, _footprint
    from chronos.measure.costmodel import estimate

    ptx = spec.ptx()
    cache_clear()
    decode_cache_clear()
    t0 = time.perf_counter()
    asm = assemble(with_line_info(ptx), "sm_90", extra_args=("-lineinfo",))
    sass = sass_function(asm.cubin, spec.entry, "sm_90")
    t1 = time.perf_counter()
    decode(ptx, spec.entry)
    t2 = time.perf_counter()
    v = verify(spec, ptx, exact=True, trace=True)
    t3 = time.perf_counter()
    run = v.run
    res = asm.resources[spec.entry]
    full = spec.problem("full")
    estimate(
        run.program,
        run.trace,
        sass,
        run.block[0] * run.block[1] * run.block[2],
        arch="sm_90",
        registers=res.registers,
        shared_bytes=res.shared_bytes + full.dynamic_shared_bytes,
        total_blocks=full.grid[0] * full.grid[1] * full.grid[2],
        footprint_bytes=float(_footprint(spec, full)),
        emulated_footprint_bytes=float(_footprint(spec, spec.problem("small"))),
    )
    t4 = time.perf_counter()
    cache_clear()
    t5 = time.perf_counter()
    assemble(ptx, "sm_90")  # the floor: ptxas alone on the same state, no line info
    t6 = time.perf_counter()
    clear_all()
    EmulatedBackend(arch="sm_90").report(spec, ptx)  # the real path: ptxas overlaps the emulation
    t7 = time.perf_counter()
    return {
        "report": t7 - t6,
        "assemble": t1 - t0,
        "load": t2 - t1,
        "verify": t3 - t2,
        "time": t4 - t3,
        "total_cold": t4 - t0,
        "ptxas": t6 - t5,
    }


def latency_split(backend_name: str, specs) -> None:
    print(f"\n1. per-measurement latency, backend {backend_name} (ms)")
    header = f"{'kernel':<20}{'assemble':>10}{'load':>10}{'verify':>10}{'time':>10}{'total':>10}"
    if backend_name == "emulated":
        header += f"{'report':>10}{'ptxas':>10}"
    rows = []
    if backend_name == "emulated":
        print(header)
        for spec in specs:
            p = emulated_phases(spec)
            rows.append(p)
            print(
                f"{spec.id:<20}"
                + "".join(f"{p[k] * 1e3:>10.1f}" for k in ("assemble", "load", "verify", "time"))
                + "".join(f"{p[k] * 1e3:>10.1f}" for k in ("total_cold", "report", "ptxas"))
            )
    else:
        with make_backend(backend_name, store=False, **OPTS) as b:
            print(f"device: {b.device}")
            print(header)
            for spec in specs:
                t0 = time.perf_counter()
                m = b.measure(spec, spec.ptx())
                total = time.perf_counter() - t0
                ph = dict(m.extra.get("phases") or {})
                ph["total_cold"] = total
                rows.append(ph)
                flag = "" if m.valid else f"  INVALID: {m.error}"
                print(
                    f"{spec.id:<20}"
                    + "".join(
                        f"{ph.get(k, float('nan')) * 1e3:>10.1f}"
                        for k in ("assemble", "load", "verify", "time")
                    )
                    + f"{total * 1e3:>10.1f}{flag}"
                )
    if rows:
        med = {k: statistics.median(r.get(k, float("nan")) for r in rows) for k in rows[0]}
        print(
            f"{'median':<20}"
            + "".join(
                f"{med.get(k, float('nan')) * 1e3:>10.1f}"
                for k in ("assemble", "load", "verify", "time")
            )
            + f"{med['total_cold'] * 1e3:>10.1f}"
            + "".join(f"{med[k] * 1e3:>10.1f}" for k in ("report", "ptxas") if k in med)
        )
        if backend_name == "emulated":
            print(
                "   ('time' is the cost model's estimate step: emulated figures are estimates;"
                " 'total' the phases one after the other, 'report' a cold EmulatedBackend.report,"
                " whose ptxas and nvdisasm run while it emulates)"
            )
            ratios = [r["report"] / r["ptxas"] for r in rows]
            slow = sum(r["report"] > 0.25 for r in rows)
            print(
                f"   cold report / ptxas alone on the same PTX: median "
                f"{statistics.median(ratios):.1f}x, max {max(ratios):.1f}x (target <= 2x); "
                f"{slow} of {len(rows)} above 250 ms"
            )


def hit_latency(backend_name: str, spec, n: int) -> None:
    from chronos.measure.store import MeasurementStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        with make_backend(backend_name, store=path, **OPTS) as b:
            ptx = spec.ptx()
            b.measure(spec, ptx)
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                b.measure(spec, ptx)
                times.append(time.perf_counter() - t0)
            stats = b.stats
            key = (  # the key CachedBackend.lookup asks the store for
                ptx_sha256(ptx),
                spec.id,
                b.name,
                b.device,
                b.harness_version,
                b.config,
                spec_fingerprint(spec),
                ptxas_version_for(ptx),
            )
        with MeasurementStore(path) as s:
            if s.get(*key) is None:
                raise SystemExit(f"the store does not hold {spec.id} under the backend's key")
            raw = []
            for _ in range(n):
                t0 = time.perf_counter()
                s.get(*key)
                raw.append(time.perf_counter() - t0)
    times.sort()
    raw.sort()
    print(f"\n2. store hit latency ({n} hits, backend {backend_name}, file store)")
    print(
        f"   backend.measure on a hit: median {statistics.median(times) * 1e6:.1f} us, "
        f"p99 {times[int(0.99 * len(times)) - 1] * 1e6:.1f} us"
    )
    print(
        f"   MeasurementStore.get:     median {statistics.median(raw) * 1e6:.1f} us, "
        f"p99 {raw[int(0.99 * len(raw)) - 1] * 1e6:.1f} us"
    )
    print(f"   stats: hits {stats['hits']} misses {stats['misses']}")


def child(backend_name: str, kernel: str) -> None:
    """One fresh process: one measurement, printed as JSON (for the repeatability test)."""
    spec = kernels.load(kernel)
    with make_backend(backend_name, store=False, **OPTS) as b:
        m = b.measure(spec, spec.ptx())
    print(
        json.dumps(
            {
                "cycles": m.cycles,
                "valid": m.valid,
                "error": m.error,
                "clock_mhz": m.clock_mhz,
                "time_ns": m.time_ns,
            }
        )
    )


def repeatability(backend_name: str, kernel: str, processes: int) -> None:
    print(f"\n3. repeatability: {kernel}, {processes} fresh processes, backend {backend_name}")
    medians, clocks = [], []
    for _ in range(processes):
        out = subprocess.run(
            [sys.executable, __file__, "--child", kernel, "--backend", backend_name]
            + (["--worker-target", OPTS["worker_target"]] if OPTS else []),
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            rec = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            print(f"   child failed: {out.stderr[-500:]}")
            continue
        if not rec["valid"]:
            print(f"   invalid: {rec['error']}")
            continue
        medians.append(rec["cycles"])
        clocks.append(rec["clock_mhz"])
    if len(medians) >= 2:
        mean = statistics.fmean(medians)
        cv = statistics.stdev(medians) / mean if mean else float("nan")
        print(f"   medians: {', '.join(f'{c:.0f}' for c in medians)}")
        print(f"   mean {mean:.1f} cycles, CV {cv * 100:.3f}% (target <= 0.5% on a GPU)")
        if backend_name == "emulated":
            print("   (emulated: a deterministic estimate; CV 0 is by construction)")
        print(f"   SM clock per process (MHz): {', '.join(f'{c:.0f}' for c in clocks if c)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--kernels", type=int, default=8, help="how many corpus kernels (spread)")
    ap.add_argument("--processes", type=int, default=None, help="default 10 (cupy), 3 otherwise")
    ap.add_argument("--hits", type=int, default=2000)
    ap.add_argument("--kernel", default="gemm_tile_4_4_4", help="kernel for 2. and 3.")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--worker-target", default=None, help="cupy only: replace the GPU harness (dry runs)"
    )
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.kernels, args.hits, args.processes, args.kernel = 2, 20, 2, "gemm_tile_2_2_2"
    if args.worker_target:
        OPTS["worker_target"] = args.worker_target
    if args.child:
        child(args.backend, args.child)
        return
    name, reason = resolve_backend(args.backend)
    print(f"machine: {machine()}")
    print(f"backend: {reason}")
    ids = sorted(k if isinstance(k, str) else k.id for k in kernels.list_kernels())
    n = max(1, min(args.kernels, len(ids)))
    picks = sorted({round(i * (len(ids) - 1) / max(1, n - 1)) for i in range(n)})
    specs = [kernels.load(ids[i]) for i in picks]
    latency_split(name, specs)
    hit_latency(name, kernels.load(args.kernel), args.hits)
    processes = args.processes or (10 if name == "cupy" else 3)
    repeatability(name, args.kernel, processes)


if __name__ == "__main__":
    main()
