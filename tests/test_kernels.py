"""Kernel corpus: the 64 gemm_tile specs, their PTX and manifest, inputs, reference, registry."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kernels
from chronos.ptx import ptx_sha256
from kernels import (
    BufferSpec,
    KernelSpec,
    KernelSpecError,
    Param,
    Problem,
    UnknownKernelError,
    list_kernels,
    load,
    ptx_entries,
    register,
    registry_generation,
)
from kernels import gemm_tile as gt
from tests.helpers.data import ptx_text
from tests.helpers.registry import user_ptx_file

IDS = [gt.variant_id(*v) for v in gt.variants()]
ALL_IDS = [k if isinstance(k, str) else k.id for k in list_kernels()]


def tiles(kernel_id: str) -> tuple[int, int, int]:
    tm, tn, tk = (int(x) for x in kernel_id.rsplit("_", 3)[1:])
    return tm, tn, tk


def count(ptx: str, pattern: str) -> int:
    return len(re.findall(pattern, ptx, re.M))


# --- corpus and PTX ---------------------------------------------------------------------------


def test_sixty_four_variants_listed() -> None:
    assert len(IDS) == 64 == len(set(IDS))
    assert set(IDS) <= set(list_kernels())
    assert list_kernels("gemm_tile") == sorted(IDS)
    assert list_kernels("no_such_family") == []


@pytest.mark.parametrize("kernel_id", IDS)
def test_spec_matches_its_ptx(kernel_id: str) -> None:
    spec = load(kernel_id)
    tm, tn, tk = tiles(kernel_id)
    assert (spec.id, spec.entry, spec.family, spec.target) == (
        kernel_id,
        kernel_id,
        "gemm_tile",
        "sm_80",
    )
    ptx = spec.ptx()
    assert re.search(rf"^\.visible \.entry {kernel_id}\(", ptx, re.M)
    assert re.search(r"^\.target sm_80$", ptx, re.M)
    assert ptx_entries(ptx)[kernel_id] == [(p.name, p.ptx_type) for p in spec.params]
    assert [p.name for p in spec.params] == [f"{kernel_id}_param_{i}" for i in range(6)]
    assert [p.buffer for p in spec.params[:3]] == ["A", "B", "C"]
    assert spec.read_only == frozenset({"A", "B"})
    assert spec.alignment == {p.name: 256 for p in spec.params[:3]}
    assert spec.divisibility == {
        spec.params[3].name: 8 * tm,
        spec.params[4].name: 8 * tn,
        spec.params[5].name: 8 * tk,
    }
    assert spec.tolerance == (1e-5, 1e-5)
    kernels.validate(spec)


@pytest.mark.parametrize("kernel_id", IDS)
def test_ptx_shape_that_transforms_rely_on(kernel_id: str) -> None:
    """Unrolled, unguarded scalar copies at consecutive offsets; no .nc, no vectors yet."""
    tm, tn, tk = tiles(kernel_id)
    ptx = load(kernel_id).ptx()
    copies = tm * tk + tk * tn
    assert count(ptx, r"^\s*ld\.global\.f32\s") == copies
    assert count(ptx, r"^\s*st\.shared\.f32\s") == copies
    assert count(ptx, r"^\s*st\.global\.f32\s") == tm * tn
    assert count(ptx, r"^\s*bar\.sync\s") == 2
    assert count(ptx, r"ld\.global\.nc|\.v[24]\.|__launch_bounds__|\.maxnreg|\.maxntid") == 0
    assert count(ptx, r"^\s*@%p\d+\s+(ld|st)\.") == 0
    assert count(ptx, r"^\s*ld\.global\.f32\s+%f\d+, \[%rd\d+\+4\];") >= 1
    assert count(ptx, r"^\s*fma\.rn\.f32\s") >= tm * tn
    labels = [m.start() for m in re.finditer(r"^\$L__BB0_\d+:", ptx, re.M)]
    back = [
        m
        for m in re.finditer(r"^\s*@%p\d+ bra\s+(\$L__BB0_\d+);", ptx, re.M)
        if ptx.index(f"\n{m.group(1)}:") < m.start()
    ]
    assert labels and back, "expected a loop (backward conditional branch)"


def test_manifest_matches_checked_in_ptx() -> None:
    manifest = json.loads(gt.MANIFEST.read_text())
    assert manifest["family"] == "gemm_tile" and manifest["target"] == "sm_80"
    assert manifest["nvcc_version"] and manifest["date"]
    source = hashlib.sha256(gt.SOURCE.read_bytes()).hexdigest()
    assert manifest["source_sha256"] == source, "gemm_tile.cu changed: regenerate the PTX"
    assert sorted(manifest["kernels"]) == sorted(IDS)
    for kernel_id, rec in manifest["kernels"].items():
        tm, tn, tk = tiles(kernel_id)
        path = gt.HERE / rec["ptx"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec["sha256"], kernel_id
        assert ptx_sha256(load(kernel_id).ptx()) == rec["sha256"]
        assert rec["command"].startswith("nvcc -ptx -arch=sm_80 -O3 ")
        assert f"-DTM={tm} -DTN={tn} -DTK={tk} gemm_tile.cu" in rec["command"]
        assert rec["target"] == "sm_80" and rec["nvcc_version"] and rec["date"]
    assert sorted(p.stem for p in gt.PTX_DIR.glob("*.ptx")) == sorted(IDS)


def test_ptx_is_read_once() -> None:
    spec = load("gemm_tile_4_6_8")
    assert spec.ptx() is spec.ptx()
    assert ptx_sha256(spec.ptx()) == hashlib.sha256(spec.ptx_path.read_bytes()).hexdigest()


# --- problems, inputs, reference --------------------------------------------------------------


@pytest.mark.parametrize("kernel_id", IDS)
def test_problems_satisfy_the_contract(kernel_id: str) -> None:
    spec = load(kernel_id)
    tm, tn, tk = tiles(kernel_id)
    bm, bn, bk = 8 * tm, 8 * tn, 8 * tk
    from kernels.gemm_tile import full_grid

    expect = {"full": (full_grid(tm, tn, tk), 4), "small": ((2, 2, 1), 2)}
    for size, (grid, k_steps) in expect.items():
        prob = spec.problem(size)
        m, n, k = prob.sizes["M"], prob.sizes["N"], prob.sizes["K"]
        assert (prob.grid, prob.block, prob.dynamic_shared_bytes) == (grid, (8, 8, 1), 0)
        assert (m, n, k) == (grid[1] * bm, grid[0] * bn, k_steps * bk)
        assert prob.shapes == {"A": (m, k), "B": (k, n), "C": (m, n)}
        assert list(prob.scalars.values()) == [m, n, k]
        for name, div in spec.divisibility.items():
            assert prob.scalars[name] % div == 0
    with pytest.raises(KeyError, match="huge"):
        spec.problem("huge")


def test_inputs_are_seeded_dyadic_and_outputs_zero() -> None:
    spec = load("gemm_tile_4_6_8")
    prob = spec.problem("small")
    x, y, z = spec.make_inputs(prob, 7), spec.make_inputs(prob, 7), spec.make_inputs(prob, 8)
    assert set(x) == {"A", "B", "C"}
    for name in ("A", "B"):
        assert x[name].dtype == np.float32 and x[name].flags.c_contiguous
        assert x[name].shape == prob.shapes[name]
        np.testing.assert_array_equal(x[name], y[name])
        assert not np.array_equal(x[name], z[name])
        quarters = x[name] * 4
        assert np.array_equal(quarters, np.round(quarters)) and np.abs(x[name]).max() <= 2
        assert len(np.unique(x[name])) > 8
    assert x["C"].dtype == np.float32 and not x["C"].any()


def test_reference_shape_and_args_order() -> None:
    spec = load("gemm_tile_2_8_4")
    prob = spec.problem("full")
    inputs = spec.make_inputs(prob, 0)
    ref = spec.reference(prob, inputs)
    assert set(ref) == {"C"}
    assert ref["C"].dtype == np.float32 and ref["C"].shape == (prob.sizes["M"], prob.sizes["N"])
    assert ref["C"].any()
    args = prob.args(inputs)
    assert args[0] is inputs["A"] and args[1] is inputs["B"] and args[2] is inputs["C"]
    assert args[3:] == [prob.sizes["M"], prob.sizes["N"], prob.sizes["K"]]
    assert all(type(a) is int for a in args[3:])


def sequential_fma(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """C[i,j] = fma(a[i,k], b[k,j], acc) for k in order, acc rounded to float32 at every step.

    a*b of two float32 is exact in float64, so one float64 add then a float32 rounding is
    fma's single rounding whenever the float64 add is itself exact (as it is for dyadic inputs).
    """
    acc = np.zeros((a.shape[0], b.shape[1]), np.float32)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for k in range(a.shape[1]):
        acc = (acc.astype(np.float64) + np.outer(a64[:, k], b64[k, :])).astype(np.float32)
    return acc


def test_dyadic_reference_equals_sequential_float32_fma() -> None:
    spec = load("gemm_tile_4_6_8")
    prob = spec.problem("small")
    inputs = spec.make_inputs(prob, 3)
    ref = spec.reference(prob, inputs)["C"]
    np.testing.assert_array_equal(sequential_fma(inputs["A"], inputs["B"]), ref)
    # Same order reversed: still bit-exact, because no partial sum rounds.
    rev = sequential_fma(inputs["A"][:, ::-1], inputs["B"][::-1, :])
    np.testing.assert_array_equal(rev, ref)


def test_non_dyadic_inputs_would_make_bit_exactness_order_dependent() -> None:
    """The control: with ordinary floats the float32 sum differs from the float64 reference."""
    spec = load("gemm_tile_4_6_8")
    prob = spec.problem("small")
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, prob.shapes["A"]).astype(np.float32)
    b = rng.uniform(-1, 1, prob.shapes["B"]).astype(np.float32)
    ref = spec.reference(prob, {"A": a, "B": b, "C": np.zeros(prob.shapes["C"], np.float32)})
    assert not np.array_equal(sequential_fma(a, b), ref["C"])


HOST_HARNESS = r"""
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
struct Dim3 { int x, y, z; };
thread_local Dim3 threadIdx;
static Dim3 blockIdx;
static std::barrier<>* bar;
#define __global__
#define __shared__ static
#define __syncthreads() bar->arrive_and_wait()
#include "gemm_tile.cu"
int main(int argc, char** argv) {
    int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]);
    std::vector<float> A(M * K), B(K * N), C(M * N);
    FILE* f = fopen(argv[4], "rb");
    if (fread(A.data(), 4, A.size(), f) != A.size()) return 2;
    if (fread(B.data(), 4, B.size(), f) != B.size()) return 2;
    fclose(f);
    std::barrier<> block_barrier(64);
    bar = &block_barrier;
    for (int by = 0; by < M / (8 * TM); ++by)
        for (int bx = 0; bx < N / (8 * TN); ++bx) {
            blockIdx = {bx, by, 0};
            std::vector<std::thread> threads;
            for (int t = 0; t < 64; ++t)
                threads.emplace_back([&, t] {
                    threadIdx = {t % 8, t / 8, 0};
                    KERNEL_NAME(A.data(), B.data(), C.data(), M, N, K);
                });
            for (auto& th : threads) th.join();
        }
    f = fopen(argv[5], "wb");
    fwrite(C.data(), 4, C.size(), f);
    fclose(f);
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++ (C++20)")
@pytest.mark.parametrize("kernel_id", ["gemm_tile_2_2_2", "gemm_tile_4_6_8", "gemm_tile_8_2_6"])
def test_cuda_source_is_bit_exact_under_host_emulation(kernel_id: str, tmp_path: Path) -> None:
    """Run gemm_tile.cu on the CPU, one std::thread per CUDA thread and std::barrier for
    __syncthreads: checks the template's index arithmetic without a GPU."""
    tm, tn, tk = tiles(kernel_id)
    (tmp_path / "harness.cpp").write_text(HOST_HARNESS)
    exe = tmp_path / "harness"
    subprocess.run(
        ["g++", "-std=c++20", "-O1", "-pthread", "-x", "c++", f"-I{gt.HERE}",
         f"-DTM={tm}", f"-DTN={tn}", f"-DTK={tk}", str(tmp_path / "harness.cpp"), "-o", str(exe)],
        check=True,
    )  # fmt: skip
    spec = load(kernel_id)
    prob = spec.problem("small")
    inputs = spec.make_inputs(prob, 11)
    (tmp_path / "in.bin").write_bytes(inputs["A"].tobytes() + inputs["B"].tobytes())
    m, n, k = prob.sizes["M"], prob.sizes["N"], prob.sizes["K"]
    subprocess.run(
        [str(exe), str(m), str(n), str(k), str(tmp_path / "in.bin"), str(tmp_path / "out.bin")],
        check=True,
        timeout=120,
    )
    got = np.fromfile(tmp_path / "out.bin", np.float32).reshape(m, n)
    np.testing.assert_array_equal(got, spec.reference(prob, inputs)["C"])


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_regenerating_one_variant_reproduces_checked_in_ptx(tmp_path: Path) -> None:
    from kernels import build

    manifest = build.generate(build.family_build("gemm_tile"), tmp_path, only=["gemm_tile_4_6_8"])
    fresh = (tmp_path / "ptx" / "gemm_tile_4_6_8.ptx").read_bytes()
    assert fresh == load("gemm_tile_4_6_8").ptx_path.read_bytes()
    assert list(manifest["kernels"]) == ["gemm_tile_4_6_8"]


