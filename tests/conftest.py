"""Shared test configuration: `gpu` tests run only where CuPy sees a CUDA device, and
`requires_ptxas` tests only where a ptxas is found (the one definition of both skips)."""

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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_ptxas: needs a ptxas executable (skipped when none is found)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU visible to CuPy")
    no_ptxas = pytest.mark.skip(reason="needs ptxas")
    gpu = gpu_available()
    ptxas = ptxas_available()
    for item in items:
        if "gpu" in item.keywords and not gpu:
            item.add_marker(no_gpu)
        if "requires_ptxas" in item.keywords and not ptxas:
            item.add_marker(no_ptxas)
