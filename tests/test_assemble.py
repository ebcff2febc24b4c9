"""ptxas wrapper: resources, SASS count, .text hash, errors, lookup, cache, parallel assembly."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from chronos.assemble import (
    Assembly,
    ElfError,
    PtxasError,
    PtxasNotFoundError,
    PtxasTimeoutError,
    assemble,
    assemble_many,
    cache_clear,
    cache_info,
    count_instructions,
    find_ptxas,
    parse_errors,
    parse_resources,
    text_sections,
)
from chronos.assemble import ptxas as ptxas_module
from chronos.assemble.__main__ import main
from chronos.assemble.sass import NOP

ARCHS = pytest.mark.parametrize("arch", ["sm_80", "sm_90"])

DATA = Path(__file__).parent / "data"
HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def vector_op(op: str = "add", extra: int = 0) -> str:
    """c[i] = a[i] <op> b[i], then `extra` dependent FMAs with a runtime scalar (not foldable)."""
    body = [
        "ld.param.u64 %rd1, [a];",
        "ld.param.u64 %rd2, [b];",
        "ld.param.u64 %rd3, [c];",
        "ld.param.u32 %r2, [n];",
        "ld.param.f32 %f9, [s];",
        "mov.u32 %r3, %ctaid.x;",
        "mov.u32 %r4, %ntid.x;",
        "mov.u32 %r5, %tid.x;",
        "mad.lo.s32 %r1, %r3, %r4, %r5;",
        "setp.ge.s32 %p1, %r1, %r2;",
        "@%p1 bra DONE;",
        "cvta.to.global.u64 %rd4, %rd1;",
        "cvta.to.global.u64 %rd5, %rd2;",
        "cvta.to.global.u64 %rd6, %rd3;",
        "mul.wide.s32 %rd7, %r1, 4;",
        "add.s64 %rd8, %rd4, %rd7;",
        "add.s64 %rd9, %rd5, %rd7;",
        "add.s64 %rd10, %rd6, %rd7;",
        "ld.global.f32 %f1, [%rd8];",
        "ld.global.f32 %f2, [%rd9];",
        f"{op}.f32 %f3, %f1, %f2;",
        *[f"fma.rn.f32 %f3, %f3, %f9, %f{1 + i % 2};" for i in range(extra)],
        "st.global.f32 [%rd10], %f3;",
        "DONE:",
        "ret;",
    ]
    return (
        HEADER
        + "\n.visible .entry vop(\n    .param .u64 a, .param .u64 b, .param .u64 c,\n"
        + "    .param .u32 n, .param .f32 s\n)\n{\n"
        + "    .reg .pred %p<2>;\n    .reg .b32 %r<6>;\n    .reg .f32 %f<10>;\n"
        + "    .reg .b64 %rd<11>;\n"
        + "".join(f"    {line}\n" for line in body)
        + "}\n"
    )


def register_hog(n: int = 96, maxnreg: int | None = None) -> str:
    """Loads n floats, then a barrier, then stores them reversed: all n live at the barrier."""
    lines = [HEADER, ".visible .entry hog(.param .u64 a, .param .u64 b)"]
    if maxnreg is not None:
        lines.append(f".maxnreg {maxnreg}")
    lines += [
        "{",
        f"    .reg .f32 %f<{n}>;",
        "    .reg .b64 %rd<5>;",
        "    ld.param.u64 %rd1, [a];",
        "    ld.param.u64 %rd2, [b];",
        "    cvta.to.global.u64 %rd3, %rd1;",
        "    cvta.to.global.u64 %rd4, %rd2;",
        *[f"    ld.global.f32 %f{i}, [%rd3+{4 * i}];" for i in range(n)],
        "    bar.sync 0;",
        *[f"    st.global.f32 [%rd4+{4 * i}], %f{n - 1 - i};" for i in range(n)],
        "    ret;",
        "}",
    ]
    return "\n".join(lines) + "\n"


# --- no ptxas needed ------------------------------------------------------------------------

LOG_SM80 = """\
ptxas info    : 400 bytes gmem, 256 bytes cmem[3]
ptxas info    : Compiling entry function 'shm' for 'sm_80'
ptxas info    : Function properties for shm
    64 bytes stack frame, 8 bytes spill stores, 12 bytes spill loads
