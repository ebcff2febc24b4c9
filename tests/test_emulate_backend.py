"""The `emulated` backend and its cost model: directions, labels, invalid steps, traces."""

from __future__ import annotations

import re

import numpy as np
import pytest

import kernels
from chronos.arch import arch_profile, occupancy
from chronos.emulate import emulate, run_kernel
from chronos.measure.backends.emulated import BACKEND, DEVICE, EmulatedBackend
from chronos.measure.backends.registry import BackendBase, create_backend
from chronos.transforms import ACTION_NAMES, apply_action
from tests.helpers.data import ptx_text

KERNEL = "gemm_tile_4_4_8"
"""TN = 4: rows of B are 16-byte aligned, so both copy runs can use v4 loads."""


# --- PTX variants made the way the transforms make them (independent of chronos.transforms) ---

LD = re.compile(r"^\s*ld\.global\.f32\s+(%f\d+), \[(%rd\d+)(?:\+(\d+))?\];")


def with_maxnreg(ptx: str, n: int) -> str:
    return re.sub(r"(\.entry\s+\w+\([^)]*\))", lambda m: f"{m[1]}\n.maxnreg {n}", ptx, count=1)


def vectorize_loads(ptx: str) -> str:
    """Runs of four ld.global.f32 at +o..+o+12 from one base (o % 16 == 0) -> one v4 load."""
    lines = ptx.splitlines(keepends=True)
    loads = [(i, LD.match(line)) for i, line in enumerate(lines)]
    found = [(i, m[1], m[2], int(m[3] or 0)) for i, m in loads if m]
    replace: dict[int, str] = {}
    drop: set[int] = set()
    k = 0
    while k + 3 < len(found):
        group = found[k : k + 4]
        base, off = group[0][2], group[0][3]
        if off % 16 == 0 and all(g[2] == base and g[3] == off + 4 * j for j, g in enumerate(group)):
            regs = ", ".join(g[1] for g in group)
            at = f"+{off}" if off else ""
            replace[group[0][0]] = f"\tld.global.v4.f32 \t{{{regs}}}, [{base}{at}];\n"
            drop.update(g[0] for g in group[1:])
            k += 4
        else:
            k += 1
    return "".join(replace.get(i, line) for i, line in enumerate(lines) if i not in drop)


def hoist_loads(ptx: str) -> str:
    """In the copy loop, move the shared stores below every global load (before bar.sync)."""
    lines = ptx.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if "ld.global" in line)
    end = next(i for i in range(start, len(lines)) if "bar.sync" in lines[i])
    region = lines[start:end]
    stores = [line for line in region if "st.shared" in line]
    rest = [line for line in region if "st.shared" not in line]
    return "".join(lines[:start] + rest + stores + lines[end:])


@pytest.fixture(scope="module")
def backend() -> EmulatedBackend:
    return EmulatedBackend(arch="sm_90")


@pytest.fixture(scope="module")
def spec() -> kernels.KernelSpec:
    return kernels.load(KERNEL)


@pytest.mark.requires_ptxas
def test_cost_model_directions(backend: EmulatedBackend, spec: kernels.KernelSpec) -> None:
    """Vectorized loads and hoisted loads cost less; spills under a tight cap cost more.

    At one CTA per SM (the "small" grid sets occupancy here), where load latency is exposed:
    on the "full" grid's several waves co-resident warps hide most of it (issue 19 b)."""
    backend = EmulatedBackend(arch="sm_90", occupancy_size="small")
    base = spec.ptx()
    variants = {
        "base": base,
        "vec_ld": vectorize_loads(base),
        "reorder": hoist_loads(base),
        "maxnreg_32": with_maxnreg(base, 32),
    }
    reports = {k: backend.report(spec, p) for k, p in variants.items()}
    for name, rep in reports.items():
        assert rep.valid, (name, rep.error)
        assert rep.bit_exact, name
    est = {k: r.cost.estimate for k, r in reports.items() if r.cost}
    assert est["vec_ld"] < 0.85 * est["base"]
    assert est["reorder"] < 0.95 * est["base"]
    assert reports["maxnreg_32"].spills and not reports["base"].spills
    assert est["maxnreg_32"] > 1.2 * est["base"]
    # The counts are SASS instructions per warp: four LDG.E become one LDG.E.128, and the
    # spills are real local loads and stores.
    vec_counts = reports["vec_ld"].cost.counts  # type: ignore[union-attr]
    base_counts = reports["base"].cost.counts  # type: ignore[union-attr]
    assert vec_counts["ld.global"] * 4 == pytest.approx(base_counts["ld.global"])
    spill_counts = reports["maxnreg_32"].cost.counts  # type: ignore[union-attr]
    assert spill_counts["ld.local"] > 0 and spill_counts["st.local"] > 0
    assert "ld.local" not in base_counts


