"""Verification: run a kernel's PTX in the emulator and compare with its NumPy reference.

Exact transforms must reproduce the reference bit for bit (the corpus's dyadic inputs make
the reference exact for any correct kernel); rounding-changing transforms are held to the
kernel's tolerance. Faults, unsupported instructions and runaway loops are failures with a
reason, never exceptions: the caller is deciding whether a step is valid.

A GPU's approximate instructions (`ex2.approx`, `div.full`, ...) are only bounded, so when
any execute, the run is repeated with each approximation pushed to its PTX ISA bound
(chronos.emulate.approx: up, down and a seeded mix) and every run must be within the
tolerance: a kernel whose tolerance the approximations can exceed fails (kind "approx").
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chronos.emulate.approx import PERTURBED, Approx
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

VERIFY_VERSION = "approx-bounds-1"
"""What a verdict means; stores of verdicts key on it (approximations pushed to their bounds)."""


@dataclass
class VerifyResult:
    """`ok` is the verdict; `kind` says why not (mismatch, fault, unsupported, timeout, ...).

    `max_abs_err` is the largest |output - reference| over all outputs and runs (inf for
    NaN/inf disagreements, NaN when the kernel did not finish); `mismatches` counts elements
    that fail the comparison. `run` holds the nominal run's result (with the trace when asked
    for). `approx_runs` counts the perturbed runs made (0 when no approximate instruction
    executed); `bit_exact` says whether the nominal outputs equal the reference bit for bit.
    """

    ok: bool
    max_abs_err: float
    mismatches: int
    error: str | None
    kind: str = "ok"
    run: RunResult | None = field(default=None, repr=False, compare=False)
    approx_runs: int = 0
    bit_exact: bool | None = None


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


def _failure(kind: str, exc: Exception, context: str = "") -> VerifyResult:
    return VerifyResult(False, float("nan"), 0, f"{context}{type(exc).__name__}: {exc}", kind)


_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (SharedMemoryRace, "race"),
    (MemoryFault, "fault"),
    (UnsupportedInstruction, "unsupported"),
    (StepLimitExceeded, "timeout"),
    (TrapExecuted, "trap"),
    (EmulationError, "error"),
    (PtxParseError, "parse"),
)


def _run(
    spec: Any, ptx: str, context: str, **kw: Any
) -> tuple[RunResult | None, VerifyResult | None]:
    """(the run, None), or (None, the failure) for a kernel that cannot run to completion."""
    try:
        return emulate(spec, ptx, **kw), None
    except tuple(t for t, _ in _FAILURES) as exc:
        kind = next(k for t, k in _FAILURES if isinstance(exc, t))
        return None, _failure(kind, exc, context)


def verify(
    spec: Any,
    ptx: str,
    exact: bool = True,
    seed: int = 0,
    size: str = "small",
    trace: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    races: bool = True,
    approx: bool = True,
) -> VerifyResult:
    """Emulate `ptx` as `spec`'s kernel on seeded inputs and compare with the reference.

    `races`: also check shared memory for accesses no barrier orders (kind "race"); the
    lockstep emulator computes the right answer for a racy kernel, a GPU may not.
    `approx`: where approximate instructions execute, also run with them pushed to their
    bounds (seeded by `seed`) and hold each such run to the tolerance, whatever `exact` says:
    no GPU computes them bit for bit as the emulator does.
    """
    problem = spec.problem(size)
    inputs = spec.make_inputs(problem, seed)
    reference = spec.reference(problem, inputs)
    run, failed = _run(
        spec, ptx, "", size=size, inputs=inputs, trace=trace, max_steps=max_steps, races=races
    )
    if failed is not None:
        return failed
    assert run is not None
    tol = spec.tolerance
    rtol, atol, bf16 = float(tol.rtol), float(tol.atol), spec.bfloat16_buffers
    mismatches, worst, message = compare(run.outputs, reference, exact, rtol, atol, bf16)
    bit_exact = mismatches == 0 if exact else compare(run.outputs, reference, True)[0] == 0
    if mismatches:
        return VerifyResult(False, worst, mismatches, message, "mismatch", run, 0, bit_exact)
    n_runs = 0
    if approx and run.approx_executed:
        for mode in PERTURBED:
            context = f"approximations pushed {mode} to their PTX ISA bounds: "
            state = Approx(mode, seed)
            pushed, failed = _run(
                spec, ptx, context, size=size, inputs=inputs, max_steps=max_steps, approx=state
            )
            n_runs += 1
            if failed is not None:
                failed.run, failed.approx_runs, failed.bit_exact = run, n_runs, bit_exact
                return failed
            assert pushed is not None
            n, w, msg = compare(pushed.outputs, reference, False, rtol, atol, bf16)
            worst = max(worst, w)
            if n:
                if state.unbounded:
                    msg = f"{msg} ({state.unbounded} results outside every documented bound)"
                return VerifyResult(
                    False, worst, n, context + str(msg), "approx", run, n_runs, bit_exact
                )
    return VerifyResult(True, worst, 0, None, "ok", run, n_runs, bit_exact)