ptxas info    : Used 8 registers, used 1 barriers, 96 bytes cumulative stack size, \
1024 bytes smem, 360 bytes cmem[0], 8 bytes cmem[2]
ptxas info    : Compile time = 9.637 ms
ptxas info    : Function properties for helper
    32 bytes stack frame, 4 bytes spill stores, 4 bytes spill loads
ptxas info    : Compiling entry function '_Z4vaddPfS_S_i' for 'sm_80'
ptxas info    : Function properties for _Z4vaddPfS_S_i
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers, 380 bytes cmem[0]
ptxas info    : Compile time = 0.917 ms
"""

LOG_SM90 = """\
ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'vadd' for 'sm_90'
ptxas info    : Function properties for vadd
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 12 registers, used 0 barriers
ptxas info    : Compile time = 1.066 ms
"""


def test_parse_resources_ptxas13_format() -> None:
    res = parse_resources(LOG_SM80)
    assert list(res) == ["shm", "_Z4vaddPfS_S_i"]
    shm = res["shm"]
    assert (shm.registers, shm.barriers, shm.shared_bytes) == (8, 1, 1024)
    assert (shm.spill_stores, shm.spill_loads, shm.spill_bytes) == (8, 12, 20)
    assert shm.stack_bytes == 96  # cumulative (with callees) beats the entry's own frame
    assert shm.const_bytes == 368  # every cmem bank on the Used line
    vadd = res["_Z4vaddPfS_S_i"]
    assert (vadd.registers, vadd.spill_bytes, vadd.stack_bytes, vadd.const_bytes) == (12, 0, 0, 380)
    sm90 = parse_resources(LOG_SM90)["vadd"]  # sm_90 prints no cmem[0] item
    assert (sm90.registers, sm90.const_bytes, sm90.shared_bytes) == (12, 0, 0)


def test_parse_errors() -> None:
    log = (
        "ptxas kernel.ptx, line 12; error   : Unknown symbol '%r9'\n"
        "ptxas kernel.ptx, line 3; warning : something harmless\n"
        "ptxas kernel.ptx, line 7; error   : Arguments mismatch for instruction 'add'\n"
        "ptxas fatal   : Ptx assembly aborted due to errors\n"
    )
    assert parse_errors(log) == [
        (7, "Arguments mismatch for instruction 'add'"),
        (12, "Unknown symbol '%r9'"),
    ]


def test_ptxas_error_message_quotes_the_line_and_pickles() -> None:
    ptx = "a\nb\n  add.u32 %r2, %r1, %r9;\n"
    log = "ptxas kernel.ptx, line 3; error   : Unknown symbol '%r9'\nptxas fatal   : aborted\n"
    err = PtxasError.from_log(255, log, ptx)
    assert err.errors == [(3, "Unknown symbol '%r9'")] and err.returncode == 255
    assert "line 3: add.u32 %r2, %r1, %r9;" in str(err) and "Unknown symbol" in str(err)
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.errors, back.log, back.returncode) == (
        str(err),
        err.errors,
        err.log,
        255,
    )
    fatal_only = PtxasError.from_log(255, "ptxas fatal   : Value 'sm_99' is not defined\n", ptx)
    assert "sm_99" in str(fatal_only) and fatal_only.errors == []


def test_fatal_diagnostics_keep_the_cause_and_the_line() -> None:
    """ptxas reports some causes as `line N; fatal`; the "aborted" summary is not the cause."""
    ptx = "//\n\n\n\n.version 9.4\n.target sm_90a\n"
    log = (
        "ptxas kernel.ptx, line 5; fatal   : Unsupported .version 9.4; current version is '9.0'\n"
        "ptxas fatal   : Ptx assembly aborted due to errors\n"
    )
    err = PtxasError.from_log(255, log, ptx)
    assert err.errors == [(5, "Unsupported .version 9.4; current version is '9.0'")]
    assert "line 5: .version 9.4" in str(err) and "Unsupported .version 9.4" in str(err)
    assert "aborted" not in str(err)


@pytest.mark.requires_ptxas
def test_ptxas_parse_error_names_its_line() -> None:
    lines = vector_op().splitlines()
    n = next(i for i, line in enumerate(lines) if "st.global" in line)
    lines[n] = lines[n].replace(";", "")
    with pytest.raises(PtxasError) as info:
        assemble("\n".join(lines) + "\n", "sm_80")
    assert info.value.errors and "Parsing error" in info.value.errors[0][1]
    assert f"line {info.value.errors[0][0]}:" in str(info.value)


def _insn(lo: int, hi: int = 0x000FC00000000000) -> bytes:
    return struct.pack("<QQ", lo, hi)


@pytest.mark.parametrize("self_branch", [0xFFFFFFF000007947, 0xFFFFFFFC00FC7947])
def test_count_skips_trailing_trap_and_padding(self_branch: int) -> None:
    body = _insn(0x00000A0000017A02) + _insn(NOP) + _insn(0x000000000000794D)  # MOV NOP EXIT
    text = body + _insn(self_branch, 0x000FC0000383FFFF) + _insn(NOP) * 4
    assert count_instructions(text) == 3  # the NOP inside the code counts
    assert count_instructions(body) == 3
    assert count_instructions(b"") == 0
    with pytest.raises(ValueError, match="multiple of 16"):
        count_instructions(b"\0" * 8)


def test_elf_reader_rejects_junk() -> None:
    with pytest.raises(ElfError):
        text_sections(b"not an elf file at all, just bytes" * 3)
    with pytest.raises(ElfError):
        text_sections(b"\x7fELF\x01\x01" + b"\0" * 80)  # ELF32


def test_not_found_when_chronos_ptxas_points_nowhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHRONOS_PTXAS", str(tmp_path / "no-such-ptxas"))
    monkeypatch.setenv("PATH", "")
    with pytest.raises(PtxasNotFoundError, match="CHRONOS_PTXAS") as info:
        find_ptxas()
    assert "pip install nvidia-cuda-nvcc" in str(info.value)
    with pytest.raises(PtxasNotFoundError):
        assemble(vector_op(), "sm_80")
    with pytest.raises(PtxasNotFoundError):
        assemble_many([vector_op()], "sm_80")


def test_not_found_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHRONOS_PTXAS", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))
    monkeypatch.setattr(ptxas_module, "DEFAULT_DIRS", (tmp_path / "cuda" / "bin",))
    monkeypatch.setattr(ptxas_module, "wheel_ptxas", lambda: None)
    with pytest.raises(PtxasNotFoundError) as info:
        find_ptxas()
    msg = str(info.value)
    assert "pip install nvidia-cuda-nvcc" in msg and "[ptxas]" in msg and "CHRONOS_PTXAS" in msg


def _fake_exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    path.chmod(0o755)
    return path


@pytest.mark.skipif(os.name != "posix", reason="shell-script stand-in for ptxas")
def test_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    explicit = _fake_exe(tmp_path / "explicit" / "ptxas")
    on_path = _fake_exe(tmp_path / "path" / "ptxas")
    cuda_home = _fake_exe(tmp_path / "cuda" / "bin" / "ptxas")
    monkeypatch.setenv("CHRONOS_PTXAS", str(explicit))
    monkeypatch.setenv("PATH", str(on_path.parent))
    monkeypatch.setenv("CUDA_HOME", str(tmp_path / "cuda"))
    assert find_ptxas() == explicit.resolve()
    monkeypatch.delenv("CHRONOS_PTXAS")
    assert find_ptxas() == on_path.resolve()
    monkeypatch.setenv("PATH", "")
    assert find_ptxas() == cuda_home.resolve()
    assert ptxas_module.ptxas_version(cuda_home) == "13.0.88"


@pytest.mark.skipif(os.name != "posix", reason="shell-script stand-in for ptxas")
@pytest.mark.parametrize("layout", ["cu13/bin", "cuda_nvcc/bin"])
def test_wheel_layouts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, layout: str) -> None:
    """nvidia-cuda-nvcc 13.x installs nvidia/cu13/bin/ptxas; the -cu12 wheels nvidia/cuda_nvcc."""
    exe = _fake_exe(tmp_path / "site" / "nvidia" / layout / "ptxas")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delitem(sys.modules, "nvidia", raising=False)
    monkeypatch.delenv("CHRONOS_PTXAS", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.delenv("CUDA_HOME", raising=False)
    monkeypatch.setattr(ptxas_module, "DEFAULT_DIRS", ())
    assert find_ptxas() == exe.resolve()
    assert "nvidia" not in sys.modules or not hasattr(sys.modules["nvidia"], "__file__")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="sm_70 or newer"):
        assemble(vector_op(), "sm_61")
    with pytest.raises(ValueError, match="sm_70 or newer"):
        assemble(vector_op(), "compute_90")
    with pytest.raises(ValueError, match="opt_level"):
        assemble(vector_op(), "sm_80", opt_level=4)
    with pytest.raises(ValueError, match="extra_args"):
        assemble(vector_op(), "sm_80", extra_args=["-o", "x.cubin"])


# --- with ptxas -----------------------------------------------------------------------------


@pytest.mark.requires_ptxas
@ARCHS
def test_vector_add(arch: str) -> None:
    asm = assemble(vector_op(), arch)
    assert isinstance(asm, Assembly) and asm.arch == arch
    assert asm.entries == ["vop"]
    res = asm.resources["vop"]
    assert res.registers > 0 and res.spill_bytes == 0 and res.barriers == 0
    assert 5 < asm.sass_instructions["vop"] < 64
    assert asm.cubin[:4] == b"\x7fELF"
    assert re.fullmatch(r"\d+\.\d+(\.\d+)?", asm.ptxas_version)
    assert "Compiling entry function 'vop'" in asm.log
    assert len(asm.module_text_sha256) == 64 and set(asm.text_sha256) == {"vop"}
    assert pickle.loads(pickle.dumps(asm)) == asm  # crosses process boundaries


@pytest.mark.requires_ptxas
@ARCHS
def test_sass_count_grows_with_code(arch: str) -> None:
    base = assemble(vector_op(), arch).sass_instructions["vop"]
    more = assemble(vector_op(extra=6), arch).sass_instructions["vop"]
    assert more >= base + 6


@pytest.mark.requires_ptxas
@ARCHS
def test_text_hash_stable_and_discriminating(arch: str) -> None:
    first = assemble(vector_op("add"), arch)
    cache_clear()
    again = assemble(vector_op("add"), arch)  # a fresh ptxas run
    assert again.module_text_sha256 == first.module_text_sha256
    assert again.text_sha256 == first.text_sha256
    other = assemble(vector_op("sub"), arch)
    assert other.module_text_sha256 != first.module_text_sha256
    assert other.text_sha256["vop"] != first.text_sha256["vop"]
    # a PTX-only difference that ptxas normalises away leaves the SASS hash alone
    commented = assemble(vector_op("add").replace("ret;", "ret; // done"), arch)
    assert commented.ptx_sha256 != first.ptx_sha256
    assert commented.module_text_sha256 == first.module_text_sha256


@pytest.mark.requires_ptxas
@ARCHS
def test_maxnreg_caps_registers_and_spills(arch: str) -> None:
    free = assemble(register_hog(96), arch).resources["hog"]
    capped = assemble(register_hog(96, maxnreg=32), arch).resources["hog"]
    assert free.registers > 64 and free.spill_bytes == 0
    assert capped.registers <= 32 < free.registers
    assert capped.spill_stores > 0 and capped.spill_loads > 0 and capped.stack_bytes > 0
    assert capped.barriers == 1


@pytest.mark.requires_ptxas
@ARCHS
def test_invalid_ptx_reports_the_line(arch: str) -> None:
    lines = vector_op().splitlines()
    bad = lines.index("    add.f32 %f3, %f1, %f2;") + 1
    lines[bad - 1] = "    add.f32 %f3, %f1, %f77;"  # %f77 is not declared
    with pytest.raises(PtxasError) as info:
        assemble("\n".join(lines) + "\n", arch)
    err = info.value
    assert err.returncode != 0 and err.errors
    assert {line for line, _ in err.errors} == {bad}
    assert any("%f77" in msg for _, msg in err.errors)
    assert f"line {bad}: add.f32 %f3, %f1, %f77;" in str(err)
    assert "error" in err.log


@pytest.mark.requires_ptxas
def test_target_above_arch_is_a_ptxas_error() -> None:
    ptx = vector_op().replace(".target sm_80", ".target sm_90")
    with pytest.raises(PtxasError, match="SM version"):
        assemble(ptx, "sm_80")


@pytest.mark.requires_ptxas
def test_cache_hits_and_isolation() -> None:
    cache_clear()
    ptx = vector_op(extra=3)
    first = assemble(ptx, "sm_80")
    assert cache_info().misses == 1 and cache_info().hits == 0
    second = assemble(ptx, "sm_80")
    assert cache_info().hits == 1 and second == first
    second.resources.clear()
    assert assemble(ptx, "sm_80").resources == first.resources
    assemble(ptx, "sm_90")
    assemble(ptx, "sm_80", opt_level=1)
    assemble(ptx, "sm_80", extra_args=["--maxrregcount=32"])
    assert cache_info().misses == 4  # arch and options are part of the key
    bad = ptx.replace("%f9, [s]", "%f99, [s]")
    for _ in range(2):
        with pytest.raises(PtxasError):
            assemble(bad, "sm_80")
    assert cache_info().misses == 5  # rejections are cached too


@pytest.mark.requires_ptxas
def test_timeout_is_not_cached() -> None:
    cache_clear()
    ptx = register_hog(120, maxnreg=32)
    with pytest.raises(PtxasTimeoutError):
        assemble(ptx, "sm_90", timeout=1e-4)
    assert assemble(ptx, "sm_90").resources["hog"].registers <= 32


@pytest.mark.requires_ptxas
def test_assemble_many_keeps_order_and_returns_errors() -> None:
    cache_clear()
    bad = vector_op().replace("ret;", "bogus;")
    ptxs = [vector_op("add"), bad, vector_op("sub"), vector_op("add"), vector_op(extra=2)]
    out = assemble_many(ptxs, "sm_80", workers=4)
    assert [type(o).__name__ for o in out] == [
        "Assembly",
        "PtxasError",
        "Assembly",
        "Assembly",
        "Assembly",
    ]
    assert isinstance(out[1], PtxasError) and out[1].errors
    assert out[0].module_text_sha256 == out[3].module_text_sha256
    assert out[0].module_text_sha256 != out[2].module_text_sha256
    assert cache_info().misses == 4  # the duplicate ran ptxas once
    serial = assemble_many(ptxs, "sm_80", workers=1)
    assert [getattr(o, "module_text_sha256", None) for o in serial] == [
        getattr(o, "module_text_sha256", None) for o in out
    ]


@pytest.mark.requires_ptxas
def test_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "hog.ptx"
    src.write_text(register_hog(64, maxnreg=32))
    assert main([str(src), "--arch", "sm_80"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("hog"))
    regs, spill_st, spill_ld, *_, sass = row.split()[1:]
    assert int(regs) <= 32 and int(spill_st) > 0 and int(spill_ld) > 0 and int(sass) > 64
    src.write_text(vector_op().replace("ret;", "bogus;"))
    assert main([str(src)]) == 1
    assert "error" in capsys.readouterr().err


def _nvdisasm() -> str | None:
    found = shutil.which("nvdisasm")
    if found:
        return found
    for root in sys.path:
        candidate = Path(root or ".", "nvidia", "cu13", "bin", "nvdisasm")
        if candidate.is_file():
            return str(candidate)
    return None


def _disassembler_count(listing: str) -> dict[str, int]:
    """Per function: instructions up to the last one that is neither NOP nor a BRA to itself."""
    counts: dict[str, int] = {}
    name, insns, labels, pending = None, [], {}, []
    for line in [*listing.splitlines(), ".section .text.END,"]:
        if m := re.match(r"\s*\.section\s+\.text\.(\S+?),", line):
            if name is not None:
                n = len(insns)
                while n and insns[n - 1][1].startswith("NOP"):
                    n -= 1
                if n and (b := re.match(r"BRA\s+`\((\S+?)\)", insns[n - 1][1])):
                    n -= labels.get(b[1]) == insns[n - 1][0]
                counts[name] = n
            name, insns, labels, pending = m[1], [], {}, []
        elif m := re.match(r"^(\.L_x_\d+):", line):
            pending.append(m[1])
        elif m := re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P\w+\s+)?(.*?)\s*;?\s*/\*", line):
            labels.update((label, int(m[1], 16)) for label in pending)
            pending = []
            insns.append((int(m[1], 16), m[2]))
    return counts


@pytest.mark.requires_ptxas
@pytest.mark.skipif(_nvdisasm() is None, reason="needs nvdisasm (pip install nvidia-cuda-nvdisasm)")
@ARCHS
def test_sass_count_matches_nvdisasm(arch: str, tmp_path: Path) -> None:
    nvdisasm = _nvdisasm()
    assert nvdisasm is not None
    for ptx in (vector_op(), vector_op(extra=5), register_hog(64, maxnreg=32)):
        asm = assemble(ptx, arch)
        cubin = tmp_path / "k.cubin"
        cubin.write_bytes(asm.cubin)
        listing = subprocess.run(
            [nvdisasm, "-hex", "-c", str(cubin)], capture_output=True, text=True, check=True
        ).stdout
        assert _disassembler_count(listing) == asm.sass_instructions


@pytest.mark.requires_ptxas
def test_corpus_kernels_assemble() -> None:
    kernels = pytest.importorskip("kernels")
    if not hasattr(kernels, "list_kernels") or not hasattr(kernels, "load"):
        pytest.skip("kernels has no registry yet")
    specs = [kernels.load(k) for k in kernels.list_kernels()]
    if not specs:
        pytest.skip("no kernels registered")
    by_arch: dict[str, list] = {}
    for spec in specs:
        m = re.search(r"^\s*\.target\s+(sm_\d+[af]?)", spec.ptx(), re.M)
        by_arch.setdefault(max(m[1] if m else "sm_80", "sm_80"), []).append(spec)
    for arch, group in by_arch.items():
        results = assemble_many([s.ptx() for s in group], arch)
        for spec, result in zip(group, results, strict=True):
            assert isinstance(result, Assembly), f"{spec.id}: {result}"
            assert result.resources[spec.entry].registers > 0, spec.id
            assert result.sass_instructions[spec.entry] > 0, spec.id


# --- PTX ISA versions (issue 13, item 9) ------------------------------------------------------


def _triton(version: str) -> str:
    text = (DATA / "triton_add.ptx").read_text()
    return re.sub(r"(?m)^\.version .*$", f".version {version}", text)


@pytest.mark.requires_ptxas
def test_a_ptxas_that_takes_the_module_isa_is_chosen() -> None:
    """Triton emits `.version 9.4`; the CUDA 13.0 ptxas takes 9.0, the 13.5 wheel's 9.5."""
    from chronos.assemble import max_ptx_isa, ptx_isa
    from chronos.assemble.ptxas import candidates

    newest = max(filter(None, (max_ptx_isa(p) for p in candidates())), default=None)
    if newest is None or newest < (9, 4):
        pytest.skip("no ptxas here takes PTX ISA 9.4")
    ptx = _triton("9.4")
    assert ptx_isa(ptx) == (9, 4)
    asm = assemble(ptx, "sm_90a")
    assert asm.resources["add_kernel"].registers > 0
    chosen = ptxas_module.find_ptxas_for((9, 4))
    assert max_ptx_isa(chosen) >= (9, 4) and asm.ptxas_version == ptxas_module.ptxas_version(chosen)


@pytest.mark.requires_ptxas
def test_no_ptxas_for_the_isa_is_a_clear_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from chronos.assemble import PtxasIsaError, PtxasNotFoundError

    with pytest.raises(PtxasIsaError, match=r"ISA 99\.0 \(\.version\), which none") as info:
        assemble(_triton("99.0"), "sm_90a")
    assert isinstance(info.value, PtxasNotFoundError)  # setup, never an invalid kernel


@pytest.mark.requires_ptxas
def test_sm_90a_targets_assemble_without_extra_options() -> None:
    """`.target sm_90a` asked for as sm_90 (the backends' default arch) assembles for sm_90a."""
    asm = assemble((DATA / "triton_add.ptx").read_text(), "sm_90")
    assert asm.arch == "sm_90a" and asm.resources["add_kernel"].registers > 0