@pytest.mark.requires_ptxas
def test_cost_model_directions_with_the_transform_catalogue(
    backend: EmulatedBackend, spec: kernels.KernelSpec
) -> None:
    ids = {name: i for i, name in enumerate(ACTION_NAMES)}
    base = spec.ptx()
    est = {"base": backend.report(spec, base).cost.estimate}  # type: ignore[union-attr]
    for name in ("vec_ld", "reorder_cp", "maxnreg_32"):
        res = apply_action(spec, base, ids[name])
        assert res.changed, name
        rep = backend.report(spec, res.ptx)
        assert rep.valid, (name, rep.error)
        est[name] = rep.cost.estimate  # type: ignore[union-attr]
    assert est["vec_ld"] < est["base"]
    assert est["reorder_cp"] < est["base"]
    assert est["maxnreg_32"] > est["base"]


@pytest.mark.requires_ptxas
def test_estimates_are_deterministic(backend: EmulatedBackend, spec: kernels.KernelSpec) -> None:
    a = backend.report(spec, spec.ptx())
    b = EmulatedBackend(arch="sm_90").report(spec, spec.ptx())
    assert a.cost is not None and b.cost is not None
    assert a.cost.as_dict() == b.cost.as_dict()


@pytest.mark.requires_ptxas
def test_invalid_steps_say_why(backend: EmulatedBackend, spec: kernels.KernelSpec) -> None:
    base = spec.ptx()
    rejected = base.replace("ret;", "add.f32 %f9999, %f1, %f2;\n\tret;", 1)
    rep = backend.report(spec, rejected)
    assert not rep.valid and rep.error and "ptxas" in rep.error

    lines = base.splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if "st.global.f32" in line)
    rep = backend.report(spec, "".join(lines[:i] + lines[i + 1 :]))
    assert not rep.valid and rep.error and "mismatch" in rep.error

    i = next(i for i, line in enumerate(lines) if "cvta.to.global.u64" in line)
    reg = re.search(r"(%rd\d+), ", lines[i])
    assert reg
    bad = lines[: i + 1] + [f"\tld.global.v4.f32 \t{{%f1, %f2, %f3, %f4}}, [{reg[1]}+8];\n"]
    rep = backend.report(spec, "".join(bad + lines[i + 1 :]))
    assert not rep.valid and rep.error and "fault" in rep.error and "misaligned" in rep.error


@pytest.mark.requires_ptxas
def test_measurement_is_labelled_an_estimate(
    backend: EmulatedBackend, spec: kernels.KernelSpec
) -> None:
    m = backend.measure(spec, spec.ptx())
    assert m.valid and m.estimate is True
    assert m.backend == BACKEND == "emulated" and m.device == DEVICE
    assert "estimate" in m.device
    assert m.cycles == m.cycles_q1 == m.cycles_q3 and m.cycles > 0
    assert m.regs and m.spills == 0 and m.kernel_id == KERNEL
    bad = backend.measure(spec, spec.ptx().replace("st.global.f32", "st.global.f64", 1))
    assert not bad.valid and bad.error and bad.estimate is True


def test_registered_with_the_measure_registry() -> None:
    backend = create_backend("emulated")
    assert isinstance(backend, EmulatedBackend) and isinstance(backend, BackendBase)


# --- the model's parts -------------------------------------------------------------------------


def test_occupancy_limits() -> None:
    prof = arch_profile("sm_90")
    assert occupancy(prof, 64, 32, 0) == (32, "blocks")
    assert occupancy(prof, 256, 255, 0)[1] == "registers"
    assert occupancy(prof, 256, 255, 0)[0] == 1
    assert occupancy(prof, 1024, 32, 0) == (2, "warps")
    assert occupancy(prof, 64, 32, 100_000) == (2, "shared")
    assert arch_profile("sm_90a") is prof and arch_profile("sm_92").name == prof.name
    assert arch_profile("sm_103").name.startswith("sm_100")
    assert arch_profile("h200").sm == "sm_90" and arch_profile("B200").sm == "sm_100"
    with pytest.raises(ValueError, match="h200"):
        arch_profile("not_a_gpu")


