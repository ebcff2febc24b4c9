"""Families stencil2d, matvec, elementwise and histogram: specs, PTX, manifests, emulation.

Every kernel verifies untransformed in the emulator on its "small" and "check" problems (two
seeds each); the checked-in PTX matches its manifest, assembles for sm_80 and sm_90, and one
variant per family regenerates byte-identically with nvcc. The emulator additions these
kernels needed are tested against independent references on nvcc output (tests/data/nvcc).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import numpy as np
import pytest

import kernels
import kernels.build
from chronos.assemble import assemble
from chronos.emulate import verify
from chronos.ptx import ptx_sha256
from kernels import elementwise, histogram, matvec, stencil2d
from tests.helpers.data import nvcc_text, run_nvcc

FAMILIES = {m.FAMILY: m for m in (stencil2d, matvec, elementwise, histogram)}
IDS = [s.id for m in FAMILIES.values() for s in m.specs()]

# --- emulator: registers declared by name inside inline-asm scopes -----------------------------

# PTX: nvcc -ptx -arch=sm_80 -O3 (CUDA 13.0) of tests/data/nvcc/h2bcast.cu
H2BCAST_PTX = nvcc_text("h2bcast.ptx")


def test_inline_asm_scoped_register_without_percent() -> None:
    """cuda_fp16's __float2half2_rn declares `{.reg .f16 low; ...}`: plain-named registers."""
    rng = np.random.default_rng(3)
    n = 64
    a = rng.uniform(-4, 4, n).astype(np.float32)
    x = rng.uniform(-4, 4, 2 * n).astype(np.float16)
    buffers = {"a": a, "x": x, "y": np.zeros(2 * n, np.float16)}
    res = run_nvcc(H2BCAST_PTX, "h2bcast", (2, 1, 1), (32, 1, 1), buffers, read_only={"a", "x"})
    # f16 * f16 is exact in float64, so one rounding to f16 is the hardware's mul.rn.f16x2.
    a16 = np.repeat(a.astype(np.float16), 2).astype(np.float64)
    expected = (a16 * x.astype(np.float64)).astype(np.float16)
    assert np.array_equal(res.outputs["y"].view(np.uint16), expected.view(np.uint16))


# --- the families -----------------------------------------------------------------------------


def test_families_registered_with_at_least_twelve_distinct_kernels() -> None:
    for family, module in FAMILIES.items():
        ids = [s.id for s in module.specs()]
        assert kernels.list_kernels(family) == sorted(ids)
        assert len(ids) >= 12
        assert len({ptx_sha256(kernels.load(k).ptx()) for k in ids}) == len(ids), "duplicate PTX"


