"""Seeded fuzzing of the validity pipeline on mutated corpus PTX (issues 13 and 29).

One definition of the mutations and of what must hold, used by tests/test_fuzz_ptx.py (a
sample in CI) and benchmarks/fuzz.py (the full run). Lines of a corpus kernel's body are
dropped, duplicated or swapped, and operands perturbed (register numbers, immediates, address
offsets). Whatever comes out:

- parse -> print -> parse: only PtxParseError may escape (naming its line), and a parsed
  module prints to a fixed point;
- assemble + emulate + verify: a verdict, never an exception, never a hang; a kernel `verify`
  calls exact computes the reference outputs bit for bit (checked independently of it), and
  one the backend calls valid is exact or within the kernel's tolerance;
- the env: `step` never raises on an action its mask allows.
"""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
from hypothesis import strategies as st

import kernels
from chronos.emulate.launch import emulate
from chronos.emulate.verify import verify
from chronos.measure.measurement import Measurement
from chronos.ptx import PtxParseError, parse, print_ptx

MAX_STEPS = 20_000  # a correct small corpus kernel takes < 1,000; a mutated loop must stop early
MEASURE_S = 10.0
"""The most one measurement of a mutated kernel may take (the backend's budgets bound it)."""

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


def check_parse(ptx: str, done: list[str]) -> bool:
    """Parsed (True) or refused with the line named (False); a parsed module is a fixed
    point of print -> parse."""
    try:
        module = parse(ptx)
    except PtxParseError as exc:
        assert exc.line >= 1 and f"line {exc.line}" in str(exc), (done, exc)
        return False
    text = print_ptx(module)
    again = parse(text)
    assert text == ptx and print_ptx(again) == text, done
    shape = [(f.name, len(f.body)) for f in module.functions]
    assert shape == [(f.name, len(f.body)) for f in again.functions], done
    return True


def check(kid: str, ptx: str, done: list[str], backend: Any) -> tuple[str, float]:
    """Every property above for one mutated kernel; returns (the measurement's verdict kind or
    "ok", its seconds)."""
    spec = kernels.load(kid)
    check_parse(ptx, done)
    v = verify(spec, ptx, max_steps=MAX_STEPS)  # never raises: a verdict with a kind
    assert v.ok or (v.kind != "ok" and v.error), (done, v)
    if v.ok:
        problem = spec.problem("small")
        inputs = spec.make_inputs(problem, 0)
        expected = spec.reference(problem, inputs)
        got = emulate(spec, ptx, inputs=inputs, max_steps=MAX_STEPS).outputs
        for name, ref in expected.items():
            assert np.array_equal(_bits(got[name]), _bits(ref)), (done, name)
    t0 = time.perf_counter()
    m = backend.measure(spec, ptx)  # assembles with ptxas too; never raises for a bad kernel
    seconds = time.perf_counter() - t0
    assert seconds < MEASURE_S, (done, seconds, "a mutated kernel must cost bounded time")
    assert isinstance(m, Measurement)
    if m.valid:
        # the backend accepts outputs within the kernel's tolerance too (exact=None)
        within = v.kind == "mismatch" and verify(spec, ptx, exact=False, max_steps=MAX_STEPS).ok
        assert v.ok or within, (done, "measure called valid what verify refused", v.kind, v.error)
        assert m.cycles is not None and m.cycles > 0
        return "ok", seconds
    assert m.error and m.cycles is None, done
    return str(m.extra.get("kind", "invalid")), seconds


def check_env_episode(env: Any, seed: int, picks: list[int]) -> list[str]:
    """Play an episode of masked-legal actions (`picks` index the legal ones); `step` must
    not raise and must return finite rewards and observations. Returns the step outcomes."""
    obs, info = env.reset(seed=seed)
    outcomes = []
    for pick in picks:
        legal = np.flatnonzero(info["action_mask"])
        action = int(legal[pick % len(legal)])
        obs, reward, terminated, truncated, info = env.step(action)
        assert np.isfinite(reward) and np.all(np.isfinite(obs)), (seed, picks, action)
        outcomes.append(info["invalid"] or info["reason"] or "applied")
        if terminated or truncated:
            break
    return outcomes