def test_one_generator_builds_every_cuda_family_as_its_manifest_records() -> None:
    """`python -m kernels.build` knows each CUDA family's variants and would run the nvcc
    commands its manifest records (checked without nvcc)."""
    from kernels import build

    families = build.cuda_families()
    assert families == sorted(f for f in kernels.list_families() if f != "triton")
    for family in families:
        fb = build.family_build(family)
        manifest = json.loads((fb.here / "manifest.json").read_text())
        assert manifest["generator"] == f"python -m kernels.build {family}"
        commands = {v.id: " ".join(fb.command(v)) for v in fb.variants}
        assert commands == {k: r["command"] for k, r in manifest["kernels"].items()}, family
    with pytest.raises(SystemExit):
        build.main(["no_such_family"])


# --- registry ---------------------------------------------------------------------------------

USER_PTX = ptx_text("user_scale.ptx")


def user_spec(ptx_path: Path, **changes: object) -> KernelSpec:
    """A user's `y = 2 x` kernel (the body does not matter to registration)."""
    params = (
        Param("user_scale_param_0", ".u64", "buffer", "x"),
        Param("user_scale_param_1", ".u64", "buffer", "y"),
        Param("user_scale_param_2", ".u32", "scalar"),
    )

    def problem(n: int) -> Problem:
        return Problem(
            sizes={"n": n},
            grid=(n // 128, 1, 1),
            block=(128, 1, 1),
            scalars={"user_scale_param_2": n},
            shapes={"x": (n,), "y": (n,)},
        )

    fields: dict = dict(
        id="user_scale",
        family="user",
        entry="user_scale",
        ptx_path=ptx_path,
        params=params,
        buffers=(BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "out")),
        problems={"full": problem(1 << 20), "small": problem(256)},
        reference_fn=lambda prob, inp: {"y": inp["x"] * np.float32(2)},
        alignment={"user_scale_param_0": 16},
        divisibility={"user_scale_param_2": 128},
    )
    fields.update(changes)
    return KernelSpec(**fields)


