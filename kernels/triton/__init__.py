"""triton: kernels compiled by Triton for sm_80: vector add, row softmax and tiled matmul.

The sources (`sources.py`) are the Triton tutorials' kernels; `generate.py` compiles each
variant ahead of time, without a GPU, and checks the PTX in. A variant fixes the constexprs
(block sizes), `num_warps`, `num_stages`, the element type and the argument specialisation
the Triton JIT would have chosen at launch: a pointer or an int argument divisible by 16 is
compiled with `tt.divisibility = 16` ("D"), and an int equal to 1 becomes a constant and
leaves the parameter list. The spec's alignment and divisibility contract is exactly that
specialisation, and every problem satisfies it.

Triton appends two pointer parameters to every kernel, a global scratch and a profile scratch
buffer. These kernels need neither (`global_scratch_size` and `profile_scratch_size` are 0 in
the compiled metadata, and the PTX never reads those parameters); Triton's launcher passes
NULL, the specs pass a one-byte read-only buffer.

Inputs are chosen so that the references are exact where the kernel's arithmetic is: the adds
and matmuls see small integers or dyadic values (every sum exact in float32, the float16
results representable), so they verify bit for bit; softmax uses `ex2.approx` and a full-range
division, and is held to its tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kernels.spec import BufferSpec, KernelSpec, Param, Problem, Tolerance

FAMILY = "triton"
HERE = Path(__file__).resolve().parent
PTX_DIR = HERE / "ptx"
MANIFEST = HERE / "manifest.json"
TARGET = "sm_80"
ALIGNMENT = 16
"""Triton's pointer specialisation: `tt.divisibility = 16` means 16-byte aligned."""
DIVISOR = 16
"""Triton's integer specialisation: divisible by 16."""
SCRATCH = ("global_scratch", "profile_scratch")
"""The two pointer parameters Triton appends to every kernel."""

FULL_SMS = 132
"""SMs of the H100 the "full" problems are sized for (several waves each)."""


@dataclass(frozen=True)
class Variant:
    """One compiled kernel: which source, its constexprs and compile options.

    `args` lists the source's runtime arguments in order, each "ptr", "D" (int specialised
    as divisible by 16), "1" (int specialised to the constant 1) or "" (plain i32).
    """

    id: str
    kernel: str
    dtype: str
    constexprs: Mapping[str, int | str]
    num_warps: int
    num_stages: int
    args: Mapping[str, str] = field(default_factory=dict)

    @property
    def threads(self) -> int:
        return 32 * self.num_warps


def _one_block(
    kernel: str, block: int, warps: int, dtype: str, divisible: bool, args: dict[str, str]
) -> Variant:
    """A kernel with one BLOCK_SIZE (add, softmax); ids of a size not divisible end `_ragged`."""
    tag = "" if divisible else "_ragged"
    return Variant(
        id=f"triton_{kernel.removesuffix('_kernel')}_{dtype}_b{block}_w{warps}{tag}",
        kernel=kernel,
        dtype=dtype,
        constexprs={"BLOCK_SIZE": block},
        num_warps=warps,
        num_stages=3,
        args=args,
    )


def _add(block: int, warps: int, dtype: str, n_div: bool) -> Variant:
    args = {"x_ptr": "ptr", "y_ptr": "ptr", "output_ptr": "ptr", "n_elements": "D" * n_div}
    return _one_block("add_kernel", block, warps, dtype, n_div, args)


def _softmax(block: int, warps: int, dtype: str, cols_div: bool) -> Variant:
    args = {
        "output_ptr": "ptr",
        "input_ptr": "ptr",
        "input_row_stride": "D",
        "output_row_stride": "D",
        "n_cols": "D" * cols_div,
    }
    return _one_block("softmax_kernel", block, warps, dtype, cols_div, args)


def _matmul(bm: int, bn: int, bk: int, warps: int, stages: int, dtype: str) -> Variant:
    return Variant(
        id=f"triton_matmul_{dtype}_{bm}x{bn}x{bk}_w{warps}_s{stages}",
        kernel="matmul_kernel",
        dtype=dtype,
        constexprs={
            "BLOCK_SIZE_M": bm,
            "BLOCK_SIZE_N": bn,
            "BLOCK_SIZE_K": bk,
            "GROUP_SIZE_M": 8,
            # fp32 inputs: exact FMA products ("ieee"), not tf32 tensor cores.
            "INPUT_PRECISION": "ieee" if dtype == "fp32" else "tf32",
        },
        num_warps=warps,
        num_stages=stages,
        args={
            "a_ptr": "ptr",
            "b_ptr": "ptr",
            "c_ptr": "ptr",
            "M": "D",
            "N": "D",
            "K": "D",
            "stride_am": "D",
            "stride_ak": "1",
            "stride_bk": "D",
            "stride_bn": "1",
            "stride_cm": "D",
            "stride_cn": "1",
        },
    )


