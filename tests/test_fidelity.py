"""chronos.pipeline.validate.fidelity (benchmarks/fidelity.py) on synthetic stores whose
"measurements" agree or disagree with the model by construction: the scores must say so."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import kernels
from chronos.measure.backends.emulated import EmulatedBackend
from chronos.measure.measurement import Measurement
from chronos.measure.store import MeasurementStore
from chronos.ptx import ptx_sha256
from chronos.transforms import apply_action

KERNEL = "gemm_tile_2_2_2"
CANDIDATES = ("vec_ld", "maxnreg_32", "reorder_cp", "vec_st", "ld_na", "cp_async", "ld_cg")
ARCH = "sm_89"


def _fidelity() -> Any:
    from chronos.pipeline.validate import fidelity

    return fidelity


def _have_ptxas() -> bool:
    from chronos.assemble import PtxasNotFoundError, find_ptxas

    try:
        find_ptxas()
    except PtxasNotFoundError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _have_ptxas(), reason="needs ptxas")


def _record(kid: str, ptx: str, cycles: float) -> Measurement:
    return Measurement(
        cycles=cycles,
        cycles_q1=cycles,
        cycles_q3=cycles,
        time_ns=cycles,
        n=5,
        valid=True,
        error=None,
        backend="cupy",
        device="synthetic GPU",
        clock_mhz=1000.0,
        regs=None,
        spills=None,
        harness_version="synthetic",
        estimate=False,
        ptx_sha256=ptx_sha256(ptx),
        kernel_id=kid,
    )


@pytest.fixture(scope="module")
def states() -> list[tuple[str, float, str]]:
    """The kernel and four one-action children whose estimates all differ."""
    spec = kernels.load(KERNEL)
    base = spec.ptx()
    backend = EmulatedBackend(arch=ARCH)
    out = [(base, backend.report(spec, base).cost.estimate, "")]  # type: ignore[union-attr]
    for a in CANDIDATES:
        res = apply_action(spec, base, a)
        if not res.changed:
            continue
        est = backend.report(spec, res.ptx).cost.estimate  # type: ignore[union-attr]
        if all(est != e for _, e, _ in out):
            out.append((res.ptx, est, a))
        if len(out) == 5:
            return out
    raise AssertionError(f"fewer than four actions with distinct estimates: {out}")


def _store(path: Path, states: list[tuple[str, float, str]], sign: float) -> Path:
    with MeasurementStore(path) as store:
        for ptx, est, _ in states:
            store.put(_record(KERNEL, ptx, 1e6 + sign * 3.0 * est))
        # a record of an estimate backend and one of an unknown kernel are ignored
        fake = dataclasses.replace(_record(KERNEL, states[0][0], 1.0), estimate=True)
        store.put(fake, config="estimate")
        store.put(_record("no_such_kernel", "x", 5.0))
    return path


def test_agreeing_store_scores_one(tmp_path: Path, states: list[tuple[str, float, str]]) -> None:
    fid = _fidelity()
    path = _store(tmp_path / "agree.sqlite", states, +1.0)
    with MeasurementStore(path, readonly=True) as store:
        r = fid.evaluate(store, ARCH, depth=1)
    assert r["matched"] == len(states)
    assert r["spearman"] == pytest.approx(1.0)
    assert r["per_family"]["gemm_tile"][0] == len(states)
    assert set(r["direction"]) == {a for *_, a in states[1:]}
    assert all(share == 1.0 for _, share in r["direction"].values())


def test_disagreeing_store_scores_minus_one(
    tmp_path: Path, states: list[tuple[str, float, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    fid = _fidelity()
    path = _store(tmp_path / "disagree.sqlite", states, -1.0)
    with MeasurementStore(path, readonly=True) as store:
        r = fid.evaluate(store, ARCH, depth=1)
    assert r["spearman"] == pytest.approx(-1.0)
    assert all(share == 0.0 for _, share in r["direction"].values())
    fid.main(["--store", str(path), "--arch", ARCH, "--depth", "1"])
    out = capsys.readouterr().out
    assert "Spearman overall: -1.000" in out and "ESTIMATES" in out and states[1][2] in out


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    fid = _fidelity()
    with pytest.raises(SystemExit):
        fid.main(["--store", str(tmp_path / "nope.sqlite")])
