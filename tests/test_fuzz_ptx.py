"""Property-based fuzz of the validity pipeline on mutated corpus PTX (issue 13).

Lines of a corpus kernel's body are dropped, duplicated or swapped, and operands perturbed
(register numbers, immediates, address offsets). Whatever comes out, parsing either succeeds
or raises PtxParseError, `verify` and the emulated backend's `measure` return a verdict
instead of raising, and a kernel they call valid computes the reference outputs bit for bit
(checked here independently of `verify`'s own comparison). The CI profile runs a few dozen
examples on three small kernels; the `slow` one a few hundred on more.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from chronos.emulate.launch import emulate
from chronos.emulate.verify import verify
from chronos.measure.emulated_backend import EmulatedBackend
from chronos.measure.measurement import Measurement
from chronos.ptx import PtxParseError, parse

pytestmark = pytest.mark.requires_ptxas

CI_KERNELS = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2"]
SLOW_KERNELS = [*CI_KERNELS, "gemm_tile_4_4_8", "gemm_tile_2_8_4"]
MAX_STEPS = 20_000  # a correct corpus kernel takes < 1,000; a mutated loop must stop early

_REG = re.compile(r"%(r|rd|f|p|rs)(\d+)")
_IMM = re.compile(r"(?<=[\s,])(-?\d+)(?=;|,|\s*$)")
_OFFSET = re.compile(r"\+(\d+)\]")


def _body(lines: list[str]) -> list[int]:
    """Indices of the entry body's instruction lines (inside the braces, not declarations)."""
    open_at = next(i for i, line in enumerate(lines) if line.strip() == "{")
    close_at = max(i for i, line in enumerate(lines) if line.strip() == "}")
    return [
        i
        for i in range(open_at + 1, close_at)
        if lines[i].strip().endswith(";") and not lines[i].strip().startswith(".")
    ]


def _perturb(line: str, kind: int, delta: int) -> str:
    if kind == 0:
        return _REG.sub(lambda m: f"%{m[1]}{max(1, int(m[2]) + delta)}", line, count=1)
    if kind == 1:
        return _IMM.sub(lambda m: str(int(m[1]) + delta), line, count=1)
    return _OFFSET.sub(lambda m: f"+{max(0, int(m[1]) + 4 * delta)}]", line, count=1)


@st.composite
def mutations(draw: st.DrawFn, kernel_ids: list[str]) -> tuple[str, str, list[str]]:
    """(kernel id, mutated PTX, what was done), one to three edits of the body."""
    kid = draw(st.sampled_from(kernel_ids))
    lines = kernels.load(kid).ptx().splitlines(keepends=True)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        body = _body(lines)
        i = draw(st.sampled_from(body))
        op = draw(st.sampled_from(["drop", "duplicate", "swap", "perturb"]))
        if op == "drop":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.sampled_from(body))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            kind, delta = draw(st.integers(0, 2)), draw(st.sampled_from([-2, -1, 1, 2, 7]))
            lines[i] = _perturb(lines[i], kind, delta)
        done.append(f"{op}@{i + 1}")
    return kid, "".join(lines), done


def _bits(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint32) if a.dtype == np.float32 else a


def check(kid: str, ptx: str, done: list[str], backend: EmulatedBackend) -> None:
    spec = kernels.load(kid)
    try:
        parse(ptx)
    except PtxParseError as exc:
        assert exc.line >= 1 and f"line {exc.line}" in str(exc)
    v = verify(spec, ptx, max_steps=MAX_STEPS)  # never raises: a verdict with a kind
    assert v.ok or (v.kind != "ok" and v.error), (done, v)
    if v.ok:
        problem = spec.problem("small")
        inputs = spec.make_inputs(problem, 0)
        expected = spec.reference(problem, inputs)
        got = emulate(spec, ptx, inputs=inputs, max_steps=MAX_STEPS).outputs
        for name, ref in expected.items():
            assert np.array_equal(_bits(got[name]), _bits(ref)), (done, name)
    m = backend.measure(spec, ptx)  # assembles with ptxas too; never raises for a bad kernel
    assert isinstance(m, Measurement)
    if m.valid:
        assert v.ok, (done, "measure called valid what verify refused", v.kind, v.error)
        assert m.cycles is not None and m.cycles > 0
    else:
        assert m.error and m.cycles is None, done


@pytest.fixture(scope="module")
def backend() -> EmulatedBackend:
    return EmulatedBackend(max_steps=MAX_STEPS)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutations(CI_KERNELS))
def test_mutated_ptx_is_refused_or_exactly_right(case, backend: EmulatedBackend) -> None:
    check(*case, backend)


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutations(SLOW_KERNELS))
def test_mutated_ptx_is_refused_or_exactly_right_long(case, backend: EmulatedBackend) -> None:
    check(*case, backend)
