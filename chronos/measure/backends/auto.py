"""Backend `auto`: the real GPU harness when a GPU is visible, else the CPU emulator.

The check imports CuPy lazily and asks the runtime for a device count; anything going wrong
(CuPy absent, no driver, CUDA_VISIBLE_DEVICES empty) means "no GPU". The choice and its reason
are logged (a fall back to `emulated` as a warning) and kept on the backend (`auto_reason`) so
that a run log can say which it was; `chronos.validate` refuses anything but `cupy`.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("chronos.measure")


def gpu_visible() -> tuple[bool, str]:
    """(True, device summary) when CuPy sees a CUDA device, else (False, why not)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False, "CUDA_VISIBLE_DEVICES hides every GPU"
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - ImportError or a broken CUDA install
        return False, f"CuPy is not importable ({type(exc).__name__}: {exc})"
    try:
        n = int(cupy.cuda.runtime.getDeviceCount())
    except Exception as exc:  # noqa: BLE001 - no driver, insufficient driver, ...
        return False, f"CuPy sees no CUDA device ({exc})"
    if n <= 0:
        return False, "CuPy reports 0 CUDA devices"
    try:
        driver = int(cupy.cuda.runtime.driverGetVersion())
    except Exception:  # noqa: BLE001 - the device count answered; let the harness find out
        driver = 0
    if problem := _corpus_driver_problem(driver):
        return False, f"CuPy sees {n} CUDA device(s), but {problem}"
    from chronos.measure.harness.compat import cuda_version_str

    cuda = f", driver CUDA {cuda_version_str(driver)}" if driver > 0 else ""
    return True, f"CuPy sees {n} CUDA device(s){cuda}"


def _corpus_driver_problem(driver: int) -> str | None:
    """Why the driver cannot load the checked-in corpus even with each module lowered to the
    PTX ISA it needs (chronos.measure.harness.compat; ISA 7.0 today: any CUDA 11+ driver)."""
    from chronos.measure.harness.compat import driver_problem
    from kernels import list_kernels, load

    for kid in list_kernels():
        if problem := driver_problem(driver, load(kid).ptx()):
            return f"for the kernel corpus ({kid}) {problem}"
    return None


def choose_backend() -> tuple[str, str]:
    """('cupy' | 'emulated', reason): the GPU at INFO, the fall back to estimates at WARNING
    (a run that meant to use a GPU must not slip into estimates unnoticed)."""
    ok, why = gpu_visible()
    name = "cupy" if ok else "emulated"
    reason = f"auto: {name} ({why})"
    if ok:
        log.info("measurement backend %s", reason)
    else:
        log.warning("measurement backend %s: figures are estimates, not GPU timings", reason)
    return name, reason