SHARED_STRIDE = ptx_text("shared_stride.ptx.in")


@pytest.mark.parametrize("stride,waves", [(4, 1), (8, 2), (128, 32), (0, 1)])
def test_shared_bank_conflicts_in_the_trace(stride: int, waves: int) -> None:
    res = run_kernel(
        SHARED_STRIDE.format(stride=stride),
        grid=(1, 1, 1),
        block=(32, 1, 1),
        buffers={"out": np.zeros(32, np.float32)},
        args={"k_p0": "out"},
        trace=True,
    )
    trace = res.trace
    assert trace is not None
    ld = next(s for s, pc in enumerate(trace.pcs) if "ld.shared" in res.program.ops[pc].text)
    assert int(trace.mem[ld].wavefronts[0]) == waves
    st = next(s for s, pc in enumerate(trace.pcs) if "st.global" in res.program.ops[pc].text)
    assert int(trace.mem[st].sectors[0]) == 4 and int(trace.mem[st].lines[0]) == 1
    # the cost model's L1/L2 simulation gets the 4 distinct sectors of the store, in order
    assert [(s, len(codes)) for s, codes in trace.sectors] == [(st, 4)]


def test_trace_counts_by_class_per_warp() -> None:
    spec = kernels.load("gemm_tile_2_2_2")
    run = emulate(spec, trace=True)
    assert run.trace is not None
    classes = [
        f"{op.cls}.b{op.mem.bytes * 8}" if op.mem is not None else op.cls for op in run.program.ops
    ]
    counts = {k: v / run.trace.n_warps for k, v in run.trace.counts(classes).items()}
    prob = spec.problem("small")
    k_steps = prob.sizes["K"] // 16
    # per thread and K step: 2x2 A and 2x2 B elements copied, 16 k's x (2 + 2) shared loads
    assert counts["ld.global.b32"] == 8 * k_steps
    assert counts["st.shared.b32"] == 8 * k_steps
    assert counts["ld.shared.b32"] == 64 * k_steps
    assert counts["fma"] == 64 * k_steps
    assert counts["barrier"] == 2 * k_steps


@pytest.mark.requires_ptxas
def test_sass_counts_follow_the_trace_through_line_info(backend: EmulatedBackend) -> None:
    """Each FFMA runs as often as its PTX fma line, whatever ptxas unrolled: per warp, the
    SASS FFMAs add up to the PTX's dynamic fma count."""
    spec = kernels.load("gemm_tile_2_2_2")
    rep = backend.report(spec, spec.ptx())
    assert rep.valid and rep.cost is not None
    k_steps = spec.problem("small").sizes["K"] // 16
    assert rep.cost.counts["fp32"] == pytest.approx(64 * k_steps)
    assert rep.cost.counts["barrier"] == pytest.approx(2 * k_steps)
    assert rep.cost.estimate > rep.cost.latency > 0


def _two_per_family() -> list[str]:
    fams: dict[str, list[str]] = {}
    for kid in kernels.list_kernels():
        fams.setdefault(kernels.load(kid).family, []).append(kid)
    return [k for ks in fams.values() for k in (ks[0], ks[len(ks) // 2])]


@pytest.mark.slow
@pytest.mark.requires_ptxas
@pytest.mark.parametrize("kid", _two_per_family())
def test_every_legal_action_gets_a_valid_traced_estimate(kid: str) -> None:
    """The cost model's path (a traced emulation, then the estimate) on every mask-legal
    action alone: never an exception, never an invalid step. The semantic sweeps run the
    emulator without a trace, so a trace-only failure (a zero-fill cp.async's outside
    address once was one) shows here."""
    from chronos.transforms import STOP, action_mask

    spec = kernels.load(kid)
    backend = EmulatedBackend(arch="sm_90")
    base = spec.ptx()
    mask = action_mask(spec, base, [])
    for a in map(int, np.flatnonzero(mask)):
        if a == STOP:
            continue
        res = apply_action(spec, base, a)
        if not res.changed:
            continue
        rep = backend.report(spec, res.ptx)
        assert rep.valid and rep.cost is not None, (ACTION_NAMES[a], rep.error)
