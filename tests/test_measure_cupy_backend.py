"""The cupy backend's parent side on CPU (fake GPU harness), and the real harness on a GPU."""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np
import pytest

from chronos.measure import make_backend
from chronos.measure.backends.cupy import (
    HARNESS_VERSION,
    CupyBackend,
    CupyBackendError,
    harness_version,
    throttle_stats,
)
from kernels import load

HERE = os.path.abspath(__file__)
FAKE = f"{HERE}:fake_gpu"
CLOCK = 1980.0


class FakeGpu:
    """Checks the request like the real harness would, then returns synthetic samples.

    A marker comment in the PTX picks a fault: `// FAKE:hang`, `crash`, `raise`, `fatal`,
    `mismatch`, `garbage` (samples of the wrong shape), `flaky` (crashes in the first worker
    only: a first-contact fault), `nonsticky` (an invalid, non-fatal CUDA error)."""

    info = {"device": "Fake H100", "arch": "sm_90", "clock_mhz_max": CLOCK}

    def __init__(self, config: dict[str, Any]) -> None:
        self.inputs: dict[str, Any] = {}
        self.config = config

    def __call__(self, req: dict[str, Any]) -> dict[str, Any]:
        import time

        assert req["op"] == "measure"
        ptx = req["plain"]["ptx"]
        for b in ("plain", "instrumented"):
            assert req[b]["cubin"][:4] == b"\x7fELF"
        assert req["timer_symbol"] in req["instrumented"]["ptx"]
        if req["inputs"] is not None:
            self.inputs[req["inputs_key"]] = (req["inputs"], req["reference"])
        inputs, ref = self.inputs[req["inputs_key"]]  # KeyError if never sent
        assert set(req["outputs"]) <= set(ref)
        if "// FAKE:flaky" in ptx and not os.path.exists(self.config["flaky_marker"]):
            open(self.config["flaky_marker"], "w").close()  # only the first worker crashes
            os._exit(9)
        if "// FAKE:nonsticky" in ptx:
            return {"ok": True, "valid": False, "error": "CUDA error: out of resources"}
        if "// FAKE:hang" in ptx:
            time.sleep(3600)
        if "// FAKE:crash" in ptx:
            os._exit(9)
        if "// FAKE:raise" in ptx:
            raise RuntimeError("CUDA_ERROR_ILLEGAL_ADDRESS")
        if "// FAKE:fatal" in ptx:
            return {"ok": True, "valid": False, "error": "misaligned address", "fatal": True}
        if "// FAKE:mismatch" in ptx:
            return {"ok": True, "valid": False, "error": "output mismatch (plain build): C[0]"}
        n = req["repeats"]
        base = 1000.0 + len(ptx) % 1000
        cycles = base + np.arange(n) % 5
        if "// FAKE:garbage" in ptx:
            cycles = cycles[:-1]
        ns = cycles / CLOCK * 1e3 * 1000  # 1000x longer: above the minimum clock window
        return {
            "ok": True,
            "valid": True,
            "timers": timers(cycles, ns, req["timer_bytes"]),
            "l2": req["l2"],
            "event_ns": [base / CLOCK * 1e3] * n,
            "clock_mhz_max": CLOCK,
            "verify": [{"ok": True, "bit_exact": True, "max_abs_err": 0.0}] * 2,
            "phases": {"load": 0.001, "verify": 0.002, "time": 0.003},
            "regs_plain": 40,
            "regs_instrumented": 44,
        }


def timers(cycles: np.ndarray, ns: np.ndarray, nbytes: int) -> np.ndarray:
    """Per-launch timer arrays: SM 0 spans the given cycles/ns, SM 1 half of them."""
    slots = nbytes // 32
    t = np.zeros((cycles.size, 4, slots), np.uint64)
    for sm, frac in ((0, 1.0), (1, 0.5)):
        t[:, 0, sm] = ~np.uint64(10_000)
        t[:, 1, sm] = (10_000 + cycles * frac).astype(np.uint64)
        t[:, 2, sm] = ~np.uint64(50_000)
        t[:, 3, sm] = (50_000 + ns * frac).astype(np.uint64)
    return t.reshape(cycles.size, -1)


