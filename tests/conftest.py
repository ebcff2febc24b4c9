"""Shared test configuration: `gpu` tests run only where CuPy sees a CUDA device, and
`requires_ptxas` tests only where a ptxas is found (the one definition of both skips).

No silent skips: a CuPy that is installed but fails to import (two cupy packages, a CUDA
library missing) is reported in every skip reason and in the session header, and with
CHRONOS_REQUIRE_GPU=1 (what `python -m chronos.validate` sets) a missing GPU is an error that
stops the session instead of a skip.

Fixture `emulated_backend`: one emulated backend with an in-memory store per test module.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import pytest

from chronos.assemble import ptxas_available

REQUIRE_GPU = "CHRONOS_REQUIRE_GPU"


@functools.cache
def gpu_status() -> tuple[bool, str]:
    """(True, device count) when CuPy imports and sees a CUDA device, else (False, why not)."""
    if importlib.util.find_spec("cupy") is None:
        return False, "CuPy is not installed"
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        return False, f"CuPy is installed but does not import: {type(exc).__name__}: {exc}"
    try:
        n = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        return False, f"CuPy imports but finds no CUDA device: {type(exc).__name__}: {exc}"
    return (n > 0), f"CuPy sees {n} CUDA device(s)"


def gpu_available() -> bool:
    return gpu_status()[0]


def pytest_report_header(config: pytest.Config) -> str:
    return f"chronos gpu tests: {gpu_status()[1]}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_ptxas: needs a ptxas executable (skipped when none is found)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not ptxas_available():
        no_ptxas = pytest.mark.skip(reason="needs ptxas")
        for item in items:
            if "requires_ptxas" in item.keywords:
                item.add_marker(no_ptxas)
    ok, why = gpu_status()
    if ok:
        return
    if os.environ.get(REQUIRE_GPU) == "1" and any("gpu" in item.keywords for item in items):
        raise pytest.UsageError(f"{REQUIRE_GPU}=1 but the gpu tests cannot run: {why}")
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU visible to CuPy ({why})")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def emulated_backend():  # type: ignore[no-untyped-def]
    """One emulated backend (in-memory store) per test module: a warm cache across its tests."""
    from chronos.measure import make_backend

    b = make_backend("emulated", store=None)
    yield b
    b.close()