VARIANTS: tuple[Variant, ...] = (
    _add(256, 2, "fp32", True),
    _add(1024, 4, "fp32", True),
    _add(4096, 8, "fp32", True),
    _add(1024, 4, "fp32", False),
    _add(2048, 4, "fp16", True),
    _softmax(128, 1, "fp32", True),
    _softmax(512, 4, "fp32", True),
    _softmax(1024, 8, "fp32", True),
    _softmax(1024, 4, "fp32", False),
    _softmax(512, 4, "fp16", True),
    _matmul(32, 32, 32, 4, 2, "fp16"),
    _matmul(64, 64, 32, 4, 3, "fp16"),
    _matmul(128, 64, 32, 4, 4, "fp16"),
    _matmul(64, 128, 64, 8, 3, "fp16"),
    _matmul(32, 64, 32, 4, 2, "fp32"),
)

NP_DTYPES = {"fp32": "float32", "fp16": "float16"}


def variant(kernel_id: str) -> Variant:
    for v in VARIANTS:
        if v.id == kernel_id:
            return v
    raise KeyError(f"no triton variant {kernel_id!r}")


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.is_file() else {"kernels": {}}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


# --- per kernel: parameters, problems, inputs, references --------------------------------------


def _params(v: Variant) -> tuple[tuple[Param, ...], dict[str, int], dict[str, int]]:
    """PTX parameters in order (runtime args less the constants, then the scratch pointers),
    with the alignment and divisibility contract of the specialisation."""
    params: list[Param] = []
    alignment: dict[str, int] = {}
    divisibility: dict[str, int] = {}
    names = [a for a, kind in v.args.items() if kind != "1"] + list(SCRATCH)
    for i, arg in enumerate(names):
        pname = f"{v.kernel}_param_{i}"
        kind = v.args.get(arg, "scratch")
        if kind in ("ptr", "scratch"):
            params.append(Param(pname, ".u64", "buffer", _buffer_of(arg)))
            if kind == "ptr":
                alignment[pname] = ALIGNMENT
        else:
            params.append(Param(pname, ".u32", "scalar"))
            if kind == "D":
                divisibility[pname] = DIVISOR
    return tuple(params), alignment, divisibility


def _buffer_of(arg: str) -> str:
    return {"x_ptr": "x", "y_ptr": "y", "output_ptr": "out", "input_ptr": "inp"}.get(
        arg, arg.removesuffix("_ptr").upper() if arg.endswith("_ptr") else arg
    )


def _scalars(v: Variant, values: Mapping[str, int]) -> dict[str, int]:
    names = [a for a, kind in v.args.items() if kind != "1"]
    return {
        f"{v.kernel}_param_{i}": int(values[a]) for i, a in enumerate(names) if v.args[a] != "ptr"
    }


def _problem(v: Variant, name: str, shared: int, **sizes: int) -> Problem:
    scratch = {s: (1,) for s in SCRATCH}
    if v.kernel == "add_kernel":
        n = sizes["n"]
        grid = (_cdiv(n, int(v.constexprs["BLOCK_SIZE"])), 1, 1)
        scalars = _scalars(v, {"n_elements": n})
        shapes = {"x": (n,), "y": (n,), "out": (n,)}
    elif v.kernel == "softmax_kernel":
        rows, cols = sizes["rows"], sizes["cols"]
        grid = (rows, 1, 1)
        scalars = _scalars(v, {"input_row_stride": cols, "output_row_stride": cols, "n_cols": cols})
        shapes = {"inp": (rows, cols), "out": (rows, cols)}
    else:
        m, n, k = sizes["M"], sizes["N"], sizes["K"]
        c = v.constexprs
        grid = (_cdiv(m, int(c["BLOCK_SIZE_M"])) * _cdiv(n, int(c["BLOCK_SIZE_N"])), 1, 1)
        scalars = _scalars(
            v, {"M": m, "N": n, "K": k, "stride_am": k, "stride_bk": n, "stride_cm": n}
        )
        shapes = {"A": (m, k), "B": (k, n), "C": (m, n)}
    return Problem(
        name=name,
        sizes=dict(sizes),
        grid=grid,
        block=(v.threads, 1, 1),
        scalars=scalars,
        shapes={**shapes, **scratch},
        dynamic_shared_bytes=shared,
    )