def fake_gpu(config: dict[str, Any]) -> FakeGpu:
    return FakeGpu(config)


def no_gpu(config: dict[str, Any]) -> FakeGpu:
    raise RuntimeError("cudaErrorNoDevice")


@pytest.fixture(scope="module")
def spec():
    return load("gemm_tile_4_4_4")


@pytest.fixture
def backend():
    b = CupyBackend(worker_target=FAKE, repeats=21, warmup=2, timeout_s=30)
    yield b
    b.close()


def marked(ptx: str, mark: str) -> str:
    return ptx + f"// FAKE:{mark}\n"


@pytest.mark.requires_ptxas
def test_measurement_from_samples(backend: CupyBackend, spec) -> None:
    m = backend.measure(spec, spec.ptx())
    assert m.valid, m.error
    assert m.backend == "cupy" and m.device == "Fake H100" and not m.estimate
    assert m.n == 21 and m.cycles_q1 <= m.cycles <= m.cycles_q3
    assert m.clock_mhz == pytest.approx(CLOCK / 1000)  # ns were scaled 1000x
    assert m.regs == 48 and m.spills == 0
    assert m.extra["regs_instrumented"] >= m.regs
    assert set(m.extra["phases"]) == {"assemble", "load", "verify", "time"}
    assert m.harness_version == HARNESS_VERSION and m.extra["l2"] == "cold"
    assert m.extra["sms_used"] == 2 and m.extra["instrumented_spills_more"] is False


@pytest.mark.requires_ptxas
@pytest.mark.parametrize(
    "mark,kind", [("hang", "timeout"), ("crash", "crash"), ("garbage", "garbage")]
)
def test_faults_become_invalid_and_restart(spec, mark: str, kind: str) -> None:
    with CupyBackend(worker_target=FAKE, repeats=5, warmup=0, timeout_s=2) as b:
        assert b.measure(spec, spec.ptx()).valid
        bad = b.measure(spec, marked(spec.ptx(), mark))
        assert not bad.valid and bad.error.startswith(kind), bad.error
        assert bad.extra["fault"] == kind
        assert bad.extra["transient"] is True  # never stored: see the caching test
        again = b.measure(spec, spec.ptx())  # a fresh worker, inputs sent again
        assert again.valid, again.error
        assert b.faults == {kind: 2}  # the first attempt and its retry on a fresh worker


@pytest.mark.requires_ptxas
def test_exception_and_fatal_and_mismatch(backend: CupyBackend, spec) -> None:
    m = backend.measure(spec, marked(spec.ptx(), "raise"))
    assert not m.valid and "ILLEGAL_ADDRESS" in m.error
    gen = backend.worker.generation
    m = backend.measure(spec, marked(spec.ptx(), "fatal"))
    assert not m.valid and m.error == "misaligned address"
    assert not backend.worker.alive
    m = backend.measure(spec, marked(spec.ptx(), "mismatch"))
    assert not m.valid and "mismatch" in m.error
    assert backend.worker.generation == gen + 1
    assert backend.measure(spec, spec.ptx()).valid


@pytest.mark.requires_ptxas
def test_ptxas_rejection_is_invalid_without_the_gpu(backend: CupyBackend, spec) -> None:
    bad = spec.ptx().replace("fma.rn.f32", "fma.rn.f99", 1)
    m = backend.measure(spec, bad)
    assert not m.valid and "ptxas rejected" in m.error


@pytest.mark.requires_ptxas
def test_measure_many_keeps_order_and_store_caches(spec, tmp_path) -> None:
    texts = [spec.ptx() + f"// variant {i}\n" for i in range(4)]
    with make_backend("cupy", store=tmp_path / "s.sqlite", worker_target=FAKE, repeats=5) as b:
        ms = b.measure_many(spec, texts)
        assert [m.ptx_sha256 for m in ms] == [b.inner.prepare(spec, t).sha for t in texts]
        assert b.stats["misses"] == 4
        again = b.measure_many(spec, texts[::-1])
        assert again == ms[::-1] and b.stats["hits"] == 4
    with make_backend("replay", store=tmp_path / "s.sqlite") as r:
        assert r.measure(spec, texts[2]).cycles == ms[2].cycles


