"""`python -m chronos.validate`: the dry run through every step, the budget, the refusal without
a GPU, the generated page, replaying a store on CPU, and the device's wheel and entry scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chronos.measure import Measurement, make_backend
from chronos.measure.backends.replay import ReplayMiss
from chronos.measure.store import MeasurementStore
from chronos.pipeline.validate import EXIT_OK, EXIT_REFUSED, STEPS, ValidateConfig, run
from chronos.pipeline.validate.report import render_page
from chronos.ptx import ptx_sha256
from kernels import load

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.requires_ptxas
def test_dry_run_runs_every_step(tmp_path: Path) -> None:
    """The CI check of the device command: every step through the real harness on the fake
    CuPy, figures in the JSON, the page generated from it, a replay store that replays."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "chronos.validate", "--dry-run", "--out", str(out)]
    p = subprocess.run(
        [*cmd, "--budget-s", "150"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=400
    )
    assert p.returncode == EXIT_OK, p.stdout + p.stderr
    res = json.loads((out / "gpu-validation.json").read_text())
    assert res["dry_run"] is True and res["exit_status"] == EXIT_OK
    status = {k: v["status"] for k, v in res["steps"].items()}
    assert list(status) == list(STEPS)
    assert all(v == "ok" for k, v in status.items() if k != "fidelity"), res["steps"]
    r = res["results"]
    assert r["environment"]["device"]["device"] == "fake CuPy on the CPU emulator"
    assert r["pytest_gpu"]["ok"] and r["pytest_gpu"]["collect_only"]
    assert r["latency"]["kernels"][0]["valid"] and r["latency"]["hit_us"] > 0
    assert set(r["latency"]["median_ms"]) >= {"assemble", "load", "verify", "time"}
    rep = r["repeatability"]["kernels"][0]
    assert rep["processes"] == 5 and rep["cv"] == 0.0  # the emulator's clock is deterministic
    sanity = r["sanity"]["kernels"][0]["variants"]
    assert sanity["baseline"]["valid"] and sanity["baseline"]["speedup"] == 1.0
    greedy = r["greedy"]
    assert greedy["kernels"] and "error" not in greedy["kernels"][0]
    assert (out / "docs" / "gpu-validation.md").read_text() == render_page(res)
    # The recorded store replays on CPU: the baseline of every greedy kernel is in it.
    store = out / greedy["store"]
    with make_backend("replay", store=store) as replay:
        for k in greedy["kernels"]:
            spec = load(k["kernel_id"])
            m = replay.measure(spec, spec.ptx())
            assert m.backend == "cupy" and m.cycles == k["base_cycles"]


@pytest.mark.requires_ptxas
def test_budget_stops_cleanly_and_saves(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    """A step that does not fit the budget is skipped, said so, and the results are saved."""
    cfg = ValidateConfig.for_mode(
        tmp_path, budget_s=10, dry_run=True, steps=("environment", "greedy")
    )
    with caplog.at_level("INFO", logger="chronos.progress"):
        status, res = run(cfg)
    assert status == EXIT_OK, res["steps"]
    summary = [r.getMessage() for r in caplog.records if r.name == "chronos.progress"]
    assert len(summary) == 1 and summary[0].startswith("validate: 2 steps, "), summary
    assert "environment ok, greedy skipped" in summary[0] and summary[0].endswith("exit 0")
    assert res["steps"]["environment"]["status"] == "ok"
    assert res["steps"]["greedy"]["status"] == "skipped"
    assert "out of budget" in res["steps"]["greedy"]["error"]
    saved = json.loads((tmp_path / "gpu-validation.json").read_text())
    assert saved["steps"] == res["steps"]
    tc = saved["results"]["environment"]["toolchain"]  # the fake's driver is CUDA 13.0
    assert tc["ptx_isa"] == "9.0 -> 7.0" and tc["load"] == "cubin"
    assert tc["ptxas_version"].startswith("13.") and "ptxas 13." in tc["sass_from"]
    assert "_not measured_ (out of budget" in (tmp_path / "docs" / "gpu-validation.md").read_text()


def test_refuses_to_run_without_the_gpu_backend(tmp_path: Path, monkeypatch) -> None:
    """On the device, auto choosing emulated is an error for this command, with the reason."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # no CuPy: auto would pick emulated
    cfg = ValidateConfig.for_mode(tmp_path, budget_s=60, dry_run=False, steps=STEPS)
    status, res = run(cfg)
    assert status == EXIT_REFUSED
    env = res["steps"]["environment"]
    assert env["status"] == "refused" and "auto: emulated" in env["error"]
    assert list(res["steps"]) == ["environment"]  # nothing after a refusal


def test_the_committed_page_is_generated() -> None:
    """docs/gpu-validation.md is render_page of the JSON beside it (or of nothing yet)."""
    page = (ROOT / "docs" / "gpu-validation.md").read_text()
    data = ROOT / "docs" / "gpu-validation.json"
    results = json.loads(data.read_text()) if data.exists() else None
    assert page == render_page(results), "regenerate: python -m chronos.pipeline.validate.report"


def _synthetic_store(path: Path) -> dict[str, Measurement]:
    """What a device run records: cupy measurements of the baseline PTX of a few kernels."""
    store = MeasurementStore(path)
    recorded = {}
    for i, kid in enumerate(["gemm_tile_2_2_2", "gemm_tile_4_6_8", "reduce_sum_f32_b128_i1_shfl"]):
        spec = load(kid)
        ptx = spec.ptx()
        m = Measurement(
            cycles=10_000.0 + i, cycles_q1=9_990.0, cycles_q3=10_010.0, time_ns=5_300.0, n=200,
            valid=True, error=None, backend="cupy", device="NVIDIA H200", clock_mhz=1980.0,
            regs=40, spills=0, harness_version="cupy-synthetic", ptx_sha256=ptx_sha256(ptx),
            kernel_id=kid, extra={"l2": "cold"}, spec_fingerprint=spec.fingerprint,
            ptxas_version="13.0",
        )  # fmt: skip
        store.put(m, "cfg", device=m.device, harness_version=m.harness_version)
        recorded[kid] = m
    store.close()
    return recorded


def replay_stores(tmp_path: Path) -> list[Path]:
    """The committed device stores, or a synthetic one until a device run commits one."""
    committed = sorted((ROOT / "data" / "replay").glob("*.sqlite"))
    if committed:
        return committed
    path = tmp_path / "synthetic-h200.sqlite"
    _synthetic_store(path)
    return [path]


def test_a_recorded_store_replays_on_cpu(tmp_path: Path) -> None:
    for path in replay_stores(tmp_path):
        with MeasurementStore(path, readonly=True) as st:
            kernels = sorted({m.kernel_id for m in st})
        assert kernels, f"{path} holds nothing"
        with make_backend("replay", store=path) as replay:
            served = 0
            for kid in kernels:
                spec = load(kid)
                try:
                    m = replay.measure(spec, spec.ptx())
                except ReplayMiss:
                    continue  # a kernel recorded only after transforms
                assert m.backend == "cupy" and m.extra["replayed_from"] == str(path)
                served += 1
            assert served, f"{path}: no kernel's baseline replays"
            with pytest.raises(ReplayMiss, match="gemm_tile_2_2_2"):
                spec = load("gemm_tile_2_2_2")
                replay.measure(spec, spec.ptx() + "// never recorded\n")


def test_synthetic_store_figures_replay_exactly(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    recorded = _synthetic_store(path)
    with make_backend("replay", store=path, device="NVIDIA H200") as replay:
        for kid, m in recorded.items():
            spec = load(kid)
            got = replay.measure(spec, spec.ptx())
            assert got.cycles == m.cycles and got.device == "NVIDIA H200"


def test_wheel_script_fetches_exactly_the_missing_packages() -> None:
    text = (ROOT / "scripts" / "fetch_device_wheels.sh").read_text()
    for pkg in ("gymnasium==", "hydra-core==", "omegaconf==", "cachetools==", "PyYAML=="):
        assert pkg in text
    assert "pip wheel --no-deps" in text and "antlr4-python3-runtime==4.9.3" in text
    assert "numpy" not in text.split("PACKAGES=(")[1].split(")")[0]  # the device's stays
    for script in ("fetch_device_wheels.sh", "gpu_validate.sh"):
        p = subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)], capture_output=True)
        assert p.returncode == 0, p.stderr
    entry = (ROOT / "scripts" / "gpu_validate.sh").read_text()
    assert "--no-index" in entry and "python3 -m chronos.validate" in entry
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "/wheels/" in ignored and "/.device-site/" in ignored


def test_require_gpu_turns_a_skip_into_an_error() -> None:
    """CHRONOS_REQUIRE_GPU=1 (set by the validation) makes a missing GPU stop pytest -m gpu."""
    from conftest import gpu_status

    if gpu_status()[0]:
        pytest.skip("a GPU is visible here")
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider"]
    cmd.append("tests/test_measure_cupy_backend.py")
    p = subprocess.run(
        cmd, cwd=ROOT, env={**ENV, "CHRONOS_REQUIRE_GPU": "1"}, capture_output=True, text=True
    )
    assert p.returncode == 4, p.stdout + p.stderr  # a usage error, not "4 skipped"
    assert "CHRONOS_REQUIRE_GPU=1 but the gpu tests cannot run" in p.stdout + p.stderr


def test_fidelity_runs_the_benchmark_on_the_recorded_store(tmp_path: Path, monkeypatch) -> None:
    """The step calls the fidelity check (chronos.pipeline.validate.fidelity, also
    benchmarks/fidelity.py) with --store STORE --backend cupy --arch ARCH and keeps its output;
    without a recorded store it is skipped with a note, never silently."""
    from chronos.pipeline.validate import steps

    script = tmp_path / "fidelity.py"
    script.write_text("import sys\nprint('Spearman 0.9', *sys.argv[1:])\n")
    cfg = ValidateConfig.for_mode(tmp_path, budget_s=60, dry_run=True)
    state = {
        "results": {
            "greedy": {"store": "data/replay/x.sqlite"},
            "environment": {"device": {"arch": "sm_90"}},
        }
    }
    monkeypatch.setattr(steps, "FIDELITY_COMMAND", (sys.executable, str(script)))
    res = steps.step_fidelity(cfg, steps.Budget(60, 0), state)
    assert res["ok"] and "Spearman 0.9" in res["output"][0]
    assert "--store" in res["output"][0] and "x.sqlite --backend cupy" in res["output"][0]
    assert res["output"][0].endswith("--arch sm_90")
    no_store = {"results": {}}
    assert "no replay store" in steps.step_fidelity(cfg, steps.Budget(60, 0), no_store)["skipped"]
