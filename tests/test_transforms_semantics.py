"""Transformed kernels compute the reference: the CPU emulator runs them on the small problem
(bit-exact for exact transforms, the kernel's tolerance otherwise). Every kernel of the corpus
gets two seeded random mask-respecting episodes; every single transform runs on a sample in
the fast loop and on every kernel in the full run (`slow`).
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from chronos.emulate.verify import verify
from chronos.transforms import CATALOGUE, STOP, action_mask, apply_action, apply_sequence

ALL = sorted(k for k in kernels.list_kernels() if k.startswith("gemm_tile"))
SAMPLE = [
    "gemm_tile_2_2_2",
    "gemm_tile_4_6_8",
    "gemm_tile_8_8_8",
    "gemm_tile_6_4_2",
]


def _check(kernel_ids: list[str]) -> list[str]:
    bad = []
    for k in kernel_ids:
        spec = kernels.load(k)
        for i, t in enumerate(CATALOGUE):
            res = apply_action(spec, spec.ptx(), i)
            assert res.changed, (k, t.name, res.reason)
            v = verify(spec, res.ptx, exact=t.exact)
            if not v.ok:
                bad.append(f"{k} {t.name}: {v.kind}: {v.error}")
    return bad


def test_every_transform_verifies_on_sample() -> None:
    assert _check(SAMPLE) == []


@pytest.mark.slow
def test_every_transform_verifies_on_all_kernels() -> None:
    assert _check(ALL) == []


def _random_episode(spec: kernels.KernelSpec, rng: np.random.Generator) -> tuple[str, list[int]]:
    """Up to 6 mask-respecting actions drawn at random, as an agent ignoring rewards would."""
    ptx, applied = spec.ptx(), []
    for _ in range(6):
        legal = [a for a in np.flatnonzero(action_mask(spec, ptx, applied)) if a != STOP]
        if not legal:
            break
        a = int(rng.choice(legal))
        res = apply_action(spec, ptx, a)
        assert res.changed, (spec.id, CATALOGUE[a].name, res.reason)
        ptx = res.ptx
        applied.append(a)
    return ptx, applied


@pytest.mark.parametrize("kernel_id", ALL)
def test_random_sequences_keep_outputs_on_every_kernel(kernel_id: str) -> None:
    """Every corpus kernel, two seeded random episodes of up to 6 transforms, emulated."""
    spec = kernels.load(kernel_id)
    rng = np.random.default_rng([ALL.index(kernel_id), 2026])
    for _ in range(2):
        ptx, applied = _random_episode(spec, rng)
        names = [CATALOGUE[a].name for a in applied]
        v = verify(spec, ptx, exact=all(CATALOGUE[a].exact for a in applied))
        assert v.ok, (kernel_id, names, v.kind, v.error)


@pytest.mark.parametrize(
    "seq",
    [
        ["vec_ld", "vec_lds", "cp_async", "maxnreg_128"],
        ["reorder_cp", "vec_st", "sink_st", "ld_nc", "prefetch_l2"],
        ["vec_ld", "reorder_cp", "st_cs", "ld_l2_256B", "reqntid", "vec_lds"],
        ["ld_evict_last", "vec_ld", "cp_async", "vec_st"],
    ],
)
@pytest.mark.parametrize("kernel_id", ["gemm_tile_4_6_8", "gemm_tile_2_2_2", "gemm_tile_6_8_4"])
def test_sequences_verify(kernel_id: str, seq: list[str]) -> None:
    """Every named transform applies, in order, and the result verifies bit-exactly."""
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    for name in seq:
        res = apply_action(spec, ptx, name)
        assert res.changed, (kernel_id, seq, name, res.reason)
        ptx = res.ptx
    assert ptx == apply_sequence(spec, spec.ptx(), seq)
    v = verify(spec, ptx, exact=True)
    assert v.ok, (kernel_id, seq, v.kind, v.error)


def test_cp_async_leaves_no_global_load_to_vectorize_or_hint() -> None:
    """cp_async turns the tile loads into async copies: vec_ld and ld_evict_last then have
    nothing left, which is why a sequence naming them after it applies fewer transforms."""
    spec = kernels.load("gemm_tile_4_6_8")
    ptx = apply_action(spec, spec.ptx(), "cp_async").ptx
    for name in ("vec_ld", "ld_evict_last"):
        res = apply_action(spec, ptx, name)
        assert not res.changed and res.reason, name


def test_misaligned_vector_would_fault() -> None:
    """The emulator catches what the alignment analysis prevents (sanity of the oracle)."""
    spec = kernels.load("gemm_tile_4_6_8")
    ptx = apply_action(spec, spec.ptx(), "vec_ld").ptx
    bad = ptx.replace(
        "ld.global.v4.f32 \t{%f149, %f150, %f151, %f152}, [%rd9+16];",
        "ld.global.v4.f32 \t{%f149, %f150, %f151, %f152}, [%rd9+8];",
        1,
    )
    assert bad != ptx
    v = verify(spec, bad, exact=True)
    assert not v.ok and v.kind == "fault"
