"""The reduce, transpose, softmax and layernorm families: specs, PTX, manifests, emulation.

Every kernel verifies untransformed on its "small" and "check" problems and two seeds:
bit-exact for reduce (dyadic sums) and transpose (a copy), within the spec's stated
tolerance for softmax and layernorm (float64 references of approximated fp32 arithmetic).
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import kernels
from chronos.assemble import Assembly, assemble_many
from chronos.emulate import verify
from chronos.emulate.approx import Approx
from kernels.build import sha256_file
from tests.helpers.data import nvcc_text, run_nvcc

FAMILIES = ("reduce", "transpose", "softmax", "layernorm")
EXACT = {"reduce": True, "transpose": True, "softmax": False, "layernorm": False}
MODULES = {f: importlib.import_module(f"kernels.{f}") for f in FAMILIES}
IDS = [s.id for f in FAMILIES for s in MODULES[f].specs()]
H100_SMS = 132


def family_of(kernel_id: str) -> str:
    return kernels.load(kernel_id).family


def test_families_are_discovered_with_at_least_twelve_variants() -> None:
    assert set(FAMILIES) <= set(kernels.list_families())
    for family in FAMILIES:
        ids = kernels.list_kernels(family)
        assert len(ids) >= 12, family
        assert ids == sorted(s.id for s in MODULES[family].specs())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("size", ["small", "check"])
@pytest.mark.parametrize("kernel_id", IDS)
def test_untransformed_kernel_verifies(kernel_id: str, size: str, seed: int) -> None:
    spec = kernels.load(kernel_id)
    v = verify(spec, spec.ptx(), exact=EXACT[spec.family], seed=seed, size=size)
    assert v.ok, f"{kernel_id} [{size}, seed {seed}]: {v.kind}: {v.error}"


@pytest.mark.parametrize("kernel_id", IDS)
def test_problems_are_distinct_and_full_fills_an_h100(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    small, check, full = (spec.problem(s) for s in ("small", "check", "full"))
    assert check.grid != small.grid or check.sizes != small.sizes
    # Not just a multiple of "small": some size is not divisible by its "small" counterpart.
    assert any(check.sizes[k] % small.sizes[k] for k in small.sizes), check.sizes
    ctas = int(np.prod(full.grid))
    assert ctas >= 4 * H100_SMS, f"{kernel_id}: full grid {full.grid}"
    assert not spec.divisibility, "guarded kernels promise no divisibility"
    for prob in (small, check, full):
        assert int(np.prod(prob.block)) <= 1024


def test_reduce_accumulates_into_zeroed_inout() -> None:
    """`out` buffers are poisoned by the GPU harness and the emulator: atomics need `inout`."""
    for spec in MODULES["reduce"].specs():
        assert spec.buffer("out").role == "inout"
        inputs = spec.make_inputs(spec.problem("check"), seed=3)
        assert not inputs["out"].any()


def test_reduce_reference_is_exact_for_dyadic_inputs() -> None:
    spec = kernels.load("reduce_sum_f16_b256_i4_shfl")
    prob = spec.problem("full")
    x = spec.make_inputs(prob, seed=0)["x"]
    assert x.dtype == np.float16 and set(np.unique(x)) <= {-1.0, -0.5, 0.0, 0.5, 1.0}
    # Any order: a sequential float32 sum equals the float64 one.
    seq = np.cumsum(x.astype(np.float32), dtype=np.float32)[-1]
    assert seq == spec.reference(prob, {"x": x, "out": np.zeros(1, np.float32)})["out"][0]


def test_broken_kernels_are_caught() -> None:
    """The references and "check" problems see a dropped atomic, barrier and bounds check."""
    spec = kernels.load("reduce_sum_f32_b256_i4_satom")
    bad = spec.ptx().replace("atom.shared.add.f32", "atom.shared.max.f32")
    assert verify(spec, bad, size="check").kind == "mismatch"

    spec = kernels.load("transpose_f32_t32x8")
    no_barrier = spec.ptx().replace("bar.sync \t0;", "")
    assert no_barrier != spec.ptx()
    assert verify(spec, no_barrier).kind == "race"

    # Without the column guard of the loads the ragged "check" problem reads out of bounds.
    text = spec.ptx()
    guard = re.search(r"setp\.ge\.s32 \t(%p\d+), %r\d+, %r\d+;", text)
    assert guard is not None
    unguarded = text.replace(guard.group(0), f"setp.ne.s32 \t{guard.group(1)}, 0, 0;", 1)
    assert verify(spec, unguarded, size="small").ok
    assert verify(spec, unguarded, size="check").kind in ("fault", "mismatch")


def test_softmax_tolerance_is_needed_and_sufficient() -> None:
    """fast variants are within tolerance but not bit-exact against float64."""
    spec = kernels.load("softmax_block_f32_b256_i1_fast")
    assert not verify(spec, spec.ptx(), exact=True).ok
    assert verify(spec, spec.ptx(), exact=False).ok
    assert spec.tolerance.rtol <= 1e-5


@pytest.mark.parametrize("family", FAMILIES)
def test_manifest_matches_checked_in_ptx(family: str) -> None:
    mod = MODULES[family]
    manifest = json.loads((mod.HERE / "manifest.json").read_text())
    assert manifest["family"] == family and manifest["target"] == "sm_80"
    assert manifest["source_sha256"] == sha256_file(mod.SOURCE), f"{family}: regenerate the PTX"
    assert "release 13.0" in manifest["nvcc_version"]
    recs = manifest["kernels"]
    assert sorted(recs) == sorted(s.id for s in mod.specs())
    for spec in mod.specs():
        rec = recs[spec.id]
        assert rec["sha256"] == sha256_file(spec.ptx_path), spec.id
        assert rec["command"].startswith("nvcc -ptx -arch=sm_80 -O3 ")
        assert rec["command"].endswith(f"{mod.SOURCE.name} -o ptx/{spec.id}.ptx")
    assert sorted(p.stem for p in (mod.HERE / "ptx").glob("*.ptx")) == sorted(recs)


@pytest.mark.requires_ptxas
@pytest.mark.slow
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_ptx_assembles(arch: str) -> None:
    specs = [kernels.load(k) for k in IDS]
    results = assemble_many([s.ptx() for s in specs], arch)
    for spec, result in zip(specs, results, strict=True):
        assert isinstance(result, Assembly), f"{spec.id}: {result}"
        assert result.resources[spec.entry].registers > 0, spec.id


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
@pytest.mark.parametrize("family", FAMILIES)
def test_regenerating_one_variant_reproduces_checked_in_ptx(family: str, tmp_path: Path) -> None:
    from kernels import build

    spec = MODULES[family].specs()[-1]
    manifest = build.generate(build.family_build(family), tmp_path, only=[spec.id], jobs=1)
    assert (tmp_path / "ptx" / f"{spec.id}.ptx").read_bytes() == spec.ptx_path.read_bytes()
    assert list(manifest["kernels"]) == [spec.id]


# --- the SFU and atomic forms these families use, against their documented bounds -----------

# PTX: nvcc -ptx -arch=sm_80 -O3 (CUDA 13.0) of tests/data/nvcc/sfu.cu
SFU_PTX = nvcc_text("sfu.ptx")


def _ulps(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of float32 spacing at the exact value."""
    return np.abs(got.astype(np.float64) - exact) / np.spacing(np.abs(exact).astype(np.float32))


