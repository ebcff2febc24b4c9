"""Cache hints on read-only-path loads, `.reqntid` folding and relaxed atomics (issue 31).

nvcc compiles every `const T* __restrict__` read to `ld.global.nc`, so the load hints must
apply there too (in the PTX ISA's `ld.global{.cop}.nc{.level::eviction_priority}` form);
`reqntid` pins the block shape, so `%ntid` may be folded into constants; and an atomic with
PTX's default relaxed semantics orders only its own address, so a load from another buffer
may rise above it. Each is checked for what ptxas makes of it and for exact semantics in the
emulator on two problem sizes (one not a multiple of the block) and two seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import kernels
from chronos.assemble import assemble, ptxas_available
from chronos.ptx import parse, parse_instruction
from chronos.transforms import apply_action
from chronos.transforms.deps import classify, conflict
from chronos.transforms.schedule import _PIPE_REG as PIPE_REG
from chronos.transforms.semantics import check
from kernels import BufferSpec, Problem, Tolerance
from tests.helpers import outside_kernels, registry

ATOMICS_PTX = Path(__file__).resolve().parent / "data" / "outside" / "atomics.ptx"
SIZES = ("small", "check")
SEEDS = (0, 1)
needs_ptxas = pytest.mark.skipif(not ptxas_available(), reason="ptxas not installed")


def _hist_prob(name: str, n: int, grid: int, block: int) -> Problem:
    return Problem(
        {"n": n},
        (grid, 1, 1),
        (block, 1, 1),
        {"hist_global_param_2": n},
        {"in": (n,), "bins": (256,)},
        name=name,
    )


def _hist_ref(problem: Problem, inp: dict) -> dict:
    return {"bins": np.bincount(inp["in"], minlength=256).astype(np.uint32)}


HIST_GLOBAL = outside_kernels.entry_spec(
    ATOMICS_PTX,
    "hist_global",
    ((".u64", "in"), (".u64", "bins"), (".u32", None)),
    (BufferSpec("in", "uint8", "in"), BufferSpec("bins", "uint32", "inout")),
    {
        "full": _hist_prob("full", 1 << 22, 256, 256),
        "small": _hist_prob("small", 3001, 3, 128),
        "check": _hist_prob("check", 4099, 2, 96),
    },
    _hist_ref,
    lambda problem, rng: {
        "in": rng.integers(0, 256, problem.sizes["n"], dtype=np.uint8),
        "bins": np.zeros(256, np.uint32),
    },
    Tolerance(0.0, 0.0),
)


@pytest.fixture(autouse=True, scope="module")
def _registered():
    with outside_kernels.registered(), registry.registered(HIST_GLOBAL):
        yield


def _sass(ptx: str, arch: str) -> str:
    return assemble(ptx, arch).module_text_sha256


# --- load hints on `.nc` loads ---------------------------------------------------------------

NC_FORMS = {
    "ld_cs": "ld.global.cs.nc.f32",
    "ld_na": "ld.global.nc.L1::no_allocate.f32",
    "ld_evict_last": "ld.global.nc.L1::evict_last.f32",
    "ld_cg": "ld.global.cg.f32",  # leaves the read-only path: ptxas ignores .cg on .nc
}


def _loads(spec: kernels.KernelSpec, ptx: str) -> list[str]:
    fn = parse(ptx).entry(spec.entry)
    return [i.mnemonic for i in fn.instructions() if i.opcode == "ld" and i.space == ".global"]


@pytest.mark.parametrize("name", sorted(NC_FORMS))
def test_load_hints_apply_to_read_only_path_loads(name):
    spec = kernels.load("outside_stencil5")  # only `ld.global.nc.f32` loads
    ptx = spec.ptx()
    assert set(_loads(spec, ptx)) == {"ld.global.nc.f32"}
    res = apply_action(spec, ptx, name)
    assert res.changed, res.reason
    assert _loads(spec, res.ptx) == [NC_FORMS[name]] * len(_loads(spec, ptx))
    for size in SIZES:
        for seed in SEEDS:
            assert check(spec, res.ptx, True, size, seed) is None


@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_load_hints_on_nc_loads_give_distinct_sass(arch):
    """Four hints, four different SASS, none the untransformed kernel's."""
    spec = kernels.load("outside_stencil5")
    ptx = spec.ptx()
    hashes = {_sass(apply_action(spec, ptx, n).ptx, arch) for n in NC_FORMS}
    assert len(hashes) == len(NC_FORMS) and _sass(ptx, arch) not in hashes