@pytest.mark.requires_ptxas
def test_a_first_contact_fault_is_retried_on_a_fresh_worker(spec, tmp_path) -> None:
    """A crash of the first worker only: the retry on a new worker measures it."""
    marker = {"flaky_marker": str(tmp_path / "crashed")}
    with CupyBackend(
        worker_target=FAKE, worker_config=marker, repeats=5, warmup=0, timeout_s=10
    ) as b:
        m = b.measure(spec, marked(spec.ptx(), "flaky"))
        assert m.valid, m.error
        assert m.extra["retried_after"] == "crash" and b.worker.restarts == 1


@pytest.mark.requires_ptxas
def test_worker_faults_are_never_cached(spec, tmp_path) -> None:
    """A crash on both attempts is invalid but stays out of the store (and so out of replay
    data); a real verdict (a wrong output) is stored."""
    store = tmp_path / "s.sqlite"
    with make_backend("cupy", store=store, worker_target=FAKE, repeats=5, timeout_s=10) as b:
        crash, wrong = marked(spec.ptx(), "crash"), marked(spec.ptx(), "mismatch")
        assert not b.measure(spec, crash).valid and not b.measure(spec, wrong).valid
        assert b.lookup(spec, crash) is None
        assert b.lookup(spec, wrong) is not None
        assert b.stats["writes"] == 1


@pytest.mark.requires_ptxas
def test_a_non_sticky_cuda_error_keeps_the_worker(backend: CupyBackend, spec) -> None:
    assert backend.measure(spec, spec.ptx()).valid
    pid = backend.worker.pid
    m = backend.measure(spec, marked(spec.ptx(), "nonsticky"))
    assert not m.valid and "out of resources" in m.error
    assert backend.worker.pid == pid and backend.worker.restarts == 0


def test_harness_version_follows_the_harness_source(tmp_path, monkeypatch) -> None:
    import chronos.measure.backends.cupy as cb

    assert HARNESS_VERSION == harness_version() and HARNESS_VERSION.startswith("cupy-")
    measure = os.path.dirname(os.path.dirname(cb.__file__))
    for name in cb.HARNESS_SOURCES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes((measure + "/" + name).encode())
    monkeypatch.setattr(cb, "__file__", str(tmp_path / "backends" / "cupy.py"))
    before = harness_version()
    (tmp_path / "harness" / "cupy_harness.py").write_text("# changed\n")
    assert harness_version() != before


@pytest.mark.requires_ptxas
def test_instrumented_spills_are_recorded_and_flagged(spec) -> None:
    """Under maxnreg 32 the instrumented build spills more than the plain one: flagged."""
    tight = re.sub(r"(\.visible \.entry [^(]+\([^)]*\))", r"\1\n.maxnreg 24", spec.ptx(), count=1)
    with CupyBackend(worker_target=FAKE, repeats=5, warmup=0, timeout_s=10) as b:
        prep = b.prepare(spec, tight)
        assert prep.error is None, prep.error
        m = b.measure(spec, tight)
    assert m.valid, m.error
    assert m.extra["spills_instrumented"] == prep.spills_instrumented
    assert m.extra["instrumented_spills_more"] == (prep.spills_instrumented > (prep.spills or 0))
    assert prep.spills_instrumented > 0


def test_l2_mode_is_checked_and_keyed() -> None:
    with pytest.raises(ValueError, match="l2 must be"):
        CupyBackend(l2="warm")
    with CupyBackend(l2="hot", arch="sm_90") as hot, CupyBackend(arch="sm_90") as cold:
        assert hot.cache_config()["l2"] == "hot" and cold.cache_config()["l2"] == "cold"


