"""Shared test configuration: `gpu` tests run only where CuPy sees a CUDA device."""

from __future__ import annotations

import functools

import pytest

from chronos.assemble import ptxas_available


@functools.cache
def gpu_available() -> bool:
    """True when CuPy imports and reports at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU visible to CuPy")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


requires_ptxas = pytest.mark.skipif(not ptxas_available(), reason="needs ptxas")
