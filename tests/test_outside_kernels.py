"""Held-out kernels (tests/data/outside): every transform the mask allows keeps their
semantics, alone and in random mask-respecting sequences, on two sizes and two seeds.

No transform was written against these kernels (CSR SpMV, a shared-tile convolution, a
warp-shuffle scan, a bf16 GELU, a 3-D stencil, a float64 sum through dynamic shared memory,
a mangled template transpose; PTX with -lineinfo's .loc lines); they check that legality is
proven from the spec's contract and the PTX, not from the corpus's shapes.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import kernels
from chronos.emulate import verify
from chronos.transforms import CATALOGUE
from chronos.transforms.semantics import check, random_episode, sizes_of
from tests.helpers import outside_kernels
from tests.helpers.held_out import check_every_legal_transform

IDS = [s.id for s in outside_kernels.SPECS]


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with outside_kernels.registered():
        yield


@pytest.mark.parametrize("kernel_id", IDS)
def test_baseline_verifies_on_every_size(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    for size in sizes_of(spec):
        v = verify(spec, spec.ptx(), exact=False, seed=0, size=size)
        assert v.ok, f"{kernel_id} {size}: {v.kind}: {v.error}"


@pytest.mark.parametrize("kernel_id", IDS)
def test_every_legal_transform_alone_keeps_semantics(kernel_id: str) -> None:
    changed = check_every_legal_transform(kernels.load(kernel_id))
    assert changed >= 8, f"{kernel_id}: only {changed} transforms apply"


@pytest.mark.parametrize("kernel_id", IDS)
def test_random_sequences_keep_semantics(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    rng = np.random.default_rng([11, zlib.crc32(kernel_id.encode())])
    for episode in range(3):
        ptx, applied = random_episode(spec, rng)
        names = [CATALOGUE[a].name for a in applied]
        exact = all(CATALOGUE[a].exact for a in applied)
        for size in sizes_of(spec):
            err = check(spec, ptx, exact, size=size, seed=episode)
            assert err is None, f"{kernel_id} {names} {size}: {err}"


def test_bfloat16_buffers_compare_as_floats() -> None:
    """A one-ulp bfloat16 difference fails a bit-exact check and passes the tolerance."""
    from chronos.emulate.verify import compare

    ref = {"y": kernels.bfloat16_from_float(np.array([1.0, -2.5, 3.0], np.float32))}
    got = {"y": ref["y"].copy()}
    got["y"][1] += 1
    assert compare(got, ref, True, bfloat16={"y"})[0] == 1
    assert compare(got, ref, False, 1e-2, 0.0, bfloat16={"y"})[0] == 0
    assert compare(got, ref, False, 1e-4, 0.0, bfloat16={"y"})[0] == 1
    # Without the name, the bits are integers: no tolerance can hide the difference.
    assert compare(got, ref, False, 1e-2, 0.0)[0] == 1
    x = np.array([1.0, 1.0078125, np.inf, -0.0], np.float32)
    assert np.array_equal(kernels.bfloat16_to_float(kernels.bfloat16_from_float(x)), x)
    ties = np.array([1.00390625, 1.01171875], np.float32)  # halfway: to even
    assert kernels.bfloat16_to_float(kernels.bfloat16_from_float(ties)).tolist() == [1.0, 1.015625]
    assert np.isnan(kernels.bfloat16_to_float(kernels.bfloat16_from_float(np.float32("nan"))))