def test_worker_that_cannot_start_raises_clearly(spec) -> None:
    b = CupyBackend(worker_target=f"{HERE}:no_gpu")
    with pytest.raises(CupyBackendError, match="cannot start its GPU worker"):
        b.measure(spec, spec.ptx())
    b.close()


def test_throttle_stats() -> None:
    cycles = np.array([2000.0, 2000.0, 1000.0, 10.0])
    ns = np.array([1000.0 * 1000, 2000.0 * 1000, 1000.0 * 1000, 5.0])
    mhz, throttled = throttle_stats(cycles, ns, 2.0 * 1000 / 1000, 0.75)
    assert mhz[0] == pytest.approx(2.0) and np.isnan(mhz[3])
    assert throttled.tolist() == [False, True, True, False]


# --- on a GPU -----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["gemm_tile_4_4_4", "gemm_tile_8_8_8"])
def test_real_gpu_measurement(kernel: str) -> None:
    spec = load(kernel)
    with CupyBackend(repeats=50, warmup=5) as b:
        m = b.measure(spec, spec.ptx())
        assert m.valid, m.error
        assert m.cycles > 0 and m.time_ns > 0 and m.clock_mhz > 100
        assert m.extra["bit_exact"]
        twice = b.measure(spec, spec.ptx())
        assert abs(twice.cycles - m.cycles) / m.cycles < 0.05


@pytest.mark.gpu
def test_real_gpu_wrong_output_is_invalid() -> None:
    spec = load("gemm_tile_4_4_4")
    # Accumulators start at 1.0 instead of 0.0: every output is off by one.
    wrong = spec.ptx().replace("0f00000000", "0f3F800000")
    assert wrong != spec.ptx()
    with CupyBackend(repeats=5, warmup=1) as b:
        m = b.measure(spec, wrong)
        assert not m.valid and "mismatch" in m.error


@pytest.mark.gpu
def test_real_gpu_misaligned_store_restarts_worker() -> None:
    spec = load("gemm_tile_4_4_4")
    # A 4-byte store at an address 2 bytes off: "misaligned address" poisons the context.
    bad, n = re.subn(
        r"st\.global\.f32 \t\[(%rd\d+)\]", r"st.global.f32 \t[\1+2]", spec.ptx(), count=1
    )
    assert n == 1
    with CupyBackend(repeats=5, warmup=1, timeout_s=60) as b:
        m = b.measure(spec, bad)
        assert not m.valid
        assert b.measure(spec, spec.ptx()).valid


@pytest.mark.gpu
def test_real_gpu_spans_cover_the_grid_and_events_match_them() -> None:
    """The full grid runs on every SM; the hold-queued event time is the kernel's own span
    (no host launch latency in it), and the busiest SM's span is within the kernel's."""
    spec = load("gemm_tile_8_8_8")
    with CupyBackend(repeats=30, warmup=3) as b:
        m = b.measure(spec, spec.ptx())
        sms = int(b.worker.info["sm_count"])
    assert m.valid, m.error
    assert m.extra["sms_used"] == sms and m.extra["l2"] == "cold"
    wall = m.extra["wall_ns_median"]
    assert m.cycles / m.clock_mhz * 1e3 <= wall * 1.05
    assert 0.7 * wall <= m.time_ns <= 1.5 * wall, (m.time_ns, wall)


@pytest.mark.gpu
def test_real_gpu_non_sticky_launch_error_keeps_the_worker() -> None:
    spec = load("gemm_tile_4_4_4")
    bad = re.sub(r"(\.visible \.entry [^(]+\([^)]*\))", r"\1\n.reqntid 128", spec.ptx(), count=1)
    with CupyBackend(repeats=5, warmup=1) as b:
        assert b.measure(spec, spec.ptx()).valid
        gen = b.worker.generation
        m = b.measure(spec, bad)
        assert not m.valid and "fault" not in m.extra, m.error
        assert b.worker.generation == gen and b.measure(spec, spec.ptx()).valid
