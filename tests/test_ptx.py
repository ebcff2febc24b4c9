"""PTX parser/printer: exact round trip, structure, edits, and errors that name the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chronos.ptx import Instruction, PtxParseError, parse, parse_instruction

DATA = Path(__file__).parent / "data"
FOREIGN = sorted(DATA.glob("*.ptx"))


def corpus_ids() -> list[str]:
    try:
        from kernels import list_kernels
    except ImportError:
        return []
    return list_kernels()


@pytest.mark.parametrize("path", FOREIGN, ids=lambda p: p.name)
def test_round_trip_foreign(path: Path) -> None:
    text = path.read_text()
    assert str(parse(text)) == text


@pytest.mark.parametrize("kernel_id", corpus_ids())
def test_round_trip_corpus_and_render(kernel_id: str) -> None:
    from kernels import load

    spec = load(kernel_id)
    text = spec.ptx()
    module = parse(text)
    assert str(module) == text
    entry = module.entry(spec.entry)
    assert entry.params and entry.instructions()
    for ins in entry.instructions():
        again = parse_instruction(ins.render())
        assert (again.guard, again.mnemonic, again.operands) == (
            ins.guard,
            ins.mnemonic,
            ins.operands,
        )


def test_round_trip_crlf_and_no_trailing_newline() -> None:
    text = ".version 8.0\r\n.target sm_80\r\n.address_size 64\r\n.entry k()\r\n{\r\n\tret;\r\n}"
    module = parse(text)
    assert str(module) == text
    assert module.entry("k").instructions()[0].opcode == "ret"


def test_structure_of_nvcc_output() -> None:
    module = parse((DATA / "nvcc_printf_launch_bounds.ptx").read_text())
    assert module.version == "9.0"
    assert module.target == "sm_80"
    names = [f.name for f in module.functions]
    assert names == ["_Z2sqf", "vadd", "_Z2f2Pf"]
    vadd = module.entry("vadd")
    assert [p.name for p in vadd.params] == [f"vadd_param_{i}" for i in range(4)]
    assert vadd.params[0].type == ".u64"
    f2 = module.entry("_Z2f2Pf")
    assert f2.directives == {".maxntid": "128, 1, 1", ".minnctapersm": "2"}
    decls = {d.name: d for d in vadd.reg_decls()}
    assert decls["%r"].count > 0 and decls["%r"].type == ".b32"
    assert len(decls["%r"].names()) == decls["%r"].count
    variables = [d.text for d in module.module_variables()]
    assert any("gvar" in v for v in variables) and any("cvar" in v for v in variables)
    sq = module.functions[0]
    assert not sq.is_entry and [p.name for p in sq.return_params] == ["func_retval0"]


def test_basic_blocks_and_loops() -> None:
    module = parse((DATA / "nvcc_printf_launch_bounds.ptx").read_text())
    blocks = module.entry("vadd").basic_blocks()
    assert len(blocks) > 3
    back_edges = [(i, s) for i, b in enumerate(blocks) for s in b.successors if s <= i]
    assert back_edges, "the printf loop must show up as a back edge"
    labelled = {b.label for b in blocks if b.label}
    for b in blocks:
        last = b.instructions[-1] if b.instructions else None
        if last is not None and last.opcode == "bra":
            assert last.operands[0] in labelled


def test_instruction_fields_from_triton_style_ptx() -> None:
    module = parse((DATA / "triton_add.ptx").read_text())
    entry = module.entry("add_kernel")
    assert entry.directives == {".reqntid": "128, 1, 1"}
    assert entry.params[0].align == 16
    ins = {i.mnemonic: i for i in entry.instructions()}
    vload = ins["ld.global.v4.b32"]
    assert vload.guard == "@%p1"
    assert vload.dests == ("%r2", "%r3", "%r4", "%r5")
    assert vload.vector_width == 4 and vload.space == ".global" and vload.type == ".b32"
    addr = vload.address()
    assert addr is not None and (addr.base, addr.offset) == ("%rd4", 0)
    ret = [i for i in entry.instructions() if i.opcode == "ret"]
    assert ret[0].guard == "@!%p1" and ret[1].guard is None
    # two statements on one line after a block comment
    adds = [i for i in entry.instructions() if i.mnemonic == "add.s32"]
    assert len(adds) == 2 and adds[0].span.line == adds[1].span.line


def test_parse_instruction_details() -> None:
    ins = parse_instruction("@!%p3 ld.global.nc.L2::256B.v2.f32 \t{%f1, %f2}, [%rd9+-8];")
    assert ins.modifiers == (".global", ".nc", ".L2::256B", ".v2", ".f32")
    assert ins.guard == "@!%p3"
    setp = parse_instruction("setp.lt.and.s32 %p1|%p2, %r1, %r2, %p3;")
    assert setp.dests == ("%p1", "%p2")
    st_ = parse_instruction("st.shared.f32 [%r5+132], %f7;")
    assert st_.dests == () and st_.address().offset == 132
    assert "%f7" in st_.registers_read()


def test_editor_replace_insert_delete() -> None:
    text = (DATA / "triton_add.ptx").read_text()
    module = parse(text)
    entry = module.entry("add_kernel")
    first = entry.instructions()[0]
    last_ret = [i for i in entry.instructions() if i.opcode == "ret"][-1]
    new = (
        module.edit()
        .replace(first, first.with_(modifiers=(".param", ".u64")).render())
        .insert_before(last_ret, ["bar.sync \t0;"])
        .delete([i for i in entry.instructions() if i.opcode == "setp"][0])
        .apply()
    )
    entry2 = new.entry("add_kernel")
    ops = [i.opcode for i in entry2.instructions()]
    assert "setp" not in ops
    assert ops[-2:] == ["bar", "ret"]
    assert str(new).count("\n") == text.count("\n")  # one line in, one line out


def test_overlapping_edits_are_refused() -> None:
    module = parse((DATA / "triton_add.ptx").read_text())
    ins = module.entry().instructions()[0]
    with pytest.raises(ValueError, match="overlapping"):
        module.edit().replace(ins, "a;").replace(ins, "b;").text()


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        (".version 8.0\n.entry k()\n{\n\tadd.s32 %r1, %r2\n}\n", 4, 2, "missing its ';'"),
        # a `;` missing mid-body: the next line starts an instruction (issue 13, item 10)
        (".entry k()\n{\n\tmov.u32 %r1, %tid.x\n\tsetp.lt.s32 %p1, %r1, 9;\n}\n", 3, 2, "its ';'"),
        (".entry k()\n{\n\tmov.u32 %r1, 1\n\t@%p1 bra L;\n}\n", 3, 2, "missing its ';'"),
        (".entry k()\n{\n\tmov.u32 %r1, 1\n\tret;\n}\n", 3, 2, "missing its ';'"),
        (".entry k()\n{\n\tret;\n}\n}\n", 5, 1, "unmatched '}'"),
        (".entry k()\n{\n\tret;\n", 2, 1, "unclosed '{'"),
        ("add.s32 %r1, %r2, %r3;\n", 1, 1, "outside a function body"),
        (".entry k()\n{\n\tld.global.f32 %f1, [%rd1;\n}\n", 3, 26, "inside brackets"),
        (".entry k()\n{\n\t/* never closed\n}\n", 3, 2, "unterminated block comment"),
        (".entry k()\n{\n\t12abc %r1;\n}\n", 3, 2, "malformed instruction"),
        (".entry ()\n{\n}\n", 1, 1, "malformed .entry name"),
        ('.pragma "open;\n', 1, 9, "unterminated string"),
    ],
)
def test_errors_name_line_and_column(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(PtxParseError) as info:
        parse(text)
    err = info.value
    assert (err.line, err.column) == (line, col)
    assert fragment in str(err) and f"line {line}" in str(err)


_ident = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_reg = st.builds(
    lambda p, n: f"%{p}{n}", st.sampled_from(["r", "rd", "f", "p"]), st.integers(0, 99)
)
_operand = st.one_of(
    _reg,
    st.integers(-1000, 1000).map(str),
    st.builds(lambda r, o: f"[{r}+{o}]", _reg, st.integers(0, 512)),
    st.lists(_reg, min_size=2, max_size=4).map(lambda rs: "{" + ", ".join(rs) + "}"),
)
_instruction = st.builds(
    lambda g, op, mods, ops: (
        (f"@{g} " if g else "")
        + op
        + "".join("." + m for m in mods)
        + (" \t" + ", ".join(ops) if ops else "")
        + ";"
    ),
    st.one_of(st.none(), st.sampled_from(["%p1", "!%p2"])),
    _ident,
    st.lists(st.sampled_from(["global", "f32", "v4", "nc", "L2::256B", "u64"]), max_size=3),
    st.lists(_operand, max_size=4),
)
_body_line = st.one_of(
    _instruction,
    st.builds(lambda n: f"$L__BB0_{n}:", st.integers(0, 9)),
    st.just("// a comment"),
    st.just(""),
    st.builds(lambda n: f".reg .b32 %r<{n}>;", st.integers(1, 50)),
    st.builds(lambda a, b: f".loc 1 {a} {b}", st.integers(0, 99), st.integers(0, 9)),
)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(_body_line, max_size=30),
    indent=st.sampled_from(["\t", "    ", ""]),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_property_round_trip_and_instruction_model(lines, indent, newline) -> None:
    body = newline.join(indent + ln for ln in lines)
    text = newline.join([".version 8.0", ".target sm_80", ".entry k(", ".param .u64 a", ")", "{"])
    text += newline + body + newline + "}" + newline
    module = parse(text)
    assert str(module) == text
    instrs = module.entry("k").instructions()
    assert len(instrs) == sum(1 for ln in lines if ln.endswith(";") and not ln.startswith("."))
    for ins in instrs:
        again = parse_instruction(ins.render())
        assert isinstance(again, Instruction)
        assert (again.guard, again.mnemonic, again.operands) == (
            ins.guard,
            ins.mnemonic,
            ins.operands,
        )


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_property_garbage_raises_only_parse_errors(text: str) -> None:
    try:
        module = parse(text)
    except PtxParseError as err:
        assert err.line >= 1 and err.column >= 1
    else:
        assert str(module) == text


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=list(';{}()[]:%.@!,\n\t "/*abc01$'), max_size=120),
)
def test_property_punctuation_soup_raises_only_parse_errors(text: str) -> None:
    try:
        parse(".entry k()\n{\n" + text + "\n}\n")
    except PtxParseError:
        pass
