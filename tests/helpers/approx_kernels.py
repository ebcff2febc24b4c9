"""Specs for tests/data/approx: kernels whose outputs depend on how the GPU approximates.

`quot_spec` divides with IEEE rounding (fast_math makes it `div.approx.ftz`); `huge=True`
draws divisors in (2^126, 2^128), where `div.approx` returns 0. `tanh_ex2_spec` and
`sine_spec` use `tanh/ex2/sin.approx` themselves. The tolerance is a parameter: the tests
hold the same kernel to a contract looser and tighter than the approximations' bounds.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from kernels import BufferSpec, KernelSpec, Param, Problem, Tolerance
from kernels.spec import InputsFn, ReferenceFn

PTX = Path(__file__).resolve().parents[1] / "data" / "approx" / "approx.ptx"
FAM = "approx"
BLOCK = 128
SIZES = {"full": 1 << 20, "small": 1000, "check": 1531}


def _problems(entry: str, buffers: tuple[str, ...]) -> dict[str, Problem]:
    """full / small / check problems of `n` elements, one thread each; `n` the last param."""
    return {
        name: Problem(
            name=name,
            sizes={"n": n},
            grid=(-(-n // BLOCK), 1, 1),
            block=(BLOCK, 1, 1),
            scalars={f"{entry}_param_{len(buffers)}": n},
            shapes={b: (n,) for b in buffers},
        )
        for name, n in SIZES.items()
    }


def _spec(
    kernel_id: str,
    entry: str,
    buffers: tuple[str, ...],
    outputs: tuple[str, ...],
    reference_fn: ReferenceFn,
    inputs_fn: InputsFn,
    tolerance: Tolerance,
) -> KernelSpec:
    """An entry of approx.ptx over float32 `buffers` (`outputs` written) and then `n`."""
    ps = [Param(f"{entry}_param_{i}", ".u64", "buffer", b) for i, b in enumerate(buffers)]
    return KernelSpec(
        id=kernel_id,
        family=FAM,
        entry=entry,
        ptx_path=PTX,
        params=(*ps, Param(f"{entry}_param_{len(buffers)}", ".u32", "scalar")),
        buffers=tuple(BufferSpec(b, "float32", "out" if b in outputs else "in") for b in buffers),
        problems=_problems(entry, buffers),
        reference_fn=reference_fn,
        inputs_fn=inputs_fn,
        tolerance=tolerance,
    )


def quot_inputs(problem: Problem, rng: np.random.Generator, huge: bool) -> dict:
    n = problem.sizes["n"]
    sign = rng.choice([-1.0, 1.0], n)
    if huge:  # quotients of order 1 whose divisors lie where div.approx flushes 1/d
        d = sign * rng.uniform(2.0**126, 2.0**127.9, n)
        x = rng.uniform(2.0**125, 2.0**127, n)
    else:
        d = sign * rng.uniform(0.5, 8.0, n)
        x = rng.uniform(-4.0, 4.0, n)
    return {"x": x.astype(np.float32), "d": d.astype(np.float32), "y": np.zeros(n, np.float32)}


def quot_ref(problem: Problem, inp: dict) -> dict:
    q = inp["x"].astype(np.float64) / inp["d"].astype(np.float64)
    return {"y": q.astype(np.float32)}


def quot_spec(tolerance: Tolerance, huge: bool = False) -> KernelSpec:
    """y = x / d (div.rn.f32), held to `tolerance`."""
    tag = f"{'huge' if huge else 'plain'}_r{tolerance.rtol:.3g}_a{tolerance.atol:.3g}"
    inputs = functools.partial(quot_inputs, huge=huge)
    return _spec(f"approx_quot_{tag}", "quot", ("x", "d", "y"), ("y",), quot_ref, inputs, tolerance)


def uniform_inputs(problem: Problem, rng: np.random.Generator, span: float, outs: tuple) -> dict:
    n = problem.sizes["n"]
    inp = {"x": rng.uniform(-span, span, n).astype(np.float32)}
    inp.update({o: np.zeros(n, np.float32) for o in outs})
    return inp


def tanh_ex2_ref(problem: Problem, inp: dict) -> dict:
    x = inp["x"].astype(np.float64)
    return {"t": np.tanh(x).astype(np.float32), "e": np.exp2(x).astype(np.float32)}


def tanh_ex2_spec(tolerance: Tolerance) -> KernelSpec:
    """t = tanh.approx(x), e = ex2.approx(x) for x in [-4, 4), held to `tolerance`."""
    kid = f"approx_tanh_ex2_r{tolerance.rtol:.3g}"
    inputs = functools.partial(uniform_inputs, span=4.0, outs=("t", "e"))
    return _spec(kid, "tanh_ex2", ("x", "t", "e"), ("t", "e"), tanh_ex2_ref, inputs, tolerance)


def sine_ref(problem: Problem, inp: dict) -> dict:
    return {"y": np.sin(inp["x"].astype(np.float64)).astype(np.float32)}


def sine_spec(span: float, atol: float) -> KernelSpec:
    """y = sin.approx(x) for x uniform in [-span, span), held to `atol`."""
    kid = f"approx_sine_{span:.4g}_a{atol:.3g}"
    inputs = functools.partial(uniform_inputs, span=span, outs=("y",))
    return _spec(kid, "sine", ("x", "y"), ("y",), sine_ref, inputs, Tolerance(0.0, atol))