def _user_problems(n: object, shapes: dict) -> dict[str, Problem]:
    """The full and small problems: 256 elements, `n` passed as the scalar, `shapes`."""
    return {k: Problem({"n": 256}, (2, 1, 1), (128, 1, 1), {"user_scale_param_2": n}, shapes)
            for k in ("full", "small")}  # fmt: skip


@pytest.fixture
def user_ptx(tmp_path: Path):
    with user_ptx_file(tmp_path, "user_scale.ptx", "user_scale") as path:
        yield path


def test_register_user_kernel(user_ptx: Path) -> None:
    spec = register(user_spec(user_ptx))
    assert load("user_scale") is spec
    assert list_kernels("user") == ["user_scale"] and "user_scale" in list_kernels()
    assert spec.read_only == frozenset({"x"})
    prob = spec.problem("small")
    inputs = spec.make_inputs(prob, 0)
    assert inputs["x"].shape == (256,) and not inputs["y"].any()
    np.testing.assert_array_equal(spec.reference(prob, inputs)["y"], 2 * inputs["x"])
    assert prob.args(inputs)[2] == 256
    with pytest.raises(KernelSpecError, match="already registered"):
        register(user_spec(user_ptx))
    register(user_spec(user_ptx, tolerance=(0.0, 0.0)), replace=True)
    assert load("user_scale").tolerance.atol == 0.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"entry": "user_scal"}, r"entry 'user_scal' not in .*close: \['user_scale'\]"),
        ({"target": "sm_90"}, "target 'sm_90'"),
        (
            {"params": (Param("user_scale_param_0", ".u64", "buffer", "x"),)},
            "do not match the PTX",
        ),
        ({"divisibility": {"user_scale_param_2": 3}}, "not divisible by 3"),
        ({"alignment": {"user_scale_param_0": 12}}, "not a power of two"),
        ({"read_only": frozenset({"y"})}, "read_only buffer y has role out"),
        ({"problems": {}}, "no 'full' problem"),
        # issue 13, item 7: an alignment below the element size faults at every access
        ({"alignment": {"user_scale_param_0": 2}}, "less than its float32 elements"),
        # issue 13, item 4: two pointers naming one buffer
        (
            {
                "params": (
                    Param("user_scale_param_0", ".u64", "buffer", "x"),
                    Param("user_scale_param_1", ".u64", "buffer", "x"),
                    Param("user_scale_param_2", ".u32", "scalar"),
                ),
                "buffers": (BufferSpec("x", "float32", "inout"),),
                "problems": _user_problems(256, {"x": (256,)}),
            },
            "both pass buffer 'x': aliasing",
        ),
        # issue 13, item 2: no silent truncation of a scalar to its parameter type
        (
            {
                "problems": _user_problems(1.5, {"x": (256,), "y": (256,)}),
                "divisibility": {},
            },
            r"user_scale_param_2 \(.u32\): 1.5 is a float",
        ),
    ],
)
def test_register_rejects_inconsistent_specs(user_ptx: Path, changes: dict, message: str) -> None:
    with pytest.raises(KernelSpecError, match=message):
        register(user_spec(user_ptx, **changes))
    assert "user_scale" not in list_kernels()


