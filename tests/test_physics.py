"""The `emulated` cost model against the physics of the hardware (issue 33's checks, sampled;
`python benchmarks/physics.py` prints every point on every profile).

Every figure here is an emulated estimate; the measured curves are the public gpu-benches
suite's (../shared/data/gpu-benches), read in place and skipped when that folder is absent.
"""

from __future__ import annotations

import statistics

import pytest

import kernels
from chronos.arch import arch_profile
from chronos.measure.backends.emulated import EmulatedBackend
from tests.helpers import physics_kernels as pk
from tests.helpers.scripts import load_script

pytestmark = pytest.mark.requires_ptxas

ARCHS = ("sm_80", "sm_86", "sm_89", "sm_90")


@pytest.fixture(scope="module")
def bench():  # type: ignore[no-untyped-def]
    return load_script("benchmarks/physics.py", "physics_bench")


def _needs_data(bench) -> None:  # type: ignore[no-untyped-def]
    if not bench.DATA.is_dir():
        pytest.skip(f"gpu-benches data not found at {bench.DATA}")


@pytest.mark.parametrize("arch", ARCHS)
def test_coalesced_streams_run_near_the_dram_roofline(bench, arch: str) -> None:  # type: ignore[no-untyped-def]
    """Untransformed streams on >= 64 MiB reach 75-99% of the data-sheet peak (measured
    plateaus: 87-90% for triad-like mixes, 95-99% for read- or write-only streams)."""
    prof = arch_profile(arch)
    be = EmulatedBackend(arch=arch)
    for kid in ("elementwise_saxpy_256_1", "triton_add_fp32_b1024_w4"):
        spec = kernels.load(kid)
        assert bench.compulsory_bytes(spec, spec.problem("full")) >= 64 * 2**20 * 2
        m = bench.estimate(be, spec)
        share = bench.gb_per_s(bench.compulsory_bytes(spec, spec.problem("full")), m.cycles, prof)
        assert 0.75 <= share / prof.dram_gb_per_s <= 0.99, (kid, share)


def test_stream_curves_follow_the_measured_ones(bench) -> None:  # type: ignore[no-untyped-def]
    """A sample of gpu-stream's occupancy sweep on H100 PCIe and H200 (every 4th point of read
    and triad): median |error| <= 15% per curve (the benchmark holds all four kernels)."""
    _needs_data(bench)
    for stem in ("h100_pcie", "h200"):
        prof = arch_profile(stem)
        be = EmulatedBackend(arch=stem)
        rows = bench.read_stream(bench.DATA / "stream" / f"{stem}.txt")[1::4]
        for kind, streams in (("read", 1), ("triad", 3)):
            errs = []
            for block, measured in rows:
                m = bench.estimate(be, pk.stream_spec(kind, block, prof))
                model = bench.gb_per_s(streams * 8.0 * pk.STREAM_N, m.cycles, prof)
                errs.append(abs(model / measured[kind] - 1))
            assert statistics.median(errs) <= 0.15, (stem, kind, errs)


@pytest.mark.parametrize(
    ("kb", "measured"),
    [(16, 34.2), (1512, 265.6), (8453, 265.6), (125026, 649.9)],
    ids=["L1", "L2", "L2-late", "DRAM"],
)
def test_pointer_chase_plateaus(bench, kb: int, measured: float) -> None:  # type: ignore[no-untyped-def]
    """H100 PCIe pointer-chase plateaus (gpu-benches latency/h100_pcie.txt) within 15%."""
    be = EmulatedBackend(arch="h100_pcie", l2="hot")
    assert bench.chase_cycles(be, kb * 1024) == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize("arch", ("sm_80", "sm_90"))
def test_littles_law_in_the_latency_bound_regime(bench, arch: str) -> None:  # type: ignore[no-untyped-def]
    """A grid-stride saxpy: one warp per SM pays the DRAM latency plus its issue per iteration
    (within 25% of the pointer-chase figure); bandwidth grows monotonically, never faster than
    the warps, and flattens at the roofline."""
    prof = arch_profile(arch)
    rows = bench.littles([arch], smoke=True)[arch]
    warps = [w for w, _, _ in rows]
    bws = [bw for _, _, bw in rows]
    one_iter = rows[0][1]
    assert warps[0] == 1
    assert prof.dram_latency <= one_iter <= 1.25 * prof.dram_latency
    assert bws == sorted(bws)
    for (w0, _, b0), (w1, _, b1) in zip(rows, rows[1:], strict=False):
        assert b1 / b0 <= (w1 / w0) * 1.0001, (w0, w1, b0, b1)
    assert 0.75 <= bws[-1] / prof.dram_gb_per_s <= 0.99
    assert bws[-1] / bws[-2] < 1.5  # past the knee: twice the warps buy far less than 2x


@pytest.mark.parametrize("arch", ("sm_80", "sm_90"))
def test_cache_hints_are_worth_little_on_cold_streams(bench, arch: str) -> None:  # type: ignore[no-untyped-def]
    """On a stream already near the roofline with no reuse, no cache-policy or prefetch action
    moves the estimate by more than 3% (published measurements: a few percent at most); an
    fp16 stream (L2::256B and prefetch once looked like 19% there) is among them."""
    ids = ["elementwise_saxpy_256_1", "elementwise_haxpy_h2_256_2", "elementwise_fused_256_2"]
    out = bench.hints([arch], ids)
    assert {k for _, k, _ in out} == set(ids)
    assert len(out) >= 12
    assert all(abs(rel) <= 0.03 for rel in out.values()), out


def test_no_estimate_beats_a_peak(bench) -> None:  # type: ignore[no-untyped-def]
    """One kernel per family, untransformed and after three random actions, on sm_90: no
    estimate implies more DRAM bytes/s or FP32 FLOP/s than the data sheet."""
    assert bench.bounds(["sm_90"], per_family=1, seed=1) == []


def test_gemm_is_bound_below_the_fp32_peak(bench) -> None:  # type: ignore[no-untyped-def]
    """A large register tile runs below peak FP32 and names its binding unit; a register cap
    that spills costs (local traffic through L1/L2)."""
    out = bench.compute(["sm_90"])["sm_90"]
    assert 0 < out["share"] < 1.0
    assert out["bound"] in ("issue", "lsu", "l1", "l2", "dram", "latency")
    spill = out["spill"]
    if spill.valid and spill.spills:
        spec = kernels.load("gemm_tile_8_8_8")
        base = bench.estimate(EmulatedBackend(arch="sm_90"), spec)
        assert spill.cycles > base.cycles


@pytest.mark.parametrize("device", ("h200", "b200", "rtx5090"))
def test_littles_law_holds_on_the_newer_profiles(bench, device: str) -> None:  # type: ignore[no-untyped-def]
    """The device profiles (issue 34): one warp per SM pays about the DRAM latency, bandwidth
    grows at most linearly and monotonically, and never passes the data sheet. (Their top is
    not held to 75%: an H200 or B200 needs more bytes in flight than 64 warps of a scalar
    saxpy keep, as gpu-benches' H200 triad shows: 74% at full occupancy.)"""
    prof = arch_profile(device)
    rows = bench.littles([device], smoke=True)[device]
    bws = [bw for _, _, bw in rows]
    assert prof.dram_latency <= rows[0][1] <= 1.25 * prof.dram_latency
    assert bws == sorted(bws)
    for (w0, _, b0), (w1, _, b1) in zip(rows, rows[1:], strict=False):
        assert b1 / b0 <= (w1 / w0) * 1.0001, (w0, w1, b0, b1)
    assert 0.5 <= bws[-1] / prof.dram_gb_per_s <= 0.99
