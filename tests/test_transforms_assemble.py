"""Every transform's output assembles with ptxas (sm_80, sm_90), alone and in random
mask-respecting sequences; the coverage report finds no dead and no duplicate transform.

The fast loop (`-m "not slow"`) covers a sample of kernels (gemm_tile and one per other
family); the full run sweeps the whole corpus and checks the coverage targets of issue 15
(ptxas results are cached in-process, and `assemble_many` runs them in parallel).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from chronos.assemble import PtxasError, assemble_many
from chronos.transforms import ACTION_NAMES, CATALOGUE, STOP, action_mask, apply_action
from tests.helpers.sequences import sequence_settings

ALL = sorted(kernels.list_kernels())
SAMPLE = [
    "gemm_tile_2_2_2",
    "gemm_tile_4_6_8",
    "reduce_rows_f32_b128_i4_shfl",
    "transpose_f32_t32x8",
    "softmax_block_f32_b128_i4",
    "layernorm_warp_welford_f32_b128_i2",
    "triton_add_fp32_b1024_w4_ragged",
    "stencil2d_shared_5pt_f32_32x4_4",
    "matvec_warp_f32_128_1",
    "elementwise_saxpy_256_4",
    "histogram_shared_u8_64_512_2",
]


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
    assert len(ALL) >= 136
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
@sequence_settings(12)
@given(kernel_id=st.sampled_from(ALL), data=st.data())
def test_random_sequences_assemble(kernel_id: str, data: st.DataObject) -> None:
    _check_sequence(kernel_id, data)


@pytest.mark.requires_ptxas
@pytest.mark.slow
def test_random_sequences_assemble_many() -> None:

    @sequence_settings(150)
    @given(kernel_id=st.sampled_from(ALL), data=st.data())
    def run(kernel_id: str, data: st.DataObject) -> None:
        _check_sequence(kernel_id, data)

    run()


@pytest.mark.requires_ptxas
def test_coverage_sample_has_no_dead_transform() -> None:
    """On a sample of every family every transform changes SASS somewhere, nothing is
    rejected by ptxas and no action duplicates another."""
    from chronos.transforms.coverage import format_families, format_table, measure

    specs = [kernels.load(k) for k in SAMPLE]
    cov = measure(specs, arch="sm_80")
    rows = cov.rows
    assert len(rows) == 20 and "vec_ld" in format_table(rows, "sm_80")
    assert "transpose" in format_families(cov, "sm_80")
    for r in rows:
        assert r.rejected == 0, r
    assert [r.name for r in rows if r.changes_sass == 0] == []
    assert [(r.name, r.duplicates) for r in rows if r.duplicates] == []
    by = {r.name: r for r in rows}
    for n in ("vec_ld", "vec_st", "maxnreg_128", "cp_async"):
        assert {"gemm_tile_2_2_2", "gemm_tile_4_6_8"} <= cov.changed[rows.index(by[n])], n


@pytest.mark.requires_ptxas
@pytest.mark.slow
def test_coverage_targets_on_the_whole_corpus() -> None:
    """Issue 15's targets: every action changes SASS on kernels of >= 3 families, every
    family has >= 12 SASS-changing actions, a non-gemm kernel has >= 10 on average; nothing
    rejected, no duplicates (docs/transforms.md, "Measured coverage")."""
    from chronos.transforms.coverage import measure, per_family

    cov = measure([kernels.load(k) for k in ALL], arch="sm_80")
    rows = cov.rows
    assert all(r.rejected == 0 for r in rows), rows
    assert [(r.name, r.duplicates) for r in rows if r.duplicates] == []
    for r, hit in zip(rows, cov.changed, strict=True):
        fams = {cov.families[k] for k in hit}
        assert len(fams) >= 3, (r.name, fams)
    fam = per_family(cov)
    for f in fam:
        assert len(f.live_actions) >= 12, (f.family, f.live_actions)
    rest = [k for k, f in cov.families.items() if f != "gemm_tile"]
    mean = sum(sum(k in h for h in cov.changed) for k in rest) / len(rest)
    assert mean >= 10, mean
