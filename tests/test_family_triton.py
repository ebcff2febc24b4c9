"""The triton family (kernels/triton) and the emulator instructions its PTX needs.

Every variant verifies untransformed against its NumPy reference on the "small" and the
ragged "check" problem; the checked-in PTX matches its manifest and assembles with a ptxas
that accepts its ISA; regenerating a variant reproduces it (only where triton is installed).
The instruction tests build each fragment from the PTX ISA's layout tables, independently of
the emulator's indexing, and compare with NumPy.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import kernels.triton as fam
from chronos.assemble.ptxas import wheel_ptxas
from chronos.emulate import run_kernel, verify
from chronos.emulate.errors import EmulationError, MemoryFault, SharedMemoryRace
from chronos.measure.harness.compat import min_cuda_version, ptx_isa_version
from chronos.ptx import ptx_sha256
from kernels import list_kernels, load
from tests.helpers.data import ptx_text

IDS = [v.id for v in fam.VARIANTS]
EXACT = {v.id for v in fam.VARIANTS if v.kernel != "softmax_kernel"}
"""Kernels whose references are bit-exact for the untransformed PTX (see the family doc)."""


# --- the family -------------------------------------------------------------------------------


def test_family_is_registered_with_every_kind_of_kernel() -> None:
    assert list_kernels("triton") == sorted(IDS)
    assert len(IDS) >= 12
    kinds = {v.kernel for v in fam.VARIANTS}
    assert kinds == {"add_kernel", "softmax_kernel", "matmul_kernel"}
    ptx = {k: load(k).ptx() for k in IDS}
    assert len(set(ptx.values())) == len(IDS), "two variants compiled to the same PTX"
    mm = [p for k, p in ptx.items() if "fp16" in k and "matmul" in k]
    assert mm and all("mma.sync.aligned.m16n8k16" in p and "ldmatrix" in p for p in mm)
    assert all("cp.async" in p for p in mm)


@pytest.mark.parametrize("kernel_id", IDS)
@pytest.mark.parametrize("size", ["small", "check"])
@pytest.mark.parametrize("seed", [0, 7])
def test_untransformed_kernel_verifies(kernel_id: str, size: str, seed: int) -> None:
    spec = load(kernel_id)
    exact = kernel_id in EXACT
    res = verify(spec, spec.ptx(), exact=exact, seed=seed, size=size)
    assert res.ok, res.error


@pytest.mark.parametrize("kernel_id", IDS)
def test_problems_keep_the_contract_and_check_is_ragged(kernel_id: str) -> None:
    spec = load(kernel_id)
    v = fam.variant(kernel_id)
    for prob in spec.problems.values():
        for name, div in spec.divisibility.items():
            assert prob.scalars[name] % div == 0
    chk, small = spec.problem("check"), spec.problem("small")
    assert chk.sizes != small.sizes
    if v.kernel == "add_kernel":
        assert chk.sizes["n"] % int(v.constexprs["BLOCK_SIZE"]) != 0
    elif v.kernel == "matmul_kernel":
        assert chk.sizes["K"] % int(v.constexprs["BLOCK_SIZE_K"]) != 0
        assert chk.sizes["M"] % int(v.constexprs["BLOCK_SIZE_M"]) != 0
    else:
        assert chk.sizes["cols"] < int(v.constexprs["BLOCK_SIZE"])
    # "full" runs several waves on a 132-SM H100.
    assert spec.problem("full").grid[0] >= 4 * fam.FULL_SMS


@pytest.mark.parametrize("kernel_id", IDS)
def test_scratch_parameters_are_never_touched(kernel_id: str) -> None:
    """The two scratch pointers Triton appends are declared but never loaded."""
    spec = load(kernel_id)
    scratch = [p.name for p in spec.params if p.buffer in fam.SCRATCH]
    assert len(scratch) == 2 and [p.name for p in spec.params[-2:]] == scratch
    for name in scratch:
        assert not re.search(rf"ld\.param\S*\s+\S+,\s*\[{name}\]", spec.ptx())


def test_manifest_matches_the_checked_in_ptx_and_source() -> None:
    manifest = json.loads(fam.MANIFEST.read_text())
    assert (
        manifest["source_sha256"]
        == hashlib.sha256((fam.HERE / manifest["source"]).read_bytes()).hexdigest()
    ), "sources.py changed without `python -m kernels.triton.generate`"
    assert sorted(manifest["kernels"]) == sorted(IDS)
    for kid, rec in manifest["kernels"].items():
        assert rec["target"] == fam.TARGET and rec["triton_version"]
        assert rec["sha256"] == ptx_sha256(load(kid).ptx()), kid
        assert rec["shared"] == load(kid).problem("small").dynamic_shared_bytes
        assert rec["command"] == f"python -m kernels.triton.generate --only {kid}"


def _ptxas_accepting(isa: tuple[int, int]) -> str | None:
    """A ptxas (PATH or the nvidia-cuda-nvcc wheel) whose CUDA release accepts PTX ISA `isa`."""
    need = min_cuda_version(isa)
    wheel = wheel_ptxas()
    for exe in filter(None, [shutil.which("ptxas"), str(wheel) if wheel else None]):
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        rel = re.search(r"release (\d+)\.(\d+)", out)
        if rel and 1000 * int(rel[1]) + 10 * int(rel[2]) >= need:
            return exe
    return None


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ptx_assembles(arch: str, tmp_path: Path) -> None:
    ptxs = {k: load(k).ptx() for k in IDS}
    isa = max(v for p in ptxs.values() if (v := ptx_isa_version(p)))
    ptxas = _ptxas_accepting(isa)
    if ptxas is None:
        pytest.skip(f"no ptxas accepting PTX ISA {isa[0]}.{isa[1]} on PATH or in the wheel")
    for kid in IDS:
        proc = subprocess.run(
            [ptxas, f"-arch={arch}", str(load(kid).ptx_path), "-o", str(tmp_path / "k.cubin")],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, f"{kid}: {proc.stderr}"


def test_regenerating_a_variant_reproduces_the_checked_in_ptx(tmp_path: Path) -> None:
    pytest.importorskip("triton", reason="triton not installed (pip install chronos[triton])")
    from kernels.triton import generate

    kid = "triton_matmul_fp16_64x64x32_w4_s3"
    manifest = generate.generate(tmp_path, only=[kid])
    assert (tmp_path / "ptx" / f"{kid}.ptx").read_bytes() == load(kid).ptx_path.read_bytes()
    assert manifest["kernels"][kid]["sha256"] == ptx_sha256(load(kid).ptx())


# --- the instructions Triton's PTX needs --------------------------------------------------------

# Hand-written kernels in tests/data/ptx/ (`.ptx.in`: with placeholders the tests fill in).
MMA_PTX = ptx_text("mma.ptx")


def _a_frag(a: np.ndarray) -> np.ndarray:
    """PTX ISA "Matrix fragments for mma.m16n8k16 with floating point type", A (16x16)."""
    out = np.zeros((32, 8), np.float16)
    for lane in range(32):
        group, tig = lane >> 2, lane % 4
        for i in range(8):  # a0..a7: two halves in each of four .f16x2 registers
            row = group if i < 2 or 4 <= i < 6 else group + 8
            col = tig * 2 + (i & 1) + (8 if i >= 4 else 0)
            out[lane, i] = a[row, col]
    return out


def _b_frag(b: np.ndarray) -> np.ndarray:
    out = np.zeros((32, 4), np.float16)
    for lane in range(32):
        group, tig = lane >> 2, lane % 4
        for i in range(4):  # b0..b3
            row = tig * 2 + (i & 1) + (8 if i >= 2 else 0)
            out[lane, i] = b[row, group]
    return out


def _c_index(lane: int, i: int) -> tuple[int, int]:
    group, tig = lane >> 2, lane % 4
    return (group if i < 2 else group + 8), tig * 2 + (i & 1)


def test_mma_m16n8k16_f16_matches_numpy_over_all_lanes_fragments() -> None:
    rng = np.random.default_rng(3)
    warps = 2
    mats = []
    for _ in range(warps):
        a = rng.integers(-8, 9, size=(16, 16)).astype(np.float16) / np.float16(4)
        b = rng.integers(-8, 9, size=(16, 8)).astype(np.float16) / np.float16(2)
        c = rng.integers(-64, 65, size=(16, 8)).astype(np.float32) / 8
        mats.append((a, b, c))
    fa = np.concatenate([_a_frag(a) for a, _, _ in mats])
    fb = np.concatenate([_b_frag(b) for _, b, _ in mats])
    fc = np.zeros((32 * warps, 4), np.float32)
    for w, (_, _, c) in enumerate(mats):
        for lane in range(32):
            fc[32 * w + lane] = [c[_c_index(lane, i)] for i in range(4)]
    res = run_kernel(
        MMA_PTX,
        grid=(1, 1, 1),
        block=(32 * warps, 1, 1),
        buffers={"a": fa, "b": fb, "c": fc, "d": np.zeros_like(fc)},
        args={"pa": "a", "pb": "b", "pc": "c", "pd": "d"},
    )
    d = res.outputs["d"]
    for w, (a, b, c) in enumerate(mats):
        want = a.astype(np.float64) @ b.astype(np.float64) + c
        got = np.zeros((16, 8))
        for lane in range(32):
            for i in range(4):
                got[_c_index(lane, i)] = d[32 * w + lane, i]
        np.testing.assert_array_equal(got, want)


def test_mma_by_part_of_a_warp_is_an_error() -> None:
    ptx = MMA_PTX.replace("mma.sync", "@%p1 mma.sync").replace(
        "mov.u32 %r1, %tid.x;", "mov.u32 %r1, %tid.x;\n    setp.lt.u32 %p1, %r1, 16;"
    )
    ptx = ptx.replace(".reg .f32 %f<8>;", ".reg .f32 %f<8>;\n    .reg .pred %p<2>;")
    z = np.zeros((32, 4), np.float32)
    with pytest.raises(EmulationError, match="part of a warp"):
        run_kernel(
            ptx,
            grid=(1, 1, 1),
            block=(32, 1, 1),
            buffers={"a": z, "b": z[:, :2].copy(), "c": z, "d": z.copy()},
            args={"pa": "a", "pb": "b", "pc": "c", "pd": "d"},
        )


LDMATRIX_PTX = ptx_text("ldmatrix.ptx.in")


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("trans", [False, True])
def test_ldmatrix_gives_each_lane_its_fragment(count: int, trans: bool) -> None:
    rng = np.random.default_rng(5)
    rows = rng.integers(0, 1 << 16, size=(32, 8)).astype(np.uint16)  # shared row r = rows[r]
    dests = "{" + ", ".join(f"%r{11 + i}" for i in range(count)) + "}"
    mods = f"x{count}.trans" if trans else f"x{count}"
    ptx = LDMATRIX_PTX.replace("XN", mods).replace("DESTS", dests)
    res = run_kernel(
        ptx,
        grid=(1, 1, 1),
        block=(32, 1, 1),
        buffers={"inp": rows, "out": np.zeros((32, 4), np.uint32)},
        args={"pin": "inp", "pout": "out"},
        races=True,
    )
    out = res.outputs["out"]
    for i in range(4):
        if i >= count:
            assert not out[:, i].any()  # registers ldmatrix does not write keep their 0
            continue
        # Lane 8i+j gives the address of row j of matrix i: here shared row 31 - (8i + j).
        mat = np.stack([rows[31 - (8 * i + j)] for j in range(8)])
        if trans:
            mat = mat.T
        for lane in range(32):
            r, c = lane // 4, 2 * (lane % 4)
            want = int(mat[r, c]) | int(mat[r, c + 1]) << 16
            assert int(out[lane, i]) == want, (i, lane)


CP_ASYNC_PTX = ptx_text("cp_async.ptx")


def _cp(off: int, n: int) -> np.ndarray:
    inp = np.arange(32 * 4, dtype=np.uint32).reshape(32, 4) + 1
    res = run_kernel(
        CP_ASYNC_PTX,
        grid=(1, 1, 1),
        block=(32, 1, 1),
        buffers={"inp": inp, "out": np.full((32, 4), 7, np.uint32)},
        args={"pin": "inp", "pout": "out", "off": off, "n": n},
        races=True,
    )
    return res.outputs["out"]


def test_cp_async_src_size_zero_fills_and_reads_nothing() -> None:
    inp = np.arange(32 * 4, dtype=np.uint32).reshape(32, 4) + 1
    np.testing.assert_array_equal(_cp(0, 16), inp)
    np.testing.assert_array_equal(_cp(0, 8)[:, 2:], 0)
    np.testing.assert_array_equal(_cp(0, 8)[:, :2], inp[:, :2])
    # Far out of bounds, as Triton's masked cp.async passes it: nothing is read.
    np.testing.assert_array_equal(_cp(1 << 20, 0), 0)
    with pytest.raises(MemoryFault, match="out-of-bounds"):
        _cp(1 << 20, 4)


STORE_PTX = ptx_text("samestore.ptx")


def test_one_warp_storing_one_value_to_one_address_is_not_a_race() -> None:
    """Triton's cross-warp reductions: every lane of warp w stores the same value to slot w."""

    def run(k: int) -> np.ndarray:
        res = run_kernel(
            STORE_PTX,
            grid=(1, 1, 1),
            block=(64, 1, 1),
            buffers={"out": np.zeros(64, np.uint32)},
            args={"pout": "out", "k": k},
            races=True,
        )
        return res.outputs["out"]

    np.testing.assert_array_equal(run(0), 1)  # lanes store tid & 0 + warp: one value per warp
    with pytest.raises(SharedMemoryRace, match="write-write"):
        run(1)  # different values to one address: which lands is undefined
