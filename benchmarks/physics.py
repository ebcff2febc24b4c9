"""Hold the `emulated` cost model (an ESTIMATE, never cycles) to the physics of the hardware.

    python benchmarks/physics.py [--parts roofline,curves,littles,hints,bounds,compute]
        [--archs sm_80,sm_86,sm_89,sm_90] [--data ../shared/data/gpu-benches] [--smoke]

1. roofline: the corpus' coalesced streams (saxpy, vec4 saxpy, fused elementwise, the Triton
   add) untransformed on their "full" problem: compulsory DRAM bytes (every buffer read once,
   every written buffer written once) / estimated seconds, as a share of the data-sheet peak.
   Target 75-99% on every profile.
2. curves: every point of every measured curve in the gpu-benches folder with a matching
   profile (stream bandwidth against occupancy, pointer-chase latency, L1 and L2 bandwidth),
   model beside measurement, and the median absolute error per curve. Targets: <= 15% per
   stream curve, latency plateaus within 15%, L1/L2 plateaus within 20%.
3. littles: a grid-stride saxpy at 1, 2, 4 ... 64 warps per SM: cycles per iteration of one
   warp (target: within 25% of the pointer-chase DRAM latency plus issue) and bandwidth, which
   must grow at most linearly, monotonically, and flatten at the roofline.
4. hints: every cache-policy or prefetch action on those streams moves the estimate by <= 3%.
5. bounds: no estimate of a corpus kernel after random action sequences implies more DRAM
   bytes/s than the data-sheet peak or more FP32 FLOP/s than the SMs have.
6. compute: gemm_tile_8_8_8 (a large register tile) below peak FP32 FLOP/s with its binding
   unit named; maxnreg_32 (spills) moves local traffic through L1/L2 and costs.

Every figure printed is an estimate of the `emulated` backend (MODEL_VERSION below), except
the columns marked "measured", which are the gpu-benches suite's silicon figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kernels  # noqa: E402
from chronos.arch import ArchProfile, arch_profile  # noqa: E402
from chronos.measure.backends.emulated import EmulatedBackend, _buffer_bytes  # noqa: E402
from chronos.measure.costmodel import MODEL_VERSION  # noqa: E402
from chronos.transforms import ACTION_NAMES, action_mask, apply_action  # noqa: E402
from tests.helpers import physics_kernels as pk  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "gpu-benches"
ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90")
CURVE_PROFILES = {"a100_40": "a100", "h100_pcie": "h100_pcie", "h200": "h200"}
"""gpu-benches file stem -> the profile with that GPU's data sheet (A100 80 GB: variant not
stated, V100: no profile; both left out)."""
STREAMS = (
    "elementwise_saxpy_256_1",
    "elementwise_saxpy_vec4_128_1",
    "elementwise_fused_256_2",
    "triton_add_fp32_b1024_w4",
)
HINTS = ("ld_nc", "ld_cg", "ld_cs", "ld_evict_last", "ld_l2_256B", "prefetch_l2", "st_cs", "st_cg")


def compulsory_bytes(spec: kernels.KernelSpec, problem: kernels.Problem) -> float:
    """Every buffer the kernel reads, read once, and every buffer it writes, written once."""
    nbytes = _buffer_bytes(spec, problem)
    return float(
        sum(
            nbytes[b.name] * ((b.role in ("in", "inout")) + (b.role in ("out", "inout")))
            for b in spec.buffers
        )
    )


def gb_per_s(nbytes: float, cycles: float, prof: ArchProfile) -> float:
    return nbytes / (cycles / (prof.clock_mhz * 1e6)) / 1e9


def _backend(**kw) -> EmulatedBackend:
    """An emulated backend without the env's wall-clock budget: these are known-good kernels,
    still bounded by the step budget, and a loaded machine must not turn them into timeouts."""
    return EmulatedBackend(time_limit_s=None, **kw)


def estimate(be: EmulatedBackend, spec: kernels.KernelSpec, ptx: str | None = None):
    m = be.measure(spec, ptx if ptx is not None else spec.ptx())
    if not m.valid:
        raise RuntimeError(f"{spec.id}: {m.error}")
    return m


# --- 1. roofline ----------------------------------------------------------------------------


def roofline(archs: list[str]) -> dict[str, dict[str, float]]:
    """arch -> kernel -> share of the DRAM peak."""
    out: dict[str, dict[str, float]] = {}
    print("\n## 1. Roofline: coalesced streams on their full problem (target 75-99% of peak)")
    print(f"{'kernel':34s} " + " ".join(f"{a:>9s}" for a in archs))
    for kid in STREAMS:
        spec = kernels.load(kid)
        row = []
        for arch in archs:
            prof = arch_profile(arch)
            m = estimate(_backend(arch=arch), spec)
            share = gb_per_s(compulsory_bytes(spec, spec.problem("full")), m.cycles, prof) / (
                prof.dram_gb_per_s
            )
            out.setdefault(arch, {})[kid] = share
            row.append(f"{100 * share:8.1f}%")
        print(f"{kid:34s} " + " ".join(row))
    return out


# --- 2. measured curves ---------------------------------------------------------------------


@dataclass
class Curve:
    name: str
    points: list[tuple[str, float, float]]
    """(x label, model, measured)."""

    @property
    def median_error(self) -> float:
        return statistics.median(abs(m / g - 1.0) for _, m, g in self.points)

    def show(self, unit: str) -> None:
        print(f"\n{self.name} ({unit}; model = emulated estimate, measured = gpu-benches)")
        for x, m, g in self.points:
            print(f"  {x:>10s}  model {m:9.1f}  measured {g:9.1f}  {100 * (m / g - 1):+6.1f}%")
        print(f"  median |error| {100 * self.median_error:.1f}%")


def read_stream(path: Path) -> list[tuple[int, dict[str, float]]]:
    rows = []
    for line in path.read_text().splitlines()[1:]:
        if "GB/s:" not in line:
            continue
        head, vals = line.split("GB/s:")
        init, read, scale, triad = (float(v) for v in vals.split())
        rows.append((int(head.split()[0]), {"init": init, "read": read, "scale": scale,
                                            "triad": triad}))  # fmt: skip
    return rows


def stream_curves(stem: str, smoke: bool) -> list[Curve]:
    prof = arch_profile(CURVE_PROFILES[stem])
    be = _backend(arch=CURVE_PROFILES[stem])
    rows = read_stream(DATA / "stream" / f"{stem}.txt")
    if smoke:
        rows = rows[::8]
    curves = []
    for kind in ("init", "read", "scale", "triad"):
        pts = []
        for block, measured in rows:
            spec = pk.stream_spec(kind, block, prof)
            m = estimate(be, spec)
            streams = len(pk.STREAM_KINDS[kind]) + (kind in ("scale", "triad"))
            model = gb_per_s(streams * 8.0 * pk.STREAM_N, m.cycles, prof)
            pts.append((f"{block} thr", model, measured[kind]))
        curves.append(Curve(f"stream {kind}, {stem} ({prof.name})", pts))
    return curves


def read_latency(path: Path) -> list[tuple[float, float]]:
    out = []
    for line in path.read_text().splitlines():
        f = line.split()
        if len(f) == 5:
            out.append((float(f[2]) * 1024, float(f[4])))
    return out


CHASE_WARM_LINES = 4096
"""Buffers up to this many lines are chased for two whole passes (the second warm)."""
CHASE_FIRST_TOUCH_STEPS = 512
CHASE_MAX_BYTES = 256 * 2**20
"""Larger buffers are emulated at this size (the measured DRAM plateau is flat beyond ~70 MB
but for TLB misses, which the model does not price)."""


def chase_cycles(be: EmulatedBackend, buffer_bytes: int) -> float:
    """Cycles per load of a chase through `buffer_bytes`, as a long measurement sees it: the
    estimate's growth per load from one stretch of the chain to two. A buffer of at most
    CHASE_WARM_LINES lines is chased a whole pass, then two (the second pass hits wherever
    the buffer fits); a larger one 512 then 1024 first touches, which a hot L2 serves with
    the share of the buffer it holds."""
    nbytes = min(buffer_bytes, CHASE_MAX_BYTES) // pk.LINE * pk.LINE
    lines = nbytes // pk.LINE
    steps = lines if lines <= CHASE_WARM_LINES else CHASE_FIRST_TOUCH_STEPS
    one = estimate(be, pk.chase_spec(nbytes, steps))
    two = estimate(be, pk.chase_spec(nbytes, 2 * steps))
    return (two.cycles - one.cycles) / steps


def latency_curve(stem: str, smoke: bool) -> Curve:
    profile = {"a100_40": "a100", "a100_80": "a100", "h100_pcie": "h100_pcie"}[stem]
    be = _backend(arch=profile, l2="hot")
    rows = read_latency(DATA / "latency" / f"{stem}.txt")
    rows = rows[:: 10 if smoke else 3]
    pts = [(f"{b / 1024:.0f} kB", chase_cycles(be, int(b)), c)
           for b, c in rows if b >= 2 * pk.LINE]  # fmt: skip
    return Curve(f"pointer-chase latency, {stem} ({arch_profile(profile).name})", pts)


def plateau_errors(curve: Curve) -> dict[str, float]:
    """Median |error| over the points of each measured plateau (L1, L2, DRAM): the first
    points, the points within 5% of the L2 level, the last points."""
    pts = curve.points
    l1 = pts[:3]
    dram = pts[-3:]
    l2_level = statistics.median(g for _, _, g in pts[len(pts) // 3 : len(pts) // 2])
    l2 = [p for p in pts if abs(p[2] / l2_level - 1) < 0.05]

    def med(ps):
        return statistics.median(abs(m / g - 1) for _, m, g in ps) if ps else float("nan")

    return {"L1": med(l1), "L2": med(l2), "DRAM": med(dram)}


L1_ITERS = 16
"""The L1 sweep's passes over the chunk: the estimate's growth from 16 to 32 passes, each
load's latency being the mix of the first (missing) pass and the warm ones."""


