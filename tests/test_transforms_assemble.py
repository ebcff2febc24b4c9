"""Every transform's output assembles with ptxas (sm_80, sm_90), alone and in random
mask-respecting sequences; the coverage report finds no dead and no duplicate transform.

The fast loop (`-m "not slow"`) covers a sample of kernels; the full run sweeps all 64 (ptxas
results are cached in-process, and `assemble_many` runs them in parallel).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from chronos.assemble import PtxasError, assemble_many
from chronos.transforms import ACTION_NAMES, CATALOGUE, STOP, action_mask, apply_action

ALL = sorted(k for k in kernels.list_kernels() if k.startswith("gemm_tile"))
SAMPLE = ["gemm_tile_2_2_2", "gemm_tile_4_6_8", "gemm_tile_8_8_8", "gemm_tile_6_4_2"]


def _assemble_all(kernel_ids: list[str], arch: str) -> list[str]:
    """Apply every transform alone to every kernel; return the failures."""
    cases: list[tuple[str, str]] = []
    texts: list[str] = []
    for k in kernel_ids:
        spec = kernels.load(k)
        for i, t in enumerate(CATALOGUE):
            res = apply_action(spec, spec.ptx(), i)
            if res.changed:
                cases.append((k, t.name))
                texts.append(res.ptx)
    out = assemble_many(texts, arch=arch)
    return [
        f"{k} {n}: {r}" for (k, n), r in zip(cases, out, strict=True) if isinstance(r, PtxasError)
    ]


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_each_transform_assembles_sample(arch: str) -> None:
    assert _assemble_all(SAMPLE, arch) == []


@pytest.mark.requires_ptxas
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_each_transform_assembles_all_kernels(arch: str) -> None:
    assert len(ALL) == 64
    assert _assemble_all(ALL, arch) == []


def _random_sequence(data: st.DataObject, kernel_id: str) -> tuple[str, list[str]]:
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    applied: list[int] = []
    for _ in range(data.draw(st.integers(1, 6), label="length")):
        mask = action_mask(spec, ptx, applied)
        legal = [int(a) for a in np.flatnonzero(mask) if a != STOP]
        if not legal:
            break
        a = data.draw(st.sampled_from(legal), label="action")
        res = apply_action(spec, ptx, a)
        assert res.changed, f"mask allowed {ACTION_NAMES[a]} but it changed nothing"
        applied.append(a)
        ptx = res.ptx
    return ptx, [ACTION_NAMES[a] for a in applied]


def _check_sequence(kernel_id: str, data: st.DataObject) -> None:
    ptx, names = _random_sequence(data, kernel_id)
    for arch in ("sm_80", "sm_90"):
        (res,) = assemble_many([ptx], arch=arch)
        assert not isinstance(res, PtxasError), f"{kernel_id} {names} {arch}: {res}"


@pytest.mark.requires_ptxas
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(kernel_id=st.sampled_from(ALL), data=st.data())
def test_random_sequences_assemble(kernel_id: str, data: st.DataObject) -> None:
    _check_sequence(kernel_id, data)


@pytest.mark.requires_ptxas
@pytest.mark.slow
def test_random_sequences_assemble_many() -> None:

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(kernel_id=st.sampled_from(ALL), data=st.data())
    def run(kernel_id: str, data: st.DataObject) -> None:
        _check_sequence(kernel_id, data)

    run()


@pytest.mark.requires_ptxas
def test_coverage_sample_has_no_dead_transform() -> None:
    """On a sample every transform applies and changes SASS, and nothing is rejected."""
    from chronos.transforms.coverage import coverage, format_table

    specs = [kernels.load(k) for k in SAMPLE]
    rows = coverage(specs, arch="sm_90")
    table = format_table(rows, "sm_90")
    assert len(rows) == 20 and "vec_ld" in table
    for r in rows:
        assert r.rejected == 0, r
        assert r.applicable == len(SAMPLE), r
    dead = [r.name for r in rows if r.changes_sass == 0]
    assert set(dead) <= {"sink_st", "reqntid", "reorder_cp"}, dead
    assert [(r.name, r.duplicates) for r in rows if r.duplicates] == []
    by = {r.name: r for r in rows}
    for n in ("vec_ld", "vec_st", "maxnreg_128", "cp_async"):
        assert by[n].changes_sass == len(SAMPLE), n


@pytest.mark.requires_ptxas
@pytest.mark.slow
def test_coverage_all_kernels() -> None:
    from chronos.transforms.coverage import coverage

    rows = coverage([kernels.load(k) for k in ALL], arch="sm_90")
    by = {r.name: r for r in rows}
    assert all(r.changes_sass >= 1 and r.rejected == 0 for r in rows), rows
    assert [(r.name, r.duplicates) for r in rows if r.duplicates] == []
    for n in ("vec_ld", "vec_st", "maxnreg_128", "reorder_cp"):
        assert by[n].changes_sass > 32, by[n]
