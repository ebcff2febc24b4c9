"""Scalar kernel arguments: one encoder for the emulator and the GPU harness (issue 13, item 2)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from chronos.emulate.decode import decode
from chronos.emulate.launch import param_values
from chronos.emulate.verify import verify
from chronos.measure.backends.cupy import launch_arguments
from chronos.measure.harness.cupy_harness import launch_args
from kernels import BufferSpec, KernelSpec, KernelSpecError, Param, Problem, register
from kernels.params import ParamEncodingError, bfloat16_bits, encode_scalar, launch_scalar
from tests.helpers.registry import user_ptx_file


def haxpy_spec(path: Path, a: object = 1.5, s: object = 0.25) -> KernelSpec:
    """tests/data/ptx/haxpy.ptx: y[i] = x[i] * a + s, with `a` an nvcc `half` (.b8[2]) and `s`
    an .f32 scalar."""

    def problem(n: int) -> Problem:
        scalars = {"haxpy_param_2": a, "haxpy_param_3": s, "haxpy_param_4": n}
        return Problem({"n": n}, (n // 64, 1, 1), (64, 1, 1), scalars, {"x": (n,), "y": (n,)})

    def reference(prob: Problem, inp: dict) -> dict:
        return {"y": inp["x"] * np.float32(1.5) + np.float32(0.25)}

    return KernelSpec(
        id="test_haxpy",
        family="test",
        entry="haxpy",
        ptx_path=path,
        params=(
            Param("haxpy_param_0", ".u64", "buffer", "x"),
            Param("haxpy_param_1", ".u64", "buffer", "y"),
            Param("haxpy_param_2", ".b8", "scalar"),
            Param("haxpy_param_3", ".f32", "scalar"),
            Param("haxpy_param_4", ".u32", "scalar"),
        ),
        buffers=(BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "out")),
        problems={"full": problem(1024), "small": problem(128)},
        reference_fn=reference,
    )


@pytest.fixture
def haxpy(tmp_path: Path):
    with user_ptx_file(tmp_path, "haxpy.ptx", "test_haxpy") as path:
        yield path


@pytest.mark.parametrize(
    ("value", "ptx_type", "nbytes", "expected"),
    [
        (200, ".u8", None, bytes([200])),
        (-2, ".s16", None, (-2).to_bytes(2, "little", signed=True)),
        (7, ".u32", None, (7).to_bytes(4, "little")),
        (-1, ".s64", None, b"\xff" * 8),
        (1 << 63, ".u64", None, (1 << 63).to_bytes(8, "little")),
        (1.5, ".f32", None, np.float32(1.5).tobytes()),
        (3, ".f32", None, np.float32(3).tobytes()),
        (1.5, ".f64", None, np.float64(1.5).tobytes()),
        (1.5, ".f16", None, np.float16(1.5).tobytes()),
        (1.5, ".bf16", None, np.float32(1.5).tobytes()[2:]),
        (1.5, ".b8", 2, np.float16(1.5).tobytes()),  # nvcc's half
        (1.5, ".b8", 4, np.float32(1.5).tobytes()),
        (np.float16(-0.5), ".b16", None, np.float16(-0.5).tobytes()),
        (bfloat16_bits(-2.0), ".b8", 2, np.float32(-2.0).tobytes()[2:]),
        (b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c", ".b8", 12, bytes(range(1, 13))),
        (5, ".b8", 12, (5).to_bytes(12, "little")),
    ],
)
def test_encoder_by_ptx_type(value: object, ptx_type: str, nbytes: int | None, expected: bytes):
    assert encode_scalar(value, ptx_type, nbytes) == expected
    assert launch_scalar(expected).tobytes() == expected


@pytest.mark.parametrize(
    ("value", "ptx_type", "nbytes", "message"),
    [
        (1.5, ".u32", None, "is a float"),
        (-1, ".u32", None, "does not fit .u32"),
        (1 << 32, ".s32", None, "does not fit"),
        (b"\x00", ".b8", 2, "got 1 bytes, needs 2"),
        ("3", ".u32", None, "not a number"),
        (1, ".pred", None, "unsupported parameter type"),
    ],
)
def test_encoder_refuses_what_does_not_fit(value, ptx_type, nbytes, message) -> None:
    with pytest.raises(ParamEncodingError, match=message):
        encode_scalar(value, ptx_type, nbytes)


def test_half_and_float_scalars_run_in_the_emulator(haxpy: Path) -> None:
    """Before: `a` became one byte (a = 0 in the emulator) and `s` an int on the GPU path."""
    spec = register(haxpy_spec(haxpy))
    result = verify(spec, spec.ptx())
    assert result.ok, result.error


def test_emulator_and_gpu_harness_pass_identical_bytes(haxpy: Path) -> None:
    spec = register(haxpy_spec(haxpy))
    for size in ("small", "full"):
        problem = spec.problem(size)
        program = decode(spec.ptx(), spec.entry)
        addresses = {"x": 0x1000, "y": 0x2000}
        args = {
            p.name: p.buffer if p.kind == "buffer" else problem.scalars[p.name] for p in spec.params
        }
        emulated = param_values(program, args, addresses)
        gpu = launch_args(launch_arguments(spec, problem, spec.ptx()), {"x": "X", "y": "Y"})
        for p, arg in zip(spec.params, gpu, strict=True):
            if p.kind == "scalar":
                assert arg.tobytes() == emulated[p.name], p.name
            else:
                assert arg == p.buffer.upper()
        assert len(emulated["haxpy_param_2"]) == 2
        assert emulated["haxpy_param_3"] == np.float32(0.25).tobytes()


def test_register_refuses_a_scalar_its_type_cannot_hold(haxpy: Path) -> None:
    bad = haxpy_spec(haxpy)
    problems = {
        k: dataclasses.replace(p, scalars={**p.scalars, "haxpy_param_4": 2.5})
        for k, p in bad.problems.items()
    }
    with pytest.raises(KernelSpecError, match=r"haxpy_param_4 \(.u32\): 2.5 is a float"):
        register(dataclasses.replace(bad, problems=problems))