@pytest.mark.parametrize("kernel_id", IDS)
def test_untransformed_kernel_verifies_small_and_check(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    small, check = spec.problem("small"), spec.problem("check")
    assert small.sizes != check.sizes, "the check problem must differ in size"
    for size in ("small", "check"):
        for seed in (0, 1):
            res = verify(spec, spec.ptx(), exact=True, seed=seed, size=size)
            assert res.ok, f"{size} seed {seed}: {res.kind} {res.error}"


def test_specs_pickle() -> None:
    """Specs cross process boundaries (the shared measurement service pickles them)."""
    for module in FAMILIES.values():
        for spec in module.specs():
            back = pickle.loads(pickle.dumps(spec))
            prob = back.problem("check")
            inputs = back.make_inputs(prob, 1)
            ref = back.reference(prob, inputs)
            assert all(np.array_equal(ref[k], v) for k, v in spec.reference(prob, inputs).items())


@pytest.mark.parametrize("kernel_id", IDS)
def test_contract_holds_on_every_problem(kernel_id: str) -> None:
    """Claimed divisibility holds for every problem (validate) and the full problem fills an
    H100 (132 SMs) several times over."""
    spec = kernels.load(kernel_id)
    kernels.validate(spec)
    assert set(spec.problems) == {"full", "small", "check"}
    assert int(np.prod(spec.problem("full").grid)) >= 4 * 132


@pytest.mark.parametrize(
    "kernel_id",
    [
        "elementwise_saxpy_vec4_128_1",
        "stencil2d_shared_5pt_f32_32x8_1",
        "matvec_warp_f32_256_4",
        "histogram_shared_u8_256_256_1",
    ],
)
def test_a_wrong_kernel_fails_verification(kernel_id: str) -> None:
    """The references can fail: the same PTX without its global stores/atomics is caught."""
    spec = kernels.load(kernel_id)
    writes = ("st.global", "atom.global", "red.global")
    lines = [ln for ln in spec.ptx().splitlines() if not ln.strip().startswith(writes)]
    assert len(lines) < len(spec.ptx().splitlines())
    res = verify(spec, "\n".join(lines) + "\n", exact=True, size="check")
    assert not res.ok and res.kind in ("mismatch", "error")


def test_histogram_accumulates_into_its_inout_buffer() -> None:
    """`hist` is inout and zeroed by make_inputs; a non-zero start is added to, not replaced."""
    spec = kernels.load("histogram_shared_i32_64_256_1")
    assert spec.buffer("hist").role == "inout"
    prob = spec.problem("check")
    inputs = spec.make_inputs(prob, 0)
    assert not inputs["hist"].any()
    inputs["hist"][:] = 1000
    from chronos.emulate import emulate

    run = emulate(spec, spec.ptx(), size="check", inputs=inputs)
    assert np.array_equal(run.outputs["hist"], spec.reference(prob, inputs)["hist"])
    assert run.outputs["hist"].min() >= 1000


@pytest.mark.parametrize("family", list(FAMILIES))
def test_manifest_sha256_matches_checked_in_ptx(family: str) -> None:
    module = FAMILIES[family]
    manifest = json.loads(module.MANIFEST.read_text())
    assert manifest["family"] == family and manifest["target"] == "sm_80"
    assert manifest["nvcc_flags"] == ["-ptx", "-arch=sm_80", "-O3"]
    source = hashlib.sha256(module.SOURCE.read_bytes()).hexdigest()
    assert manifest["source_sha256"] == source, f"{module.SOURCE.name} changed: regenerate"
    ids = {s.id for s in module.specs()}
    assert set(manifest["kernels"]) == ids
    for kid, rec in manifest["kernels"].items():
        ptx = (module.HERE / rec["ptx"]).read_bytes()
        assert hashlib.sha256(ptx).hexdigest() == rec["sha256"], kid
        assert rec["command"].startswith("nvcc -ptx -arch=sm_80 -O3 -DNAME=" + kid)
        assert ptx_sha256(kernels.load(kid).ptx()) == rec["sha256"]


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_ptx_assembles(family: str, arch: str) -> None:
    for spec in FAMILIES[family].specs():
        asm = assemble(spec.ptx(), arch=arch)
        assert asm.resources[spec.entry].registers > 0


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
@pytest.mark.parametrize("family", list(FAMILIES))
def test_regenerating_one_variant_reproduces_the_ptx(family: str, tmp_path) -> None:
    build = kernels.build.family_build(family)
    vid = build.variants[-1].id
    manifest = kernels.build.generate(build, tmp_path, only=[vid])
    fresh = (tmp_path / "ptx" / f"{vid}.ptx").read_bytes()
    assert fresh == kernels.load(vid).ptx_path.read_bytes()
    assert list(manifest["kernels"]) == [vid]


TRANSFORM_SAMPLE = [
    "stencil2d_shared_5pt_f32_32x4_4",
    "stencil2d_direct_9pt_f16_64x4_2",
    "matvec_row_f32_256_2",
    "matvec_colsmem_f32_128_1",
    "elementwise_haxpy_h2_256_2",
    "elementwise_fused_256_4",
    "histogram_vec_u8_256_128_2",
    "histogram_shared_i32_1024_128_4",
]
"""A sample per family (the full sweep of every kernel takes ~45 s: see the report)."""


@pytest.mark.parametrize("kernel_id", TRANSFORM_SAMPLE)
def test_every_applicable_action_keeps_the_kernel_correct(kernel_id: str) -> None:
    """On both emulator problems, so that a transform relying on one problem's sizes fails."""
    from chronos.transforms import ACTION_NAMES, CATALOGUE, STOP, action_mask, apply_action

    spec = kernels.load(kernel_id)
    base = spec.ptx()
    changed = 0
    for a, legal in enumerate(action_mask(spec, base, ())):
        if not legal or a == STOP:
            continue
        res = apply_action(spec, base, a)
        changed += res.changed
        for size in ("small", "check"):
            v = verify(spec, res.ptx, exact=CATALOGUE[a].exact, size=size)
            assert v.ok, f"{ACTION_NAMES[a]} on {size}: {v.kind} {v.error}"
    assert changed >= 6