def test_ld_nc_stays_masked_on_nc_loads():
    spec = kernels.load("outside_stencil5")
    res = apply_action(spec, spec.ptx(), "ld_nc")
    assert not res.changed and "spec.read_only" in res.reason


# --- reqntid folds %ntid ---------------------------------------------------------------------


@pytest.mark.parametrize("kernel_id", ["outside_block_sum", "outside_histogram_smem"])
def test_reqntid_folds_ntid_and_keeps_semantics(kernel_id):
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    assert "%ntid.x" in ptx
    res = apply_action(spec, ptx, "reqntid")
    assert res.changed, res.reason
    entry = parse(res.ptx).entry(spec.entry)
    block = next(iter(spec.problems.values())).block
    assert f".reqntid {block[0]}, {block[1]}, {block[2]}" in res.ptx
    assert not any("%ntid" in op for i in entry.instructions() for op in i.operands)
    for size in SIZES:
        for seed in SEEDS:
            assert check(spec, res.ptx, True, size, seed) is None


@needs_ptxas
def test_reqntid_lets_ptxas_specialise_the_tree():
    """block_sum's `for (s = blockDim.x / 2; ...)` tree: a constant bound changes the SASS."""
    spec = kernels.load("outside_block_sum")
    res = apply_action(spec, spec.ptx(), "reqntid")
    assert _sass(res.ptx, "sm_90") != _sass(spec.ptx(), "sm_90")


# --- relaxed atomics order only their own address ---------------------------------------------


def _effect(text: str):
    return classify(parse_instruction(text), 0, {}, None)


def test_relaxed_atomic_is_an_access_not_a_fence():
    atom = _effect("atom.shared.add.u32 %r1, [%r2], 1;")
    assert not atom.fence and atom.mem_read and atom.mem_write
    other_space = _effect("ld.global.nc.u8 %rs1, [%rd5];")
    same_base = _effect("ld.shared.u32 %r3, [%r2];")
    assert not conflict(other_space, atom)
    assert conflict(same_base, atom)
    for ordered in (
        "atom.acquire.shared.add.u32 %r1, [%r2], 1;",
        "atom.acq_rel.gpu.global.add.u32 %r1, [%rd2], 1;",
        "red.release.global.add.u32 [%rd2], 1;",
    ):
        assert _effect(ordered).fence, ordered


@pytest.mark.parametrize("kernel_id", ["outside_histogram_smem", "outside_hist_global"])
def test_reorder_cp_pipelines_a_load_above_a_relaxed_atomic(kernel_id):
    spec = kernels.load(kernel_id)
    res = apply_action(spec, spec.ptx(), "reorder_cp")
    assert res.changed, res.reason
    lines = [ln.strip() for ln in res.ptx.splitlines()]
    hoisted = next(i for i, ln in enumerate(lines) if ln.startswith("@%p") and "ld.global" in ln)
    first_atom = next(i for i, ln in enumerate(lines) if ln.startswith("atom."))
    assert PIPE_REG in lines[hoisted] and hoisted < first_atom
    for size in SIZES:
        for seed in SEEDS:
            assert check(spec, res.ptx, True, size, seed) is None


def test_reorder_cp_keeps_a_load_below_an_atomic_on_its_buffer():
    """self_scatter reads y[i] and atomically adds into y: the next load may not rise."""
    problem = Problem(
        {"n": 300}, (2, 1, 1), (64, 1, 1), {"self_scatter_param_1": 300}, {"y": (300,)}
    )
    spec = outside_kernels.entry_spec(
        ATOMICS_PTX,
        "self_scatter",
        ((".u64", "y"), (".u32", None)),
        (BufferSpec("y", "int32", "inout"),),
        {"full": problem, "small": problem, "check": problem},
        lambda problem, inp: {"y": inp["y"]},
        None,
        Tolerance(0.0, 0.0),
    )
    res = apply_action(spec, spec.ptx(), "reorder_cp")
    assert PIPE_REG not in res.ptx
    assert not res.changed and "the next load cannot rise" in res.reason