def read_cache(path: Path, size_col: int, bw_col: int) -> list[tuple[float, float]]:
    """(data set kB, effective GB/s) rows of an l1-cache or l2-cache result file."""
    rows = []
    for line in path.read_text().splitlines()[1:]:
        f = line.split()
        if len(f) > bw_col + 1 and f[bw_col + 1] == "GB/s":
            rows.append((float(f[size_col]), float(f[bw_col])))
    return rows


def cache_curves(smoke: bool) -> list[Curve]:
    curves = []
    for stem, profile in (("h100_pcie", "h100_pcie"), ("a100_80", "a100")):
        prof = arch_profile(profile)
        be = _backend(arch=profile, l2="hot")
        path = DATA / "l1-cache" / f"{stem}.txt"
        rows = [r for r in read_cache(path, 0, 4) if r[0] in pk.L1_SIZES_KB]
        pts = []
        for kb, bw in rows[:: 2 if smoke else 1]:
            one = estimate(be, pk.l1_spec(int(kb), prof.sms, L1_ITERS))
            two = estimate(be, pk.l1_spec(int(kb), prof.sms, 2 * L1_ITERS))
            nbytes = prof.sms * kb * 1024 * L1_ITERS
            model = gb_per_s(nbytes, two.cycles - one.cycles, prof)
            pts.append((f"{kb:.0f} kB", model, bw))
        curves.append(Curve(f"L1 bandwidth plateau, {stem} ({prof.name})", pts))
    for stem, profile in (("h100_pcie", "h100_pcie"), ("a100_80", "a100"), ("h200", "h200")):
        prof = arch_profile(profile)
        be = _backend(arch=profile, l2="hot")
        path = DATA / "l2-cache" / f"{stem}.txt"
        rows = [r for r in read_cache(path, 2, 6) if r[0] <= 20000][:: 4 if smoke else 2]
        pts = []
        for kb, bw in rows:
            chunks = max(1, int(kb // 512))
            grid = 200_000
            m = estimate(be, pk.l2_spec(512 * 1024, chunks, 1024, grid, 1))
            model = gb_per_s(grid * 512.0 * 1024, m.cycles, prof)
            pts.append((f"{kb:.0f} kB", model, bw))
        curves.append(Curve(f"L2 bandwidth plateau, {stem} ({prof.name})", pts))
    return curves


def curves(smoke: bool, data: Path) -> list[Curve]:
    global DATA
    DATA = data
    if not DATA.is_dir():
        print(f"\n## 2. Measured curves: skipped ({DATA} not found; --data PATH)")
        return []
    print("\n## 2. Measured curves (gpu-benches) against the model")
    out: list[Curve] = []
    for stem in CURVE_PROFILES:
        for c in stream_curves(stem, smoke):
            c.show("GB/s")
            out.append(c)
    for stem in ("a100_40", "h100_pcie"):
        c = latency_curve(stem, smoke)
        c.show("cycles per load")
        errs = plateau_errors(c)
        print("  plateaus: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in errs.items()))
        out.append(c)
    for c in cache_curves(smoke):
        c.show("GB/s")
        out.append(c)
    print("\nmedian |error| per curve:")
    for c in out:
        print(f"  {100 * c.median_error:5.1f}%  {c.name}")
    return out


# --- 3. Little's law ------------------------------------------------------------------------


def littles(archs: list[str], smoke: bool) -> dict[str, list[tuple[int, float, float]]]:
    """arch -> [(warps per SM, cycles per iteration of one warp, GB/s)]."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    print("\n## 3. Little's law: grid-stride saxpy, one block (two above 32 warps) per SM")
    warps = (1, 4, 16, 32, 64) if smoke else (1, 2, 4, 8, 16, 32, 48, 64)
    for arch in archs:
        prof = arch_profile(arch)
        be = _backend(arch=arch)
        rows = []
        for w in warps:
            if w > prof.max_warps_per_sm:
                continue
            spec = pk.saxpy_spec(w, prof)
            m = estimate(be, spec)
            full = spec.problem("full")
            n = full.sizes["n"]
            iters = n / (full.grid[0] * full.block[0])
            rows.append((w, m.cycles / iters, gb_per_s(12.0 * n, m.cycles, prof)))
        out[arch] = rows
        print(f"{prof.name}: DRAM latency {prof.dram_latency:.0f} cycles, peak "
              f"{prof.dram_gb_per_s:.0f} GB/s")  # fmt: skip
        for w, it, bw in rows:
            print(f"  {w:3d} warps/SM  {it:8.1f} cycles/iteration  {bw:8.1f} GB/s "
                  f"({100 * bw / prof.dram_gb_per_s:5.1f}% of peak)")  # fmt: skip
    return out


# --- 4. hints -------------------------------------------------------------------------------


def stream_kernels() -> list[str]:
    """The corpus' streams: every elementwise kernel and every Triton add."""
    return [k for k in kernels.list_kernels() if k.startswith(("elementwise_", "triton_add_"))]


def hints(archs: list[str], ids: list[str] | None = None) -> dict[tuple[str, str, str], float]:
    """(arch, kernel, action) -> relative change of the estimate, over the streams within
    75-99% of the roofline whose trace shows no L1 reuse; the others are printed with why."""
    out = {}
    print("\n## 4. Cache-policy and prefetch actions on cold streams (target |change| <= 3%)")
    for arch in archs:
        be = _backend(arch=arch)
        for kid in ids or stream_kernels():
            spec = kernels.load(kid)
            m0 = estimate(be, spec)
            full = spec.problem("full")
            share = gb_per_s(compulsory_bytes(spec, full), m0.cycles, be.profile) / (
                be.profile.dram_gb_per_s
            )
            mask = action_mask(spec, spec.ptx(), arch=arch)
            row = []
            for a in HINTS:
                if a not in ACTION_NAMES or not mask[ACTION_NAMES.index(a)]:
                    continue
                res = apply_action(spec, spec.ptx(), a, arch=arch)
                if not res.changed:
                    continue
                rel = estimate(be, spec, res.ptx).cycles / m0.cycles - 1.0
                row.append(f"{a} {100 * rel:+.2f}%")
                if 0.75 <= share <= 0.99 and m0.extra["l1_hit_rate"] == 0:
                    out[(arch, kid, a)] = rel
            if share < 0.75:
                why = f" (at {100 * share:.0f}% of the roofline: not a check)"
            elif m0.extra["l1_hit_rate"] > 0:
                why = f" (L1 reuse, hit rate {100 * m0.extra['l1_hit_rate']:.0f}%: not a check)"
            else:
                why = ""
            print(f"  {arch} {kid:34s} " + ", ".join(row) + why)
    worst = max(out.items(), key=lambda kv: abs(kv[1]), default=None)
    if worst:
        print(f"  largest |change| among the checked pairs: {100 * worst[1]:+.2f}% {worst[0]}")
    return out


# --- 5. bounds ------------------------------------------------------------------------------


def bounds(archs: list[str], per_family: int, seed: int) -> list[str]:
    """Violations: estimates implying more than the data-sheet DRAM or FP32 peak."""
    rng = random.Random(seed)
    bad: list[str] = []
    print("\n## 5. Bounds: DRAM bytes/s and FP32 FLOP/s implied by every estimate")
    by_family: dict[str, list[str]] = {}
    for kid in kernels.list_kernels():
        by_family.setdefault(kernels.load(kid).family, []).append(kid)
    sample = [k for ids in by_family.values() for k in rng.sample(ids, min(per_family, len(ids)))]
    worst = {"dram": 0.0, "fp32": 0.0}
    for arch in archs:
        prof = arch_profile(arch)
        be = _backend(arch=arch)
        for kid in sample:
            spec = kernels.load(kid)
            ptx = spec.ptx()
            states = [ptx]
            for _ in range(3):
                mask = action_mask(spec, ptx, arch=arch)
                legal = [i for i, ok in enumerate(mask) if ok and ACTION_NAMES[i] != "stop"]
                if not legal:
                    break
                ptx = apply_action(spec, ptx, rng.choice(legal), arch=arch).ptx
                states.append(ptx)
            for state in states:
                m = be.measure(spec, state)
                if not m.valid:
                    continue
                full = spec.problem("full")
                warps = full.grid[0] * full.grid[1] * full.grid[2] * -(-int(
                    full.block[0] * full.block[1] * full.block[2]) // 32)  # fmt: skip
                dram = m.extra["dram_bytes_per_warp"] * warps / m.cycles / prof.dram_bytes_per_clk
                fma = m.extra["counts_per_warp"].get("fp32", 0.0) * m.extra["work_scale"]
                fp32 = 64.0 * fma * warps / m.cycles / prof.peak_fp32_flops_per_clk
                worst["dram"] = max(worst["dram"], dram)
                worst["fp32"] = max(worst["fp32"], fp32)
                if dram > 1.0 or fp32 > 1.0:
                    bad.append(f"{arch} {kid}: DRAM {dram:.2f}x, FP32 {fp32:.2f}x of peak")
    print(f"  {len(sample)} kernels x up to 4 states x {len(archs)} archs; highest share of "
          f"peak: DRAM {100 * worst['dram']:.1f}%, FP32 {100 * worst['fp32']:.1f}%; "
          f"violations: {len(bad)}")  # fmt: skip
    for b in bad:
        print("  VIOLATION", b)
    return bad


# --- 6. compute -----------------------------------------------------------------------------


def compute(archs: list[str]) -> dict[str, dict[str, object]]:
    """arch -> {share: the estimate's own FMAs over its span, as a share of peak FP32;
    problem_share: 2MNK over the span; bound; spill: the maxnreg_32 Measurement}."""
    out = {}
    print("\n## 6. Compute roofline: gemm_tile_8_8_8 and a spilling register cap")
    spec = kernels.load("gemm_tile_8_8_8")
    full = spec.problem("full")
    blocks = full.grid[0] * full.grid[1] * full.grid[2]
    warps = blocks * -(-(full.block[0] * full.block[1] * full.block[2]) // 32)
    for arch in archs:
        prof = arch_profile(arch)
        be = _backend(arch=arch)
        m = estimate(be, spec)
        fma = m.extra["counts_per_warp"].get("fp32", 0.0) * m.extra["work_scale"]
        share = 64.0 * fma * warps / m.cycles / prof.peak_fp32_flops_per_clk
        flops = 2.0 * full.sizes["M"] * full.sizes["N"] * full.sizes["K"]
        problem_share = flops / m.cycles / prof.peak_fp32_flops_per_clk
        cap = ACTION_NAMES.index("maxnreg_32")
        spill = be.measure(spec, apply_action(spec, spec.ptx(), cap, arch=arch).ptx)
        out[arch] = {"share": share, "problem_share": problem_share, "bound": m.extra["bound"],
                     "spill": spill}  # fmt: skip
        cost = spill.cycles / m.cycles - 1 if spill.valid else float("nan")
        print(f"  {prof.name}: its FMAs at {100 * share:.1f}% of peak FP32 (2MNK: "
              f"{100 * problem_share:.1f}%), bound by {m.extra['bound']}; maxnreg_32: "
              f"{spill.spills} spill instructions, {100 * cost:+.1f}%")  # fmt: skip
    print("  (2MNK counts the full problem's K = 256; the trace's warps run the small problem's "
          "K = 128, a known limit of work_scale: docs/emulator.md)")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="roofline,curves,littles,hints,bounds,compute")
    ap.add_argument("--archs", default=",".join(ARCHS), help="profiles (sm or device names)")
    ap.add_argument("--data", type=Path, default=DATA, help="the gpu-benches result folder")
    ap.add_argument("--per-family", type=int, default=3, help="kernels per family (bounds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a few points of each part (CI)")
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    archs = args.archs.split(",")
    print(f"model {MODEL_VERSION}; every figure is an emulated estimate unless marked measured")
    if "roofline" in parts:
        roofline(archs)
    if "curves" in parts:
        curves(args.smoke, args.data)
    if "littles" in parts:
        littles(archs, args.smoke)
    if "hints" in parts:
        hints(archs[-1:] if args.smoke else archs)
    if "bounds" in parts:
        bounds(archs[-1:] if args.smoke else archs, 1 if args.smoke else args.per_family, args.seed)
    if "compute" in parts:
        compute(archs[-1:] if args.smoke else archs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
