"""The PTX ISA table (chronos.ptx.isa): what modules need, checked against ptxas itself."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

import kernels
from chronos.assemble import PtxasError, assemble
from chronos.assemble.ptxas import candidates, max_ptx_isa
from chronos.ptx.isa import (
    MODIFIERS,
    OPCODES,
    TARGETS,
    declared_isa,
    lower_isa,
    required_isa,
    with_version,
)

ISA_VERSIONS = sorted(
    [(4, m) for m in range(4)]
    + [(5, 0)]
    + [(6, m) for m in range(6)]
    + [(7, m) for m in range(9)]
    + [(8, m) for m in range(9)]
    + [(9, 0)]
)


def module(body: str, target: str = "sm_80", header: str = "", decl: str = "") -> str:
    """A one-entry module declared at ISA 9.0 around `body`."""
    return f""".version 9.0
.target {target}
.address_size 64
{decl}
.visible .entry k(.param .u64 k_p)
{header}
{{
\t.reg .pred %p<4>;
\t.reg .b16 %rs<8>;
\t.reg .b32 %r<16>;
\t.reg .f32 %f<16>;
\t.reg .b64 %rd<8>;
\tld.param.u64 %rd1, [k_p];
\tcvta.to.global.u64 %rd2, %rd1;
\tmov.u32 %r1, %tid.x;
\tmov.b32 %f1, %r1;
\tcvt.u64.u32 %rd3, %r1;
{body}
\tst.global.u32 [%rd2], %r1;
\tret;
}}
"""


PROBES: dict[str, tuple[str, str, str]] = {
    # name: (body, target, header); each needs what the table says, not less, not more.
    "ldmatrix": (
        "\tldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r2,%r3,%r4,%r5}, [%rd3];",
        "sm_75",
        "",
    ),
    "evict_last": ("\tld.global.L1::evict_last.u32 %r2, [%rd2];", "sm_75", ""),
    "no_allocate": ("\tld.global.L1::no_allocate.u32 %r2, [%rd2];", "sm_75", ""),
    "l2_128B": ("\tld.global.L2::128B.u32 %r2, [%rd2];", "sm_75", ""),
    "l2_256B": ("\tld.global.L2::256B.u32 %r2, [%rd2];", "sm_80", ""),
    "prefetch_evict": ("\tprefetch.global.L2::evict_last [%rd2];", "sm_80", ""),
    "createpolicy": (
        "\tcreatepolicy.fractional.L2::evict_last.b64 %rd4, 1.0;\n"
        "\tld.global.L2::cache_hint.u32 %r2, [%rd2], %rd4;",
        "sm_80",
        "",
    ),
    "cp_async": (
        "\tcp.async.cg.shared.global [%rd3], [%rd2], 16;\n\tcp.async.commit_group;\n"
        "\tcp.async.wait_group 0;\n\tcp.async.wait_all;",
        "sm_80",
        "",
    ),
    "mma": (
        "\tmma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%f2,%f3,%f4,%f5}, "
        "{%r1,%r2,%r3,%r4}, {%r5,%r6}, {%f1,%f1,%f1,%f1};",
        "sm_80",
        "",
    ),
    "cvt_f16x2": ("\tcvt.rn.f16x2.f32 %r3, %f1, %f1;", "sm_80", ""),
    "tanh": ("\ttanh.approx.f32 %f2, %f1;", "sm_75", ""),
    "instrumentation": (
        "\tmov.u64 %rd4, %globaltimer;\n\tmov.u64 %rd5, %clock64;\n\tmov.u32 %r2, %smid;\n"
        "\tactivemask.b32 %r3;\n\tred.global.max.u64 [%rd2], %rd4;",
        "sm_75",
        ".maxntid 128, 1, 1\n.minnctapersm 2",
    ),
    "target_sm_86": ("\tadd.s32 %r2, %r1, 1;", "sm_86", ".reqntid 128\n.maxnreg 64"),
    "target_sm_89": ("\tadd.s32 %r2, %r1, 1;", "sm_89", ""),
    "target_sm_90": ("\tshfl.sync.bfly.b32 %r3, %r1, 1, 31, -1;", "sm_90", ""),
}


def _ptxas_taking(isa: tuple[int, int], arch: str) -> Path | None:
    """A ptxas that takes `isa` and knows `arch` (the oldest found: it knows old targets)."""
    from chronos.assemble import ptxas_version

    usable = [e for e in candidates() if (max_ptx_isa(e) or (0, 0)) >= isa]
    usable.sort(key=lambda e: [int(x) for x in ptxas_version(e).split(".") if x.isdigit()])
    for exe in usable:
        try:
            assemble(module("", target=arch), arch, ptxas=exe)
            return exe
        except PtxasError:
            continue
    return None


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("name", sorted(PROBES))
def test_the_table_is_what_ptxas_enforces(name: str) -> None:
    """Assembled at the ISA the table computes: accepted; one ISA version lower: rejected,
    with ptxas naming a version requirement (the table is exact, neither loose nor strict)."""
    body, target, header = PROBES[name]
    ptx = module(body, target, header)
    needs = required_isa(ptx)
    assert needs.unknown == ()
    lowest = needs.lowest
    exe = _ptxas_taking((9, 0), target)
    if exe is None:
        pytest.skip(f"no ptxas here knows {target}")
    assemble(with_version(ptx, lowest), target, ptxas=exe)
    below = ISA_VERSIONS[ISA_VERSIONS.index(lowest) - 1]
    with pytest.raises(PtxasError, match=r"(?i)version|not supported|requires"):
        assemble(with_version(ptx, below), target, ptxas=exe)


def test_every_corpus_kernel_is_known_to_the_table_and_needs_isa_7() -> None:
    """The corpus (nvcc 13 and Triton output) lowers; only `.version` changes."""
    seen = {}
    # Other tests register kernels of their own (a .version 8.0 one, say): the corpus only,
    # the kernels whose PTX is checked in under kernels/.
    home = Path(kernels.__file__).resolve().parent
    corpus = [k for k in sorted(kernels.list_kernels()) if home in kernels.load(k).ptx_path.parents]
    for kid in corpus:
        ptx = kernels.load(kid).ptx()
        lowered, needs = lower_isa(ptx)
        assert needs.unknown == (), (kid, needs.unknown[:2])
        assert needs.declared in ((9, 0), (8, 8))
        seen[kid] = needs.lowest
        diff = [
            ln
            for ln in difflib.unified_diff(ptx.splitlines(), lowered.splitlines(), n=0)
            if ln[:1] in "+-" and not ln.startswith(("+++", "---"))
        ]
        assert diff == [f"-.version {needs.declared[0]}.{needs.declared[1]}", "+.version 7.0"]
    assert set(seen.values()) == {(7, 0)}  # every kernel targets sm_80: .target binds
    assert len(seen) == len(corpus) >= 194


def test_what_binds_is_named_with_its_line() -> None:
    ptx = module("\tld.global.L2::256B.u32 %r2, [%rd2];")
    needs = required_isa(ptx)
    assert needs.lowest == (7, 4)
    assert needs.binding is not None
    line = ptx.splitlines().index("\tld.global.L2::256B.u32 %r2, [%rd2];") + 1
    assert needs.binding.line == line and "L2::256B" in needs.binding.what
    assert "line" in needs.binding.describe() and "7.4" in needs.binding.describe()


@pytest.mark.parametrize(
    "body",
    [
        "\twgmma.fence.sync.aligned;",  # an opcode the table lacks
        "\tld.global.L1::evict_last.L2::cache_hint.L2::256B.v8.f32 %r2, [%rd2], %rd3;",
        "\tbar.cluster.arrive;",  # a known opcode with an unknown modifier
        "\tmov.u32 %r2, %aggr_smem_size;",  # a special register the table lacks
    ],
)
def test_anything_unknown_keeps_the_declared_version(body: str) -> None:
    ptx = module(body)
    lowered, needs = lower_isa(ptx)
    assert needs.unknown and lowered == ptx and declared_isa(lowered) == (9, 0)
    assert "does not know" in needs.unknown[0].describe()


def test_unknown_directive_and_target_keep_the_version() -> None:
    for ptx in (module("", decl=".blocksareclusters"), module("", target="sm_999")):
        assert lower_isa(ptx)[0] == ptx


def test_a_module_is_never_raised_and_needs_a_version_line() -> None:
    old = module("").replace(".version 9.0", ".version 6.5")
    assert lower_isa(old)[0] == old  # sm_80 needs 7.0: more than it says, left alone
    turing = old.replace("sm_80", "sm_75")
    assert declared_isa(lower_isa(turing)[0]) == (6, 3)
    with pytest.raises(ValueError, match="no .version"):
        with_version(".target sm_80\n", (7, 0))


def test_table_rows_cite_a_section() -> None:
    rows = [*OPCODES.values(), *MODIFIERS.values(), *TARGETS.values()]
    assert all(r.section and r.isa >= (1, 0) for r in rows)


ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = sorted([*(ROOT / "tests" / "data").rglob("*.ptx"), *(ROOT / "examples").rglob("*.ptx")])


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("path", OUTSIDE, ids=lambda p: p.name)
def test_ptx_from_outside_the_corpus_lowers_and_assembles(path: Path) -> None:
    """nvcc with printf and launch bounds, nvcc -G (DWARF sections), Triton for sm_90a: the
    lowered text assembles (with a CUDA 12 ptxas where one is installed)."""
    from chronos.assemble.ptxas import cuda_major

    ptx = path.read_text()
    lowered, needs = lower_isa(ptx)
    assert needs.unknown == () and needs.lowest < needs.declared
    target = re.search(r"^\.target\s+(\w+)", ptx, re.M)[1]
    debug = ".debug_info" in ptx
    exes = [e for e in candidates() if cuda_major(e) == 12] or candidates()[:1]
    assemble(
        lowered,
        target,
        opt_level=0 if debug else 3,
        extra_args=["--device-debug"] if debug else (),
        ptxas=exes[0],
    )
