"""Verification: run a kernel's PTX in the emulator and compare with its NumPy reference.

Exact transforms must reproduce the reference bit for bit (the corpus's dyadic inputs make
the reference exact for any correct kernel); rounding-changing transforms are held to the
kernel's tolerance. Faults, unsupported instructions and runaway loops are failures with a
reason, never exceptions: the caller is deciding whether a step is valid.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chronos.emulate.errors import (
    EmulationError,
    MemoryFault,
    SharedMemoryRace,
    StepLimitExceeded,
    TrapExecuted,
    UnsupportedInstruction,
)
from chronos.emulate.executor import DEFAULT_MAX_STEPS
from chronos.emulate.launch import RunResult, emulate
from chronos.ptx import PtxParseError
from kernels.spec import bfloat16_to_float


@dataclass
class VerifyResult:
    """`ok` is the verdict; `kind` says why not (mismatch, fault, unsupported, timeout, ...).

    `max_abs_err` is the largest |output - reference| over all outputs (inf for NaN/inf
    disagreements, NaN when the kernel did not finish); `mismatches` counts elements that
    fail the comparison. `run` holds the emulator's result (with the trace when asked for).
    """

    ok: bool
    max_abs_err: float
    mismatches: int
    error: str | None
    kind: str = "ok"
    run: RunResult | None = field(default=None, repr=False, compare=False)


def _as_bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    if a.dtype.kind == "f":
        return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])
    return a


def compare(
    outputs: Mapping[str, np.ndarray],
    reference: Mapping[str, np.ndarray],
    exact: bool,
    rtol: float = 0.0,
    atol: float = 0.0,
    bfloat16: Collection[str] = (),
) -> tuple[int, float, str | None]:
    """(mismatching elements, max abs error, message naming the first mismatch).

    Arrays named in `bfloat16` hold bfloat16 bit patterns: compared bit for bit when
    `exact`, else as the float32 values they encode."""
    total = 0
    worst = 0.0
    message = None
    for name, ref in reference.items():
        got = np.asarray(outputs[name])
        ref = np.asarray(ref)
        if name in bfloat16 and not exact:
            got, ref = bfloat16_to_float(got), bfloat16_to_float(ref)
        if got.shape != ref.shape:
            return got.size or 1, float("inf"), f"{name}: shape {got.shape} != {ref.shape}"
        if exact:
            bad = _as_bits(got) != _as_bits(ref)
        elif got.dtype.kind == "f":
            g, r = got.astype(np.float64), ref.astype(np.float64)
            with np.errstate(invalid="ignore"):
                close = np.abs(g - r) <= atol + rtol * np.abs(r)
            same_special = (np.isnan(g) & np.isnan(r)) | (np.isinf(g) & (g == r))
            bad = ~(close | same_special)
        else:
            bad = got != ref
        if got.dtype.kind in "fiu":
            with np.errstate(invalid="ignore", over="ignore"):
                diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
            diff = np.where(np.isnan(diff) & ~(np.isnan(got) & np.isnan(ref)), np.inf, diff)
            diff = np.where(np.isnan(diff), 0.0, diff)
            if diff.size:
                worst = max(worst, float(diff.max()))
        n = int(bad.sum())
        if n and message is None:
            idx = np.unravel_index(int(np.flatnonzero(bad)[0]), bad.shape)
            message = (
                f"{n} of {bad.size} elements of {name} differ; first at {tuple(map(int, idx))}: "
                f"got {got[idx]!r}, expected {ref[idx]!r}"
            )
        total += n
    return total, worst, message


def _failure(kind: str, exc: Exception) -> VerifyResult:
    return VerifyResult(False, float("nan"), 0, f"{type(exc).__name__}: {exc}", kind)


def verify(
    spec: Any,
    ptx: str,
    exact: bool = True,
    seed: int = 0,
    size: str = "small",
    trace: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    races: bool = True,
) -> VerifyResult:
    """Emulate `ptx` as `spec`'s kernel on seeded inputs and compare with the reference.

    `races`: also check shared memory for accesses no barrier orders (kind "race"); the
    lockstep emulator computes the right answer for a racy kernel, a GPU may not.
    """
    problem = spec.problem(size)
    inputs = spec.make_inputs(problem, seed)
    reference = spec.reference(problem, inputs)
    try:
        run = emulate(
            spec, ptx, size=size, inputs=inputs, trace=trace, max_steps=max_steps, races=races
        )
    except SharedMemoryRace as exc:
        return _failure("race", exc)
    except MemoryFault as exc:
        return _failure("fault", exc)
    except UnsupportedInstruction as exc:
        return _failure("unsupported", exc)
    except StepLimitExceeded as exc:
        return _failure("timeout", exc)
    except TrapExecuted as exc:
        return _failure("trap", exc)
    except EmulationError as exc:
        return _failure("error", exc)
    except PtxParseError as exc:
        return _failure("parse", exc)
    tol = spec.tolerance
    mismatches, worst, message = compare(
        run.outputs, reference, exact, float(tol.rtol), float(tol.atol), spec.bfloat16_buffers
    )
    if mismatches:
        return VerifyResult(False, worst, mismatches, message, "mismatch", run)
    return VerifyResult(True, worst, 0, None, "ok", run)