def test_user_functions_with_wrong_shapes_fail_loudly(user_ptx: Path) -> None:
    spec = register(user_spec(user_ptx, reference_fn=lambda prob, inp: {"y": inp["x"][:3]}))
    prob = spec.problem("small")
    with pytest.raises(KernelSpecError, match=r"reference_fn gave y float32\[3\]"):
        spec.reference(prob, spec.make_inputs(prob, 0))


def test_reference_gets_copies_of_the_inputs(user_ptx: Path) -> None:
    """A reference that updates its inputs in place must not change what the kernel sees."""

    def in_place(prob: Problem, inp: dict) -> dict:
        x = inp["x"]
        x *= np.float32(2)
        return {"y": x}

    spec = register(user_spec(user_ptx, reference_fn=in_place))
    prob = spec.problem("small")
    inputs = spec.make_inputs(prob, 0)
    before = inputs["x"].copy()
    np.testing.assert_array_equal(spec.reference(prob, inputs)["y"], 2 * before)
    np.testing.assert_array_equal(inputs["x"], before)


def test_fingerprint_covers_everything_that_decides_validity(user_ptx: Path) -> None:
    base = user_spec(user_ptx)
    assert base.fingerprint == user_spec(user_ptx).fingerprint
    variants = {
        "alignment": user_spec(user_ptx, alignment={"user_scale_param_0": 4}),
        "divisibility": user_spec(user_ptx, divisibility={"user_scale_param_2": 256}),
        "tolerance": user_spec(user_ptx, tolerance=(0.0, 0.0)),
        "read_only": user_spec(user_ptx, read_only=frozenset()),
        "reference": user_spec(user_ptx, reference_fn=lambda p, i: {"y": i["x"] * 3}),
        "inputs": user_spec(user_ptx, inputs_fn=lambda p, r: {"x": np.ones(p.shapes["x"])}),
    }
    for what, spec in variants.items():
        assert spec.fingerprint != base.fingerprint, what
    scaled = [
        user_spec(user_ptx, reference_fn=functools.partial(lambda k, p, i: {"y": i["x"] * k}, k))
        for k in (2, 3)
    ]
    assert scaled[0].fingerprint != scaled[1].fingerprint  # closure/partial values count
    other_ptx = user_ptx.with_name("other.ptx")
    other_ptx.write_text(USER_PTX.replace("ret;", "exit;"))
    assert user_spec(other_ptx).fingerprint != base.fingerprint


