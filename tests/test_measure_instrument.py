"""The %clock64 instrumentation: assembles on every corpus kernel and keeps outputs exact."""

from __future__ import annotations

import numpy as np
import pytest

import chronos.emulate.launch as launch
from chronos.emulate import verify
from chronos.measure.harness.instrument import (
    SM_SLOTS,
    TIMER_SYMBOL,
    InstrumentError,
    decode_timers,
    instrument,
)
from chronos.ptx import parse
from kernels import list_kernels, load
from tests.helpers.data import ptx_text

KERNELS = [k if isinstance(k, str) else k.id for k in list_kernels()]


def test_corpus_is_the_design_corpus() -> None:
    assert len(KERNELS) >= 64


def test_structure() -> None:
    spec = load("gemm_tile_2_2_2")
    out = instrument(spec.ptx())
    mod = parse(out.ptx)
    assert out.entries == (spec.entry,) and out.exits == 1
    decls = [d.text for d in mod.module_variables()]
    assert any(f"{TIMER_SYMBOL}[{4 * SM_SLOTS}]" in d and ".u64" in d for d in decls)
    ins = mod.entry(spec.entry).instructions()
    assert ins[0].operands[1] == "%clock64"  # the first thing the kernel does
    reds = [i for i in ins if i.opcode == "red"]
    assert len(reds) == 4 and all(i.modifiers == (".global", ".max", ".u64") for i in reds)
    assert any(i.operands[1] == "%smid" for i in ins if i.opcode == "mov")
    assert all(i.guard == "%chronos_p".join(["@", ""]) for i in reds)
    assert ins[-1].opcode == "ret"
    # The original instructions are all still there, in order.
    orig = [i.text for i in parse(spec.ptx()).entry().instructions()]
    kept = [i.text for i in ins if "chronos" not in i.text]
    assert kept == orig


def test_guarded_exit_records_only_when_taken() -> None:
    spec = load("gemm_tile_2_2_2")
    ptx = spec.ptx().replace("\tret;", "\tsetp.eq.u32 \t%p2, %r1, 3;\n\t@%p2 ret;\n\tret;")
    out = instrument(ptx)
    assert out.exits == 2
    assert "@!%p2 bra $chronos_skip_0;" in out.ptx and "$chronos_skip_0:" in out.ptx
    v = verify(spec, out.ptx, exact=True)
    assert v.ok, v.error


def test_errors() -> None:
    spec = load("gemm_tile_2_2_2")
    out = instrument(spec.ptx())
    with pytest.raises(InstrumentError, match="already instrumented"):
        instrument(out.ptx)
    with pytest.raises(InstrumentError, match="no entry"):
        instrument(spec.ptx(), "nope")


@pytest.mark.requires_ptxas
def test_every_kernel_assembles_instrumented() -> None:
    from chronos.assemble import Assembly, assemble_many

    specs = [load(k) for k in KERNELS]
    texts = [instrument(s.ptx(), s.entry).ptx for s in specs]
    results = assemble_many(texts, "sm_90")
    bad = [(s.id, r) for s, r in zip(specs, results, strict=True) if not isinstance(r, Assembly)]
    assert not bad
    for s, r in zip(specs, results, strict=True):
        assert r.resources[s.entry].registers > 0


def _timers_after(spec, ptx: str) -> tuple[object, int]:
    """Run in the emulator; return (decoded per-SM spans, steps) read from its memory.

    The outputs must equal the plain kernel's bit for bit; only dyadic-input families also
    match their float64 reference exactly, the others within the spec's tolerance.
    """
    seen: list = []

    class Spy(launch.Machine):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            seen.append(self)

    orig = launch.Machine
    launch.Machine = Spy
    try:
        v = verify(spec, ptx, exact=False)
    finally:
        launch.Machine = orig
    assert v.ok, f"{spec.id}: {v.kind}: {v.error}"
    assert v.run is not None
    plain = launch.emulate(spec, spec.ptx()).outputs
    for name, got in v.run.outputs.items():
        assert got.tobytes() == plain[name].tobytes(), f"{spec.id}: {name} differs from plain"
    m = seen[-1]
    start, size = m.global_mem.region_bytes(TIMER_SYMBOL)
    timers = m.global_mem.data[start : start + size].view(np.uint64)
    return decode_timers(timers[None]), m.steps


@pytest.mark.parametrize("kernel", KERNELS)
def test_instrumented_kernel_stays_exact_in_the_emulator(kernel: str) -> None:
    spec = load(kernel)
    spans, steps = _timers_after(spec, instrument(spec.ptx(), spec.entry).ptx)
    # The emulator's clock advances per executed step (one clock for the whole grid), so the
    # busiest SM's span is positive and bounded by the run; both timers see the same clock.
    ctas = int(np.prod(spec.problem("small").grid))
    assert 0 < spans.cycles[0] <= steps * 4
    assert spans.ns[0] == spans.cycles[0] and spans.wall_ns[0] >= spans.cycles[0]
    assert spans.sms[0] == min(ctas, 132)  # the emulator puts block b on SM b % 132


def test_decode_timers_takes_the_busiest_sm_span() -> None:
    """Two SMs: SM 0 runs 100..400 (two waves), SM 1 runs 150..250; wall time spans both."""
    t = np.zeros((1, 4, SM_SLOTS), np.uint64)
    t[0, :, 0] = [~np.uint64(100), 400, ~np.uint64(1000), 1300]
    t[0, :, 1] = [~np.uint64(150), 250, ~np.uint64(1050), 1400]
    s = decode_timers(t)
    assert s.cycles[0] == 300 and s.ns[0] == 300 and s.wall_ns[0] == 400 and s.sms[0] == 2
    with pytest.raises(ValueError, match="no warp"):
        decode_timers(np.zeros((1, 4 * SM_SLOTS), np.uint64))
    t[0, 1, 1] = 10  # ends before it starts
    with pytest.raises(ValueError, match="before it starts"):
        decode_timers(t)


LOOP_AT_TOP = ptx_text("loop_at_top.ptx")


@pytest.mark.requires_ptxas
def test_scopes_and_loops_at_the_top() -> None:
    """Declarations go at function scope, the clock reads before the first label."""
    from chronos.assemble import assemble

    out = instrument(LOOP_AT_TOP)
    lines = [ln.strip() for ln in out.ptx.splitlines()]
    assert lines.index("mov.u64 %chronos_t0, %clock64;") < lines.index("mov.u32 %n1, 0;")
    assert lines.index(".reg .pred %chronos_p;") < lines.index("{", lines.index("$top:"))
    assert out.exits == 1 and lines[-2] == "exit;"
    assert assemble(out.ptx, "sm_90").resources["k"].registers > 0
