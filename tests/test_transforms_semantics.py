"""Transformed kernels compute what the original computes, in the CPU emulator: exact
transforms bit for bit against the untransformed kernel, rounding-changing ones within the
spec tolerance of the reference (`chronos.transforms.semantics.check`).

gemm_tile: every transform on a sample (fast) and on all 64 (slow), two seeded random
episodes per kernel on the small problem. Every other family (`slow`, sampled: two kernels
per family): every applicable transform alone and two seeded random episodes, on the
"small" and the ragged "check" problem, with two input seeds. The full sweep over every
kernel is benchmarks/transforms_semantics.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import kernels
from chronos.emulate.verify import verify
from chronos.transforms import CATALOGUE, apply_action, apply_sequence
from chronos.transforms.semantics import check, random_episode, sizes_of

ALL = sorted(k for k in kernels.list_kernels() if k.startswith("gemm_tile"))
SAMPLE = [
    "gemm_tile_2_2_2",
    "gemm_tile_4_6_8",
    "gemm_tile_8_8_8",
    "gemm_tile_6_4_2",
]


def _check(kernel_ids: list[str]) -> list[str]:
    bad = []
    for k in kernel_ids:
        spec = kernels.load(k)
        for i, t in enumerate(CATALOGUE):
            res = apply_action(spec, spec.ptx(), i)
            if t.name == "split_acc":  # gemm_tile's k loop has no chain to split
                assert not res.changed, (k, res.reason)
                continue
            assert res.changed, (k, t.name, res.reason)
            v = verify(spec, res.ptx, exact=t.exact)
            if not v.ok:
                bad.append(f"{k} {t.name}: {v.kind}: {v.error}")
    return bad


def test_every_transform_verifies_on_sample() -> None:
    assert _check(SAMPLE) == []


@pytest.mark.parametrize("kernel_id", [k for k in SAMPLE if k != "gemm_tile_8_8_8"])
def test_every_transform_keeps_outputs_on_the_check_problem(kernel_id: str) -> None:
    """The sample again on gemm_tile's second size ("check": 3x1 blocks, 3 K steps), two
    seeds (the full sweep: benchmarks/transforms_semantics.py)."""
    spec = kernels.load(kernel_id)
    for i, t in enumerate(CATALOGUE):
        res = apply_action(spec, spec.ptx(), i)
        if res.changed:
            for seed in (0, 1):
                err = check(spec, res.ptx, t.exact, size="check", seed=seed)
                assert err is None, (kernel_id, t.name, seed, err)


@pytest.mark.slow
def test_every_transform_verifies_on_all_kernels() -> None:
    assert _check(ALL) == []


@pytest.mark.parametrize("kernel_id", ALL)
def test_random_sequences_keep_outputs_on_every_kernel(kernel_id: str) -> None:
    """Every corpus kernel, two seeded random episodes of up to 6 transforms, emulated."""
    spec = kernels.load(kernel_id)
    rng = np.random.default_rng([ALL.index(kernel_id), 2026])
    for _ in range(2):
        ptx, applied = random_episode(spec, rng)
        names = [CATALOGUE[a].name for a in applied]
        v = verify(spec, ptx, exact=all(CATALOGUE[a].exact for a in applied))
        assert v.ok, (kernel_id, names, v.kind, v.error)


@pytest.mark.parametrize(
    "seq",
    [
        ["vec_ld", "cp_async", "maxnreg_128", "fast_math"],
        ["reorder_cp", "vec_st", "ld_nc", "prefetch_l2"],
        ["vec_ld", "reorder_cp", "st_cs", "ld_l2_128B", "reqntid"],
        ["ld_evict_last", "vec_ld", "cp_async", "vec_st"],
    ],
)
@pytest.mark.parametrize("kernel_id", ["gemm_tile_4_6_8", "gemm_tile_2_2_2", "gemm_tile_6_8_4"])
def test_sequences_verify(kernel_id: str, seq: list[str]) -> None:
    """Every named transform applies, in order, and the result verifies bit-exactly."""
    spec = kernels.load(kernel_id)
    ptx = spec.ptx()
    for name in seq:
        res = apply_action(spec, ptx, name)
        assert res.changed, (kernel_id, seq, name, res.reason)
        ptx = res.ptx
    assert ptx == apply_sequence(spec, spec.ptx(), seq)
    v = verify(spec, ptx, exact="fast_math" not in seq)
    assert v.ok, (kernel_id, seq, v.kind, v.error)


def test_cp_async_leaves_no_global_load_to_vectorize_or_hint() -> None:
    """cp_async turns the tile loads into async copies: ld_evict_last then has nothing left,
    and vec_ld only the shared-memory loads, which is why a sequence naming them after it
    applies fewer transforms (or changes less)."""
    spec = kernels.load("gemm_tile_4_6_8")
    ptx = apply_action(spec, spec.ptx(), "cp_async").ptx
    res = apply_action(spec, ptx, "ld_evict_last")
    assert not res.changed and res.reason
    res = apply_action(spec, ptx, "vec_ld")
    added = {ln.strip() for ln in res.ptx.splitlines()} - {ln.strip() for ln in ptx.splitlines()}
    assert res.changed and added
    assert all("ld.global" not in ln for ln in added), "no global load is left to vectorize"
    assert any(ln.startswith("ld.shared.v") for ln in added)


def test_misaligned_vector_would_fault() -> None:
    """The emulator catches what the alignment analysis prevents (sanity of the oracle)."""
    spec = kernels.load("gemm_tile_4_6_8")
    ptx = apply_action(spec, spec.ptx(), "vec_ld").ptx
    bad = ptx.replace(
        "ld.global.v4.f32 \t{%f149, %f150, %f151, %f152}, [%rd9+16];",
        "ld.global.v4.f32 \t{%f149, %f150, %f151, %f152}, [%rd9+8];",
        1,
    )
    assert bad != ptx
    v = verify(spec, bad, exact=True)
    assert not v.ok and v.kind == "fault"


# --- the other families: sampled here, in full in benchmarks/transforms_semantics.py ----------

OTHER = sorted(f for f in kernels.list_families() if f != "gemm_tile")
FAMILY_SAMPLE = [k for f in OTHER for k in kernels.list_kernels(f)[::9][:2]]
SEEDS = (0, 1)


def _cases(spec: kernels.KernelSpec) -> list[tuple[str, str, bool]]:
    """(what, ptx, exact): every applicable transform alone, then two random episodes."""
    out = []
    for i, t in enumerate(CATALOGUE):
        res = apply_action(spec, spec.ptx(), i)
        if res.changed:
            out.append((t.name, res.ptx, t.exact))
    rng = np.random.default_rng([sorted(kernels.list_kernels()).index(spec.id), 15])
    for _ in range(2):
        ptx, applied = random_episode(spec, rng)
        names = "+".join(CATALOGUE[a].name for a in applied)
        out.append((names, ptx, all(CATALOGUE[a].exact for a in applied)))
    return out


def test_every_family_has_a_ragged_check_problem() -> None:
    for f in OTHER:
        for k in kernels.list_kernels(f):
            assert sizes_of(kernels.load(k)) == ("small", "check"), k


@pytest.mark.slow
@pytest.mark.parametrize("kernel_id", FAMILY_SAMPLE)
def test_transforms_keep_semantics_on_every_family(kernel_id: str) -> None:
    spec = kernels.load(kernel_id)
    bad = []
    for what, ptx, exact in _cases(spec):
        for size in sizes_of(spec):
            for seed in SEEDS:
                err = check(spec, ptx, exact, size=size, seed=seed)
                if err:
                    bad.append(f"{what} {size} seed {seed}: {err}")
    assert bad == [], (kernel_id, bad)


def test_check_catches_a_wrong_exact_transform() -> None:
    """A plausible but wrong rewrite (the fold of a split chain dropped) is caught, and an
    exact check is held to the untransformed kernel, not to the approximate reference."""
    spec = kernels.load("reduce_rows_f32_b128_i4_shfl")
    ptx = apply_action(spec, spec.ptx(), "split_acc").ptx
    assert check(spec, ptx, exact=False, size="check", seed=1) is None
    lines = [
        ln
        for ln in ptx.splitlines()
        if "add.f32" not in ln or "%chr_acc" not in ln or ln.count("%chr_acc") != 1
    ]
    broken = "\n".join(lines)
    assert broken != ptx
    assert check(spec, broken, exact=False, size="check", seed=1) is not None
    soft = kernels.load("softmax_block_f32_b128_i4")
    assert check(soft, soft.ptx(), exact=True, size="check", seed=0) is None


def test_transforms_kept_out_of_the_catalogue_still_verify() -> None:
    """vec_lds (now part of vec_ld) and sink_st left the catalogue but stay correct."""
    from chronos.ptx import parse
    from chronos.transforms import transform_context
    from chronos.transforms.schedule import SINK_ST
    from chronos.transforms.vectorize import VEC_LDS

    spec = kernels.load("gemm_tile_2_2_2")
    for t in (VEC_LDS, SINK_ST):
        res = t.run(parse(spec.ptx()), transform_context(spec))
        assert res.changed, (t.name, res.reason)
        assert check(spec, res.ptx, exact=True) is None, t.name


def _zero_fill_form(ptx: str) -> str:
    """transpose's guarded copies rewritten as `tile = in_bounds ? in[..] : 0` (the store
    after the join, the zero moved in first): the zero-fill form stencil kernels take."""
    import re

    pat = re.compile(
        r"(\t@%p\d+ bra \t(\$L__BB0_\d+);\n)((?:.*\n)*?)"
        r"\t(st\.shared\.f32 \t\[[^\]]*\], (%f\d+));\n\n(\2:\n)"
    )

    def move(m: re.Match[str]) -> str:
        zero = f"\tmov.f32 \t{m.group(5)}, 0f00000000;\n"
        return f"{zero}{m.group(1)}{m.group(3)}\n{m.group(6)}\t{m.group(4)};\n"

    out, n = pat.subn(move, ptx)
    assert n == 4
    return out


def test_cp_async_zero_fill_copies_verify() -> None:
    """`mov r, 0; @p bra; ld r; join: st.shared r` becomes `selp` + cp.async with a source
    size (4 or 0: zero fill), bit-exact on the ragged problem."""
    from chronos.ptx import parse
    from chronos.transforms import CATALOGUE, transform_context
    from chronos.transforms.catalogue import ACTION_IDS

    spec = kernels.load("transpose_f32_t32x8")
    zf = _zero_fill_form(spec.ptx())
    assert check(spec, zf, exact=True, size="check", seed=1) is None
    res = CATALOGUE[ACTION_IDS["cp_async"]].run(parse(zf), transform_context(spec))
    assert res.changed, res.reason
    cps = [ln.strip() for ln in res.ptx.splitlines() if "cp.async.ca" in ln]
    assert len(cps) == 4 and all(ln.endswith(", 4, %chr_cpsz;") for ln in cps)
    assert res.ptx.count("selp.b32 \t%chr_cpsz, 0, 4, %p") == 4
    for size in ("small", "check"):
        assert check(spec, res.ptx, exact=True, size=size, seed=1) is None, size


@pytest.mark.parametrize(
    "kernel_id", ["stencil2d_shared_5pt_f32_32x4_4", "matvec_colsmem_f32_256_1"]
)
def test_cp_async_zero_fill_in_loops_verifies(kernel_id: str) -> None:
    """The stencil's staging loop (waits at each copy block's end) and matvec's zero-register
    fill (wait before the barrier), bit-exact on both problems and seeds; without the waits
    the emulator sees the tile unwritten."""
    spec = kernels.load(kernel_id)
    res = apply_action(spec, spec.ptx(), "cp_async")
    assert res.changed, res.reason
    for size in sizes_of(spec):
        for seed in SEEDS:
            assert check(spec, res.ptx, exact=True, size=size, seed=seed) is None, (size, seed)
    broken = res.ptx.replace("\tcp.async.wait_all;\n", "")
    assert broken != res.ptx
    assert check(spec, broken, exact=True, size="check", seed=0) is not None