def test_register_replace_rereads_the_ptx_and_bumps_the_generation(user_ptx: Path) -> None:
    first = register(user_spec(user_ptx)).fingerprint
    gen = registry_generation()
    user_ptx.write_text(USER_PTX.replace("ret;", "exit;"))
    second = register(user_spec(user_ptx), replace=True)
    assert registry_generation() > gen
    assert "exit;" in second.ptx() and second.fingerprint != first


def test_unknown_id_names_close_matches() -> None:
    with pytest.raises(KeyError) as info:
        load("gemm_tile_4_6_9")
    assert isinstance(info.value, UnknownKernelError)
    message = str(info.value)
    assert message.startswith("unknown kernel 'gemm_tile_4_6_9'")
    assert "gemm_tile_4_6_8" in message
    with pytest.raises(UnknownKernelError, match="list_kernels"):
        load("completely-different")


# --- "full" problems: several waves on the largest target --------------------------------------

FULL_SMS = 132
"""SMs of the largest target (H100 SXM, H200)."""
MIN_WAVES = 1.9
"""Two waves, to within the 3% by which 4096 CTAs of 128 threads (the reduce, softmax,
layernorm and matvec sizing) fall short of 2 x 132 x 2048 threads."""
_SHARED = re.compile(r"\.shared\s+(?:\.align\s+\d+\s+)?\.[bsuf](8|16|32|64)\s+[\w$]+\[(\d+)\]")


def full_waves(spec) -> float:
    """CTAs of the "full" grid / (SMs x the most CTAs an SM can hold by its thread, block and
    shared-memory limits); registers can only lower residency, which adds waves."""
    prob = spec.problem("full")
    threads = int(np.prod(prob.block))
    shared = sum(int(m[1]) // 8 * int(m[2]) for m in _SHARED.finditer(spec.ptx()))
    shared += prob.dynamic_shared_bytes
    per_sm = min(32, 2048 // threads, (228 * 1024) // (shared + 1024) if shared else 32)
    return int(np.prod(prob.grid)) / (FULL_SMS * per_sm)


@pytest.mark.parametrize("family", sorted({load(k).family for k in ALL_IDS}))
def test_every_full_problem_is_several_waves(family: str) -> None:
    """Otherwise an occupancy transform cannot change the kernel's duration (issue 19 b)."""
    specs = [load(k) for k in ALL_IDS if load(k).family == family]
    few = {s.id: round(full_waves(s), 2) for s in specs if full_waves(s) < MIN_WAVES}
    assert not few, f"full problems under {MIN_WAVES} waves on {FULL_SMS} SMs: {few}"