@pytest.mark.parametrize(
    ("seed", "mode"), [(0, "nominal"), (1, "nominal"), (0, "up"), (1, "mixed")]
)
def test_sfu_approximations_and_float_atomics(seed: int, mode: str) -> None:
    """Within CUDA's documented bounds (__expf: 2 + floor(1.173|x|) ulp; rsqrtf and
    __fdividef: 2 ulp); the emulator computes them correctly rounded (docs/emulator.md), and
    pushed to the PTX ISA's bounds stays within CUDA's (rsqrt: the ISA's 2^-22.9 relative)."""
    rng = np.random.default_rng(seed)
    n, block = 256, 128
    a = rng.uniform(-10, 10, n).astype(np.float32)
    b = ((rng.integers(1, 64, n) * rng.choice([-1, 1], n)) / 8).astype(np.float32)
    buffers = {
        "a": a,
        "b": b,
        "out": np.zeros(4 * n, np.float32),
        "acc": np.zeros(1, np.float32),
    }
    res = run_nvcc(
        SFU_PTX,
        "sfu",
        (n // block, 1, 1),
        (block, 1, 1),
        buffers,
        read_only={"a", "b"},
        races=True,
        approx=Approx(mode, seed),
    )
    assert res.approx_executed == 3  # ex2, rsqrt, div.approx, once each in uniform mode
    out = res.outputs["out"].reshape(n, 4)
    x = a.astype(np.float64)
    t = (a * np.float32(1.4426950216293335)).astype(np.float64)  # the rounded mul.f32
    ex2 = np.exp2(t).astype(np.float32)
    steps = np.abs(out[:, 0].view(np.int32).astype(np.int64) - ex2.view(np.int32))
    if mode == "nominal":
        assert (steps == 0).all()
        assert (_ulps(out[:, 0], np.exp(x)) <= 2 + np.floor(1.173 * np.abs(x))).all()
    else:  # the ISA's ex2 bound; with the mul's rounding it is looser than __expf's near 0
        assert (steps <= 2).all() and (steps == 2).mean() > 0.9
    rsqrt = 1 / np.sqrt(np.abs(x) + 1)
    if mode == "nominal":
        assert (_ulps(out[:, 1], rsqrt) <= 2).all()
    arg = (np.abs(a) + np.float32(1)).astype(np.float64)  # the rounded add.f32
    assert (np.abs(out[:, 1] - 1 / np.sqrt(arg)) <= 2**-22.9 / np.sqrt(arg)).all()
    assert (_ulps(out[:, 2], x / b) <= 2).all()
    assert np.array_equal(out[:, 3], (a * np.float32(1000)).astype(np.float16).astype(np.float32))
    # b is dyadic: the atomic sums are exact in any order.
    assert res.outputs["acc"][0] == b.astype(np.float64).sum()
