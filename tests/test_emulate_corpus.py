"""The emulator on the gemm_tile corpus: every kernel bit-exact, broken PTX caught, and
random mask-respecting transform sequences keep the outputs."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kernels
from chronos.emulate import emulate, verify
from tests.helpers.sequences import sequence_settings

CORPUS = kernels.list_kernels("gemm_tile")
SAMPLE = ["gemm_tile_2_2_2", "gemm_tile_4_6_8", "gemm_tile_8_8_8", "gemm_tile_6_2_4"]


def test_corpus_has_64_kernels() -> None:
    assert len(CORPUS) == 64


@pytest.mark.parametrize("kernel_id", CORPUS)
def test_corpus_kernel_matches_reference_bit_exactly(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    res = verify(spec, spec.ptx(), exact=True)
    assert res.ok, res.error
    assert res.mismatches == 0 and res.max_abs_err == 0.0


def test_outputs_depend_on_the_seed_and_inputs_are_untouched() -> None:
    spec = kernels.load("gemm_tile_4_6_8")
    prob = spec.problem("small")
    a = emulate(spec, seed=0)
    b = emulate(spec, seed=1)
    assert not np.array_equal(a.outputs["C"], b.outputs["C"])
    inputs = spec.make_inputs(prob, 0)
    assert np.array_equal(a.outputs["A"], inputs["A"]) and np.array_equal(
        a.outputs["B"], inputs["B"]
    )


# --- deliberately broken PTX: a lenient verifier would pass these -------------------------------


def _lines(spec: kernels.KernelSpec) -> list[str]:
    return spec.ptx().splitlines(keepends=True)


def drop_store(spec: kernels.KernelSpec) -> str:
    lines = _lines(spec)
    stores = [i for i, line in enumerate(lines) if "st.global" in line]
    del lines[stores[len(stores) // 2]]
    return "".join(lines)


def _swap_last_operands(spec: kernels.KernelSpec, opcode: str, reg: str, pick) -> str:
    """`op d, a, b, c` -> `op d, a, c, b` on the line `pick` (next: first, max: last) chooses."""
    lines = _lines(spec)
    pat = re.compile(rf"^(\s*{opcode}\s+)({reg}), ({reg}), ({reg}), ({reg});")
    i = pick(i for i, line in enumerate(lines) if pat.match(line))
    m = pat.match(lines[i])
    assert m
    lines[i] = f"{m[1]}{m[2]}, {m[3]}, {m[5]}, {m[4]};\n"
    return "".join(lines)


def swap_fma_operands(spec: kernels.KernelSpec) -> str:
    """fma d, a, b, c -> fma d, a, c, b (a multiplicand trades places with the addend)."""
    return _swap_last_operands(spec, r"fma\.rn\.f32", r"%f\d+", next)


def swap_mad_operands(spec: kernels.KernelSpec) -> str:
    """mad.lo d, a, b, c -> mad.lo d, a, c, b in the output index (a plain mul would not care)."""
    return _swap_last_operands(spec, r"mad\.lo\.s32", r"%r\d+", max)


def misaligned_v4(spec: kernels.KernelSpec) -> str:
    """A v4 load 8 bytes past a 256-byte-aligned buffer start (8 mod 16)."""
    lines = _lines(spec)
    i = next(i for i, line in enumerate(lines) if "cvta.to.global.u64" in line)
    m = re.search(r"cvta\.to\.global\.u64\s+(%rd\d+)", lines[i])
    assert m
    load = f"\tld.global.v4.f32 \t{{%f1, %f2, %f3, %f4}}, [{m[1]}+8];\n"
    return "".join(lines[: i + 1] + [load] + lines[i + 1 :])


def drop_first_barrier(spec: kernels.KernelSpec) -> str:
    """The barrier between the tile's shared stores and the loads that read them."""
    lines = _lines(spec)
    del lines[next(i for i, line in enumerate(lines) if "bar.sync" in line)]
    return "".join(lines)


def drop_latch_barrier(spec: kernels.KernelSpec) -> str:
    """The barrier before the next tile overwrites what this one still reads."""
    lines = _lines(spec)
    del lines[max(i for i, line in enumerate(lines) if "bar.sync" in line)]
    return "".join(lines)


@pytest.mark.parametrize("kernel_id", SAMPLE)
@pytest.mark.parametrize(
    "breaker,kind",
    [
        (drop_store, "mismatch"),
        (swap_fma_operands, "mismatch"),
        (swap_mad_operands, {"mismatch", "fault"}),
        (misaligned_v4, "fault"),
        (drop_first_barrier, "race"),
        (drop_latch_barrier, "race"),
    ],
)
def test_broken_ptx_is_caught(kernel_id: str, breaker, kind) -> None:
    spec = kernels.load(kernel_id)
    broken = breaker(spec)
    assert broken != spec.ptx()
    for exact in (True, False):
        res = verify(spec, broken, exact=exact)
        assert not res.ok
        assert res.kind in (kind if isinstance(kind, set) else {kind}), res
        assert res.error
        if res.kind == "fault":
            assert "MemoryFault" in res.error and "line" in res.error
        elif res.kind == "race":
            assert "SharedMemoryRace" in res.error
            assert "ld.shared" in res.error or "st.shared" in res.error
            # Lockstep emulation computes the right answer anyway: only the race check sees it.
            assert verify(spec, broken, exact=exact, races=False).ok
        else:
            assert res.mismatches > 0 and res.max_abs_err > 0


def test_tolerance_accepts_tiny_rounding_changes_only_when_not_exact() -> None:
    """An inexact kernel (a*b + c*0.999999) passes with tolerance but not bit-exactly."""
    spec = kernels.load("gemm_tile_2_2_2")
    lines = _lines(spec)
    i = max(i for i, line in enumerate(lines) if "st.global.f32" in line)
    m = re.search(r"\[(%rd\d+)\+4\], (%f\d+);", lines[i])
    assert m
    lines[i] = f"\tmul.rn.f32 \t{m[2]}, {m[2]}, 0f3F7FFFFF;\n" + lines[i]
    ptx = "".join(lines)
    assert verify(spec, ptx, exact=True).kind == "mismatch"
    assert verify(spec, ptx, exact=False).ok


# --- property: random mask-respecting transform sequences keep the outputs ----------------------


def _transforms():
    """chronos.transforms, or a skip when it is not there yet (it lands separately)."""
    try:
        import chronos.transforms as t
    except ImportError:
        pytest.skip("chronos.transforms is not importable")
    if not all(hasattr(t, n) for n in ("apply_action", "action_mask", "CATALOGUE", "STOP")):
        pytest.skip("chronos.transforms does not provide apply_action/action_mask yet")
    return t


@sequence_settings(25)
@given(kernel_id=st.sampled_from(CORPUS), data=st.data())
def test_random_transform_sequences_keep_outputs(kernel_id: str, data: st.DataObject) -> None:
    transforms = _transforms()
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    applied: list[int] = []
    for _ in range(6):
        mask = np.asarray(transforms.action_mask(spec, ptx, applied), bool)
        legal = [a for a in np.flatnonzero(mask) if a != transforms.STOP]
        if not legal:
            break
        action = int(data.draw(st.sampled_from(legal), label="action"))
        res = transforms.apply_action(spec, ptx, action)
        applied.append(action)
        if not res.changed:
            continue
        ptx = res.ptx
    exact = all(transforms.CATALOGUE[a].exact for a in applied)
    names = [transforms.CATALOGUE[a].name for a in applied]
    res = verify(spec, ptx, exact=exact)
    assert res.ok, f"{kernel_id} after {names}: {res.kind}: {res.error}"
