"""make_backend, the store wrapper, replay, auto and the CLI (emulated backend, no GPU)."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

import chronos.measure.backends.auto as auto
from chronos.measure import Backend, Measurement, backend_names, make_backend, register_backend
from chronos.measure.__main__ import main as cli
from chronos.measure.backends.replay import ReplayMiss
from chronos.measure.store import MeasurementStore
from kernels import load


@pytest.fixture(scope="module")
def spec():
    return load("gemm_tile_2_2_2")


class Counting:
    """A registered toy backend that counts how often it really measures."""

    name = "counting"
    device = "abacus"
    harness_version = "count-1"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def measure(self, spec, ptx: str) -> Measurement:
        from chronos.measure import ptx_sha256

        self.calls += 1
        if self.fail:
            return Measurement.invalid(
                "rejected",
                backend=self.name,
                device=self.device,
                harness_version=self.harness_version,
                kernel_id=spec.id,
                ptx_sha256=ptx_sha256(ptx),
            )
        return Measurement(
            cycles=float(len(ptx)),
            cycles_q1=None,
            cycles_q3=None,
            time_ns=None,
            n=1,
            valid=True,
            error=None,
            backend=self.name,
            device=self.device,
            clock_mhz=None,
            regs=None,
            spills=None,
            harness_version=self.harness_version,
            ptx_sha256=ptx_sha256(ptx),
            kernel_id=spec.id,
        )


register_backend("counting", Counting)


def test_names_and_protocol() -> None:
    assert {"emulated", "cupy", "replay", "auto", "counting"} <= set(backend_names())
    with pytest.raises(ValueError, match="unknown measurement backend"):
        make_backend("abacus")


def test_store_wrapper_read_and_write_through(spec, tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with make_backend("counting", store=path) as b:
        assert isinstance(b, Backend) and b.name == "counting" and b.device == "abacus"
        a = b.measure(spec, spec.ptx())
        assert b.measure(spec, spec.ptx()) == a
        b.measure_many(spec, [spec.ptx(), spec.ptx() + "\n", spec.ptx() + "\n"])
        assert b.inner.calls == 2
        assert b.stats["hits"] == 2 and b.stats["misses"] == 3
        assert 0 < b.stats["hit_rate"] < 1
    with make_backend("counting", store=path) as b:  # persisted across processes/objects
        assert b.measure(spec, spec.ptx()) == a and b.inner.calls == 0
    with make_backend("counting", store=False) as b:  # no caching at all
        b.measure(spec, spec.ptx())
        b.measure(spec, spec.ptx())
        assert b.inner.calls == 2 and b.stats["hits"] == 0
    store = MeasurementStore()
    with make_backend("counting", store=store) as b:  # shared store object is not closed
        b.measure(spec, spec.ptx())
    assert len(store) == 1


def test_store_key_covers_the_spec_and_ptxas(spec) -> None:
    """Issue 13, item 1: a spec registered again with a weaker contract or another reference
    is measured afresh, never served the old verdict."""
    with make_backend("counting") as b:
        m = b.measure(spec, spec.ptx())
        assert m.spec_fingerprint == spec.fingerprint and m.ptxas_version
        weaker = dataclasses.replace(spec, alignment={k: 4 for k in spec.alignment})
        fixed = dataclasses.replace(spec, reference_fn=lambda p, i: {"C": i["C"]})
        for changed in (weaker, fixed):
            assert b.measure(changed, spec.ptx()).spec_fingerprint == changed.fingerprint
        assert b.inner.calls == 3
        assert b.measure(spec, spec.ptx()) == m and b.inner.calls == 3


def test_invalid_results_are_cached(spec) -> None:
    with make_backend("counting", fail=True) as b:
        m = b.measure(spec, spec.ptx())
        assert not m.valid and m.error == "rejected"
        b.measure(spec, spec.ptx())
        assert b.inner.calls == 1


@pytest.mark.requires_ptxas
def test_emulated_through_make_backend(spec, tmp_path: Path) -> None:
    with make_backend("emulated", store=tmp_path / "e.sqlite") as b:
        m = b.measure(spec, spec.ptx())
        assert m.valid and m.estimate and m.backend == "emulated"
        assert m.ptxas_version[:3] in ("12.", "13.") and m.spec_fingerprint == spec.fingerprint
        assert b.measure(spec, spec.ptx()) == m and b.stats["hits"] == 1
    # Options that change the estimate are part of the key.
    with make_backend("emulated", store=tmp_path / "e.sqlite", arch="sm_80") as b:
        b.measure(spec, spec.ptx())
        assert b.stats["misses"] == 1


def test_auto_without_gpu(monkeypatch: pytest.MonkeyPatch, spec, caplog) -> None:
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    ok, why = auto.gpu_visible()
    assert not ok and "CuPy" in why
    with caplog.at_level("WARNING", logger="chronos.measure"), make_backend("auto") as b:
        assert b.name == "emulated" and "auto: emulated" in b.auto_reason
    # Falling back to estimates is a warning, not an INFO line nobody sees.
    assert any(r.levelname == "WARNING" and "estimates" in r.getMessage() for r in caplog.records)


def test_auto_with_a_gpu_picks_cupy(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    )
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert auto.choose_backend()[0] == "cupy"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert auto.choose_backend()[0] == "emulated"


@pytest.mark.parametrize("driver", [12020, 12080, 13000])
def test_auto_on_a_cuda_12_or_13_driver_picks_cupy(
    driver: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The corpus lowers to PTX ISA 7.0: every CUDA 12 driver takes it."""
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, driverGetVersion=lambda: driver)
    monkeypatch.setitem(
        sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    name, reason = auto.choose_backend()
    assert name == "cupy" and f"driver CUDA {driver // 1000}.{driver % 1000 // 10}" in reason


def test_auto_falls_back_when_the_driver_is_too_old_for_the_corpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CUDA 10.2 (PTX ISA 6.5) cannot take sm_80 code (ISA 7.0): the reason names it."""
    runtime = types.SimpleNamespace(getDeviceCount=lambda: 1, driverGetVersion=lambda: 10020)
    monkeypatch.setitem(
        sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    name, reason = auto.choose_backend()
    assert name == "emulated" and "CUDA 10.2" in reason and ".target sm_80" in reason


def _record(path: Path, spec, cycles: float, device: str = "NVIDIA H100 80GB HBM3") -> None:
    from chronos.measure import ptx_sha256

    with MeasurementStore(path) as s:
        s.put(
            Measurement(
                cycles=cycles,
                cycles_q1=cycles - 1,
                cycles_q3=cycles + 1,
                time_ns=1.0,
                n=200,
                valid=True,
                error=None,
                backend="cupy",
                device=device,
                clock_mhz=1755.0,
                regs=40,
                spills=0,
                harness_version="cupy-harness-1",
                ptx_sha256=ptx_sha256(spec.ptx()),
                kernel_id=spec.id,
                spec_fingerprint=spec.fingerprint,
            ),
            "cfg",
        )


def test_replay_serves_records_and_misses_clearly(spec, tmp_path: Path) -> None:
    path = tmp_path / "h100.sqlite"
    _record(path, spec, 1234.0, device="NVIDIA A100")
    _record(path, spec, 999.0)
    with make_backend("replay", store=path) as r:
        m = r.measure(spec, spec.ptx())
        assert m.cycles == 999.0 and m.backend == "cupy" and m.extra["replayed_from"]
        with pytest.raises(ReplayMiss) as exc:
            r.measure(spec, spec.ptx() + "// new\n")
        msg = str(exc.value)
        assert spec.id in msg and exc.value.ptx_sha256 in msg and "fallback" in msg
        assert r.stats == {"hits": 1, "misses": 1, "fallbacks": 0, "hit_rate": 0.5}
    with make_backend("replay", store=path, device="NVIDIA A100") as r:
        assert r.measure(spec, spec.ptx()).cycles == 1234.0
        # issue 13, item 1: a spec changed since the recording (here its reference) misses
        changed = dataclasses.replace(spec, reference_fn=lambda p, i: {"C": i["C"]})
        with pytest.raises(ReplayMiss, match="fingerprint"):
            r.measure(changed, spec.ptx())


@pytest.mark.requires_ptxas
def test_replay_fallback_to_emulated(spec, tmp_path: Path) -> None:
    path = tmp_path / "h100.sqlite"
    _record(path, spec, 999.0)
    before = path.read_bytes()
    with make_backend("replay", store=path, fallback="emulated") as r:
        m = r.measure(spec, spec.ptx() + "// new\n")
        assert m.valid and m.estimate and m.extra["replay_miss"]
        r.measure(spec, spec.ptx() + "// new\n")
        assert r.stats["fallbacks"] == 1
    assert path.read_bytes() == before  # the recorded file is never written


@pytest.mark.requires_ptxas
def test_cli_text_and_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    store = str(tmp_path / "cli.sqlite")
    assert cli(["gemm_tile_2_2_2", "--backend", "emulated", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "backend emulated" in out and "(estimate)" in out
    assert cli(["gemm_tile_2_2_2", "--backend", "emulated", "--store", store, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measurement"]["estimate"] is True and data["stats"]["hits"] == 1
    assert cli(["gemm_tile_2_2_2", "--backend", "replay", "--store", store]) == 2
    assert "replay miss" in capsys.readouterr().err
    assert cli(["no_such_kernel", "--backend", "emulated", "--store", "none"]) == 2


def test_cli_transforms_missing_or_present(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        from chronos.transforms import ACTION_NAMES  # noqa: F401
    except ImportError:
        with pytest.raises(SystemExit, match="chronos.transforms"):
            cli(
                [
                    "gemm_tile_2_2_2",
                    "--transforms",
                    "maxnreg_128",
                    "--store",
                    "none",
                    "--backend",
                    "emulated",
                ]
            )
        return
    rc = cli(
        [
            "gemm_tile_4_4_4",
            "--transforms",
            "maxnreg_128,vec_ld",
            "--store",
            "none",
            "--backend",
            "emulated",
        ]
    )
    out = capsys.readouterr().out
    assert rc in (0, 1) and "transform maxnreg_128" in out


def test_a_resized_problem_is_a_new_store_key(tmp_path) -> None:
    """Giving a kernel's "full" problem more waves changes every figure: no stored record of
    the old size may be served for it (the key holds the spec fingerprint, problems included)."""
    import dataclasses

    from chronos.measure import ptx_sha256
    from chronos.measure.backends.cached import CachedBackend
    from chronos.measure.backends.registry import BackendBase
    from chronos.measure.store import MeasurementStore
    from kernels.spec import spec_fingerprint

    class Sized(BackendBase):
        name, harness_version = "sized", "1"

        def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
            grid = spec.problem("full").grid
            return Measurement(
                cycles=float(grid[0]), cycles_q1=None, cycles_q3=None, time_ns=None, n=1,
                valid=True, error=None, backend="sized", device="cpu", clock_mhz=None,
                regs=None, spills=None, harness_version="1", ptx_sha256=ptx_sha256(ptx),
                kernel_id=spec.id,
            )  # fmt: skip

    spec = load("gemm_tile_2_2_2")
    full = spec.problem("full")
    bigger = dataclasses.replace(full, grid=(full.grid[0] * 2, full.grid[1], 1))
    resized = dataclasses.replace(spec, problems={**spec.problems, "full": bigger})
    assert spec_fingerprint(resized) != spec_fingerprint(spec)
    with CachedBackend(Sized(), MeasurementStore(tmp_path / "s.sqlite")) as b:
        assert b.measure(spec, spec.ptx()).cycles == full.grid[0]
        assert b.measure(resized, spec.ptx()).cycles == 2 * full.grid[0]  # not the old record
        assert b.stats["misses"] == 2
