"""Through the cupy backend on the fake GPU (chronos.measure.harness.fake_cupy: lowered PTX,
cubins of the chosen ptxas, each run as its PTX in the emulator), the first three kernels of
every family verify: the harness's argument encoding, launch and output check agree with the
emulator's references for every kind of parameter (a float scalar included)."""

from __future__ import annotations

import collections

import pytest

import kernels
from chronos.measure.backends.cupy import CupyBackend
from chronos.measure.harness import fake_cupy

PER_FAMILY = 3


def first_per_family(n: int) -> list[str]:
    """The first `n` kernel ids (sorted) of every family."""
    by_family: dict[str, list[str]] = collections.defaultdict(list)
    for kid in sorted(kernels.list_kernels()):
        by_family[kernels.load(kid).family].append(kid)
    return [kid for family in sorted(by_family) for kid in by_family[family][:n]]


@pytest.fixture(scope="module")
def fake_gpu():
    b = CupyBackend(
        worker_target=fake_cupy.TARGET,
        problem="small",
        repeats=1,
        warmup=0,
        timeout_s=300,
    )
    yield b
    b.close()


@pytest.mark.requires_ptxas
def test_first_kernels_of_every_family_verify_on_the_fake_gpu(fake_gpu: CupyBackend) -> None:
    ids = first_per_family(PER_FAMILY)
    assert len({kernels.load(k).family for k in ids}) >= 10
    failed = {}
    for kid in ids:
        spec = kernels.load(kid)
        m = fake_gpu.measure(spec, spec.ptx())
        if not m.valid:
            failed[kid] = m.error
        else:
            assert m.backend == "cupy" and m.device == fake_cupy.DEVICE_NAME
    assert failed == {}