def _problems(v: Variant, shared: int) -> dict[str, Problem]:
    """ "small" and "check" fit the emulator (check is ragged where the masks allow it), "full"
    fills an H100 for several waves."""
    c = v.constexprs
    if v.kernel == "add_kernel":
        b = int(c["BLOCK_SIZE"])
        # Unspecialised n may be odd; a "D" one stays a multiple of 16 but not of the block.
        ragged = b + b // 2 + (13 if v.args["n_elements"] == "" else 16)
        return {
            "small": _problem(v, "small", shared, n=2 * b),
            "check": _problem(v, "check", shared, n=ragged),
            "full": _problem(v, "full", shared, n=1 << 24),
        }
    if v.kernel == "softmax_kernel":
        b = int(c["BLOCK_SIZE"])
        # BLOCK_SIZE is next_power_of_2(n_cols), as the tutorial launches it.
        return {
            "small": _problem(v, "small", shared, rows=4, cols=b),
            "check": _problem(v, "check", shared, rows=3, cols=b // 2 + 48),
            "full": _problem(v, "full", shared, rows=64 * FULL_SMS, cols=b),
        }
    bm, bn, bk = int(c["BLOCK_SIZE_M"]), int(c["BLOCK_SIZE_N"]), int(c["BLOCK_SIZE_K"])
    return {
        "small": _problem(v, "small", shared, M=bm, N=2 * bn, K=2 * bk),
        "check": _problem(v, "check", shared, M=bm + 16, N=2 * bn - 16, K=bk + 16),
        "full": _problem(v, "full", shared, M=4096, N=4096, K=512),
    }


def _scratch(problem: Problem) -> dict[str, np.ndarray]:
    return {s: np.zeros(problem.shapes[s], np.uint8) for s in SCRATCH}


def _inputs_fn(v: Variant):
    dt = np.dtype(NP_DTYPES[v.dtype])

    def make(problem: Problem, rng: np.random.Generator) -> dict[str, np.ndarray]:
        s = problem.shapes
        if v.kernel == "add_kernel":
            # Dyadic: x + y is exact in float32; float16 sums round once either way.
            x = (rng.integers(-1024, 1025, size=s["x"]) / 64).astype(dt)
            y = (rng.integers(-1024, 1025, size=s["y"]) / 64).astype(dt)
            return {"x": x, "y": y, **_scratch(problem)}
        if v.kernel == "softmax_kernel":
            return {"inp": rng.uniform(-4.0, 4.0, size=s["inp"]).astype(dt), **_scratch(problem)}
        # Integers in [-2, 2]: products and K <= 512 sums are exact in float32 and the results
        # (|c| <= 2048) are exact in float16.
        a = rng.integers(-2, 3, size=s["A"]).astype(dt)
        b = rng.integers(-2, 3, size=s["B"]).astype(dt)
        return {"A": a, "B": b, **_scratch(problem)}

    return make


def _reference_fn(v: Variant):
    dt = np.dtype(NP_DTYPES[v.dtype])

    def ref(problem: Problem, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if v.kernel == "add_kernel":
            x, y = (np.asarray(inputs[k], np.float64) for k in ("x", "y"))
            return {"out": (x + y).astype(dt)}
        if v.kernel == "softmax_kernel":
            x = np.asarray(inputs["inp"], np.float64)
            e = np.exp(x - x.max(axis=1, keepdims=True))
            return {"out": (e / e.sum(axis=1, keepdims=True)).astype(dt)}
        a, b = (np.asarray(inputs[k], np.float64) for k in ("A", "B"))
        if problem.sizes["K"] > 512:
            raise ValueError("K > 512: float16 results of [-2, 2] inputs could round")
        return {"C": (a @ b).astype(dt)}

    return ref


def _buffers(v: Variant) -> tuple[BufferSpec, ...]:
    dt = NP_DTYPES[v.dtype]
    if v.kernel == "add_kernel":
        data = (BufferSpec("x", dt, "in"), BufferSpec("y", dt, "in"), BufferSpec("out", dt, "out"))
    elif v.kernel == "softmax_kernel":
        data = (BufferSpec("inp", dt, "in"), BufferSpec("out", dt, "out"))
    else:
        data = (BufferSpec("A", dt, "in"), BufferSpec("B", dt, "in"), BufferSpec("C", dt, "out"))
    return data + tuple(BufferSpec(s, "uint8", "in") for s in SCRATCH)


def _tolerance(v: Variant) -> Tolerance:
    if v.kernel == "softmax_kernel":
        # ex2.approx (2 ulp) and div.full (2 ulp) in float32; one float16 rounding on output.
        return Tolerance(2e-3, 1e-6) if v.dtype == "fp16" else Tolerance(1e-5, 1e-7)
    return Tolerance(1e-5, 1e-5) if v.dtype == "fp32" else Tolerance(1e-3, 1e-3)


def make_spec(v: Variant, shared: int | None = None) -> KernelSpec:
    """The spec of one variant; `shared` (dynamic shared bytes) defaults to the manifest's."""
    if shared is None:
        shared = int(_manifest()["kernels"].get(v.id, {}).get("shared", 0))
    params, alignment, divisibility = _params(v)
    return KernelSpec(
        id=v.id,
        family=FAMILY,
        entry=v.kernel,
        ptx_path=PTX_DIR / f"{v.id}.ptx",
        params=params,
        buffers=_buffers(v),
        problems=_problems(v, shared),
        reference_fn=_reference_fn(v),
        inputs_fn=_inputs_fn(v),
        alignment=alignment,
        divisibility=divisibility,
        tolerance=_tolerance(v),
        target=TARGET,
    )


def specs() -> list[KernelSpec]:
    """All variants, in table order."""
    shared = {k: int(r.get("shared", 0)) for k, r in _manifest()["kernels"].items()}
    return [make_spec(v, shared.get(v.id, 0)) for v in VARIANTS]
