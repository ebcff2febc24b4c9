"""Bounded work (issue 29, item 3): a runaway kernel costs one invalid measurement of kind
`timeout` naming its PTX line, in seconds, and the env and the run go on."""

from __future__ import annotations

import dataclasses
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kernels
from chronos.emulate import TimeLimitExceeded, emulate, emulation_budget, verify
from chronos.measure import make_backend
from chronos.measure.backends.emulated import MIN_STEP_BUDGET, STEP_FACTOR, EmulatedBackend
from envs.ptx_env import PtxTransformEnv
from tests.helpers.catalogue import catalogue_with

pytestmark = pytest.mark.requires_ptxas

GEMM = "gemm_tile_2_2_2"
REDUCE = "reduce_rows_f16_b256_i2_tree"
# (kernel, original line, replacement): each turns a loop into one that (practically) never
# ends and stays in bounds, so only a budget can stop it.
RUNAWAYS = {
    # a corrupted loop bound: the guarded loads never fault, the counter never reaches it
    "bound": (REDUCE, "setp.lt.s32 \t%p5, %r42, %r8;", "setp.lt.s32 \t%p5, %r42, 2147483647;"),
    # a back edge to the loop's set-up code, which resets the counter each time
    "backedge": (GEMM, "@%p2 bra \t$L__BB0_3;", "@%p2 bra \t$L__BB0_2;"),
}
STEP_S = 5.0
"""The most an env step that meets a runaway kernel may take (the issue's bound)."""


def runaway(kind: str) -> tuple[Any, str, int]:
    """(spec, runaway PTX, 1-based line of the changed instruction)."""
    kid, old, new = RUNAWAYS[kind]
    spec = kernels.load(kid)
    ptx = spec.ptx()
    assert ptx.count(old) == 1, (kind, "the corpus PTX changed; update RUNAWAYS")
    out = ptx.replace(old, new)
    line = out[: out.index(new)].count("\n") + 1
    return spec, out, line


def test_step_budget_stops_a_runaway_loop_at_its_line() -> None:
    spec, ptx, _ = runaway("bound")
    with emulation_budget(None) as budget:
        v = verify(spec, ptx, max_steps=3_000)
    assert v.kind == "timeout" and "more than 3000 steps" in (v.error or "")
    assert budget.stopped == "steps" and budget.line is not None
    assert f"line {budget.line}" in (v.error or "")
    # a correct run inside a budget leaves it untouched
    with emulation_budget(10.0) as budget:
        assert verify(spec, spec.ptx()).ok
    assert budget.stopped is None


def test_wall_clock_stops_a_run_before_its_step_budget() -> None:
    spec, ptx, _ = runaway("backedge")
    t0 = time.perf_counter()
    with emulation_budget(0.3) as budget:
        v = verify(spec, ptx, max_steps=10**9)
    elapsed = time.perf_counter() - t0
    assert v.kind == "timeout" and "TimeLimitExceeded" in (v.error or ""), v.error
    assert "0.3 s of wall clock" in (v.error or "") and budget.stopped == "time"
    assert f"line {budget.line}" in (v.error or "")
    assert elapsed < 0.3 + 2.0, elapsed
    with pytest.raises(TimeLimitExceeded), emulation_budget(0.3):
        emulate(spec, ptx, max_steps=10**9)


def test_budgets_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="positive"), emulation_budget(0):
        pass
    with pytest.raises(ValueError, match="positive"), emulation_budget(-1.0):
        pass
    spec = kernels.load(GEMM)
    with pytest.raises(ValueError, match="max_steps"):
        emulate(spec, max_steps=0)
    for bad in ({"step_factor": 0.5}, {"max_steps": 0}, {"time_limit_s": 0.0}):
        with pytest.raises(ValueError):
            EmulatedBackend(**bad)


def test_step_budget_comes_from_the_untransformed_kernel() -> None:
    spec = kernels.load(GEMM)
    base = emulate(spec).steps
    b = EmulatedBackend()
    assert b.step_budget(spec) == max(MIN_STEP_BUDGET, STEP_FACTOR * base)
    assert b.step_budget(spec, spec.ptx()) >= STEP_FACTOR * base
    capped = EmulatedBackend(max_steps=base + 1)
    assert capped.step_budget(spec) == base + 1
    assert EmulatedBackend(step_factor=3).cache_config() != b.cache_config()


@pytest.mark.parametrize("kind", sorted(RUNAWAYS))
def test_measure_of_a_runaway_is_a_stored_timeout(kind: str) -> None:
    spec, ptx, _ = runaway(kind)
    backend = make_backend("emulated", store=None)
    t0 = time.perf_counter()
    m = backend.measure(spec, ptx)
    assert time.perf_counter() - t0 < STEP_S
    assert not m.valid and m.cycles is None and m.backend == "emulated"
    assert m.extra["kind"] == "timeout" and m.extra["stopped_by"] == "steps", m.extra
    assert m.extra["step_budget"] == backend.inner.step_budget(spec)
    assert not m.extra["transient"] and "line " in (m.error or "")
    # a step-budget stop repeats exactly: stored, served from the store next time
    again = backend.measure(spec, ptx)
    assert again == m and backend.stats["hits"] == 1
    backend.close()


def test_a_runaway_untransformed_kernel_stops_on_the_clock_and_is_not_stored(
    tmp_path: Path,
) -> None:
    spec, ptx, _ = runaway("backedge")
    path = tmp_path / "runaway.ptx"
    path.write_text(ptx)
    broken = dataclasses.replace(spec, id="gemm_runaway", ptx_path=path)
    backend = make_backend("emulated", store=None, time_limit_s=0.5)
    t0 = time.perf_counter()
    m = backend.measure(broken, ptx)
    assert time.perf_counter() - t0 < STEP_S
    assert not m.valid and m.extra["kind"] == "timeout" and m.extra["stopped_by"] == "time"
    assert m.extra["transient"] and "wall clock" in (m.error or "")
    backend.measure(broken, ptx)
    assert backend.stats["hits"] == 0 and backend.stats["writes"] == 0
    backend.close()


def _catalogue_with(kind: str) -> types.SimpleNamespace:
    """The real catalogue plus one transform, `break_loop`, that makes the runaway."""
    _, old, new = RUNAWAYS[kind]
    return catalogue_with("break_loop", lambda ptx: (ptx.replace(old, new), old in ptx))


@pytest.mark.parametrize("kind", sorted(RUNAWAYS))
def test_env_step_into_a_runaway_is_one_quick_invalid_step(kind: str) -> None:
    kid = RUNAWAYS[kind][0]
    cat = _catalogue_with(kind)
    env = PtxTransformEnv(kernels=kid, backend="emulated", store=None, transforms=cat)
    try:
        _, info = env.reset(seed=0)
        brk = cat.N_ACTIONS - 2
        assert info["action_mask"][brk]
        t0 = time.perf_counter()
        _, reward, terminated, _, info = env.step(brk)
        assert time.perf_counter() - t0 < STEP_S
        assert terminated and reward == pytest.approx(env.mdp.invalid_penalty)
        assert "timeout" in info["invalid"] and "line " in info["invalid"], info
        # the run goes on: a new episode, a real transform, a valid step
        _, info = env.reset(seed=1)
        legal = [a for a in np.flatnonzero(info["action_mask"]) if a not in (brk, cat.STOP)]
        _, _, _, _, info = env.step(int(legal[0]))
        assert not info["invalid"] or "timeout" not in info["invalid"], info
    finally:
        env.close()
