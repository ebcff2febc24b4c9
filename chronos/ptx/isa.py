"""The lowest PTX ISA version a module needs, and `.version` rewritten to it (ISA lowering).

nvcc 13 writes `.version 9.0` and Triton `.version 8.8` into every module, whatever the code
uses; a CUDA 12 driver (and a CUDA 12 ptxas) refuses anything newer than its own ISA, although
the corpus and everything the transforms add is ISA 7.x. `required_isa` finds what a module
really needs from the table below, built out of the "PTX ISA Notes" of each instruction,
directive, special register and target in NVIDIA's PTX ISA document (sections named per
row; https://docs.nvidia.com/cuda/parallel-thread-execution/). `lower_isa` rewrites the
`.version` line and nothing else.

The table is conservative: an opcode, modifier, directive or target it does not know pins the
module to its declared version (it is never lowered past what cannot be vouched for), and the
result names that statement. `tests/test_ptx_isa.py` checks the rows against ptxas itself,
which rejects a feature used under too low a `.version`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from chronos.ptx.model import Directive, Instruction, parse_reg_decl
from chronos.ptx.parse import parse

Isa = tuple[int, int]
DOC = "https://docs.nvidia.com/cuda/parallel-thread-execution/"


@dataclass(frozen=True)
class Row:
    """One table row: `isa` is when the feature was introduced; `section` cites where."""

    isa: Isa
    section: str
    own: frozenset[str] = frozenset()
    """For an opcode: the modifiers it came with (beyond the CLASSIC ones)."""


def _row(isa: str, section: str, own: str = "") -> Row:
    major, minor = isa.split(".")
    return Row((int(major), int(minor)), section, frozenset(own.split()))


CLASSIC = frozenset(
    (
        ".pred .b8 .b16 .b32 .b64 .u8 .u16 .u32 .u64 .s8 .s16 .s32 .s64 .f32 .f64 "
        ".eq .ne .lt .le .gt .ge .lo .ls .hi .hs .equ .neu .ltu .leu .gtu .geu .num .nan "
        ".and .or .xor .rn .rz .rm .rp .rni .rzi .rmi .rpi .ftz .sat .approx .full .wide "
        ".uni .global .shared .local .param .const .v2 .v4 .to"
    ).split()
)
"""Modifiers every opcode below takes in the form it had by PTX ISA 2.0 (types, comparisons,
rounding, .ftz/.approx/.full of ISA 1.4, state spaces, vectors): they never bind, since
`.address_size` (ISA 2.3, in every nvcc/Triton module) and any sm_5x+ `.target` need more."""

_ARITH = "Integer Arithmetic Instructions"
_FLOAT = "Floating-Point Instructions"
_HALF = "Half Precision Floating-Point Instructions"
_CMP = "Comparison and Selection Instructions"
_LOGIC = "Logic and Shift Instructions"
_MOVE = "Data Movement and Conversion Instructions"
_CTRL = "Control Flow Instructions"
_SYNC = "Parallel Synchronization and Communication Instructions"
_MMA = "Warp Level Matrix Multiply-Accumulate Instructions"
_MISC = "Miscellaneous Instructions"


def _rows(isa: str, section: str, names: str, own: str = "") -> dict[str, Row]:
    """One row per space-separated name, `section` formatted with it as {name}."""
    return {n: _row(isa, section.format(name=n), own) for n in names.split()}


_NOTES = "§9.7 {sec}: {{name}}, PTX ISA Notes"
OPCODES: dict[str, Row] = {
    **_rows("1.0", _NOTES.format(sec=_ARITH), "add sub mul mad mul24 mad24 sad div rem abs"),
    **_rows("1.0", _NOTES.format(sec=_ARITH), "neg min max"),
    **_rows("1.0", _NOTES.format(sec=_FLOAT), "rcp sqrt rsqrt sin cos lg2 ex2"),
    **_rows("1.0", _NOTES.format(sec=_CMP), "set setp selp slct"),
    **_rows("1.0", _NOTES.format(sec=_LOGIC), "and or xor not cnot shl shr"),
    **_rows("1.0", _NOTES.format(sec=_MOVE), "mov"),
    **_rows("1.0", _NOTES.format(sec=_CTRL), "bra call ret exit"),
    **_rows("1.0", _NOTES.format(sec=_MISC), "trap"),
    "ld": _row("1.0", f"§9.7 {_MOVE}: ld, PTX ISA Notes", ".ca .cg .cs .lu .cv .volatile"),
    "st": _row("1.0", f"§9.7 {_MOVE}: st, PTX ISA Notes", ".wb .cg .cs .wt .volatile"),
    "cvt": _row("1.0", f"§9.7 {_MOVE}: cvt, PTX ISA Notes", ".f16"),
    "bar": _row("1.0", f"§9.7 {_SYNC}: bar, PTX ISA Notes (bar.sync)", ".sync"),
    "atom": _row(
        "1.1",
        f"§9.7 {_SYNC}: atom, PTX ISA Notes",
        ".add .min .max .inc .dec .cas .exch .and .or .xor",
    ),
    "red": _row(
        "1.2", f"§9.7 {_SYNC}: red, PTX ISA Notes", ".add .min .max .inc .dec .and .or .xor"
    ),
    "barrier": _row(
        "6.0", f"§9.7 {_SYNC}: bar, barrier, PTX ISA Notes", ".sync .arrive .red .aligned"
    ),
    "vote": _row("1.2", f"§9.7 {_SYNC}: vote, PTX ISA Notes", ".all .any .uni"),
    "fma": _row("1.4", f"§9.7 {_FLOAT}: fma, PTX ISA Notes (fma.f64 1.4, fma.f32 2.0)"),
    "membar": _row("1.4", f"§9.7 {_SYNC}: membar, PTX ISA Notes", ".cta .gl"),
    **_rows("2.0", _NOTES.format(sec=_ARITH), "bfe bfi brev clz popc"),
    **_rows("2.0", _NOTES.format(sec=_ARITH), "bfind", ".shiftamt"),
    **_rows("2.0", _NOTES.format(sec=_LOGIC), "prmt", ".f4e .b4e .rc8 .ecl .ecr .rc16"),
    **_rows("2.0", _NOTES.format(sec=_FLOAT), "copysign"),
    **_rows(
        "2.0",
        _NOTES.format(sec=_FLOAT),
        "testp",
        ".finite .infinite .number .notanumber .normal .subnormal",
    ),
    **_rows("2.0", _NOTES.format(sec=_MOVE), "cvta isspacep"),
    **_rows("2.0", _NOTES.format(sec=_MOVE), "prefetch", ".L1 .L2"),
    **_rows("2.0", _NOTES.format(sec=_MOVE), "prefetchu", ".L1"),
    "shfl": _row("3.0", f"§9.7 {_MOVE}: shfl (deprecated), PTX ISA Notes", ".up .down .bfly .idx"),
    "shf": _row("3.1", f"§9.7 {_LOGIC}: shf, PTX ISA Notes", ".l .r .clamp .wrap"),
    "lop3": _row("4.3", f"§9.7 {_LOGIC}: lop3, PTX ISA Notes"),
    "tanh": _row("7.0", f"§9.7 {_FLOAT}: tanh, PTX ISA Notes (tanh.approx.f32, sm_75)"),
    "dp4a": _row("5.0", f"§9.7 {_ARITH}: dp4a, PTX ISA Notes"),
    "dp2a": _row("5.0", f"§9.7 {_ARITH}: dp2a, PTX ISA Notes"),
    "fence": _row("6.0", f"§9.7 {_SYNC}: membar/fence, PTX ISA Notes", ".sc .acq_rel .gpu .sys"),
    "activemask": _row("6.2", f"§9.7 {_SYNC}: activemask, PTX ISA Notes"),
    "nanosleep": _row("6.3", f"§9.7 {_MISC}: nanosleep, PTX ISA Notes"),
    "mma": _row(
        "6.4",
        f"§9.7 {_MMA}: mma, PTX ISA Notes (mma.sync.m8n8k4 in PTX ISA 6.4)",
        ".sync .aligned .row .col .m8n8k4 .f16",
    ),
    "ldmatrix": _row(
        "6.5",
        f"§9.7 {_MMA}: ldmatrix, PTX ISA Notes",
        ".sync .aligned .m8n8 .x1 .x2 .x4 .trans .b16",
    ),
    "cp": _row(
        "7.0",
        f"§9.7 {_MOVE}: cp.async, cp.async.commit_group, cp.async.wait_group/wait_all, "
        "PTX ISA Notes",
        ".async .ca .cg .commit_group .wait_group .wait_all",
    ),
    "createpolicy": _row(
        "7.4",
        f"§9.7 {_MOVE}: createpolicy, PTX ISA Notes",
        ".fractional .range .cvt .L2::evict_last .L2::evict_normal .L2::evict_first "
        ".L2::evict_unchanged",
    ),
}
"""Each opcode: when it was introduced, and the modifiers it came with."""

_EVICT = (
    ".L1::evict_normal .L1::evict_unchanged .L1::evict_first .L1::evict_last .L1::no_allocate "
    ".L2::evict_normal .L2::evict_first .L2::evict_last"
).split()
_SEMANTICS = ".relaxed .acquire .release .acq_rel .weak .cta .gpu .sys".split()


def _mod_rows() -> dict[tuple[str, frozenset[str]], Row]:
    rows: dict[tuple[str, frozenset[str]], Row] = {}

    def add(ops: str, mods: str, isa: str, section: str) -> None:
        for op in ops.split():
            rows[(op, frozenset(mods.split()))] = _row(isa, section)

    ldst = f"§9.7 {_MOVE}: ld / st, PTX ISA Notes"
    add("ld", ".nc", "3.1", f"§9.7 {_MOVE}: ld.global.nc, PTX ISA Notes")
    for m in _EVICT:
        add("ld st", m, "7.4", f"{ldst} (.level::eviction_priority in PTX ISA 7.4)")
    add("prefetch", ".L2::evict_last", "7.4", f"§9.7 {_MOVE}: prefetch, PTX ISA Notes")
    add("prefetch", ".L2::evict_normal", "7.4", f"§9.7 {_MOVE}: prefetch, PTX ISA Notes")
    for m in (".L2::64B", ".L2::128B", ".L2::256B"):
        add("ld", m, "7.4", f"{ldst} (.level::prefetch_size in PTX ISA 7.4)")
        add("cp", m, "7.4", f"§9.7 {_MOVE}: cp.async, PTX ISA Notes (.level::prefetch_size)")
    add("ld st cp", ".L2::cache_hint", "7.4", f"{ldst}; cp.async (.level::cache_hint)")
    for m in _SEMANTICS:
        add("ld st atom red", m, "6.0", f"§9.7 {_MOVE}/{_SYNC}: .sem and .scope, PTX ISA 6.0")
    add("ld st cp ldmatrix", ".shared::cta", "7.8", f"{ldst} (.shared::cta in PTX ISA 7.8)")
    add("atom red", ".f32", "2.0", f"§9.7 {_SYNC}: atom / red, PTX ISA Notes (.add.f32)")
    add("atom red", ".add .f64", "5.0", f"§9.7 {_SYNC}: atom / red, PTX ISA Notes (.add.f64)")
    add("barrier", ".cta", "7.8", f"§9.7 {_SYNC}: bar, barrier, PTX ISA Notes (barrier.cta)")
    for m in (".min .u64", ".max .u64", ".min .s64", ".max .s64"):
        add("atom red", m, "3.1", f"§9.7 {_SYNC}: atom / red, PTX ISA Notes (64-bit min/max)")
    add("fma", ".f32", "2.0", f"§9.7 {_FLOAT}: fma, PTX ISA Notes (fma.f32 in PTX ISA 2.0)")
    for op in "add sub mul fma".split():
        for t in (".f16", ".f16x2"):
            add(op, t, "4.2", f"§9.7 {_HALF}: {op}, PTX ISA Notes")
    for op in "neg abs".split():
        for t in (".f16", ".f16x2"):
            add(op, t, "6.0", f"§9.7 {_HALF}: {op}, PTX ISA Notes")
    for op in "min max".split():
        for t in (".f16", ".f16x2"):
            add(op, t, "7.0", f"§9.7 {_HALF}: {op}, PTX ISA Notes")
    for t in (".f16x2", ".bf16", ".bf16x2", ".tf32", ".relu"):
        add("cvt", t, "7.0", f"§9.7 {_MOVE}: cvt, PTX ISA Notes ({t} in PTX ISA 7.0)")
    add("shfl", ".sync", "6.0", f"§9.7 {_MOVE}: shfl.sync, PTX ISA Notes")
    add("vote", ".sync", "6.0", f"§9.7 {_SYNC}: vote.sync, PTX ISA Notes")
    add("vote", ".ballot", "2.0", f"§9.7 {_SYNC}: vote, PTX ISA Notes (vote.ballot)")
    add("bar", ".arrive", "2.0", f"§9.7 {_SYNC}: bar, PTX ISA Notes (bar.arrive)")
    add("bar", ".red", "2.0", f"§9.7 {_SYNC}: bar, PTX ISA Notes (bar.red)")
    add("bar", ".warp", "6.0", f"§9.7 {_SYNC}: bar.warp.sync, PTX ISA Notes")
    add("bar", ".aligned", "6.0", f"§9.7 {_SYNC}: bar, PTX ISA Notes (barrier{{.cta}})")
    add("membar fence", ".sys", "4.0", f"§9.7 {_SYNC}: membar, PTX ISA Notes (.sys)")
    add("mma", ".m16n8k8", "6.5", f"§9.7 {_MMA}: mma, PTX ISA Notes (.m16n8k8)")
    add("mma", ".m8n8k16", "6.5", f"§9.7 {_MMA}: mma, PTX ISA Notes (.m8n8k16)")
    add("mma", ".m16n8k16", "7.0", f"§9.7 {_MMA}: mma, PTX ISA Notes (.m16n8k16)")
    add("mma", ".m16n8k32", "7.0", f"§9.7 {_MMA}: mma, PTX ISA Notes (.m16n8k32)")
    add("mma", ".m16n8k4", "7.0", f"§9.7 {_MMA}: mma, PTX ISA Notes (.m16n8k4)")
    for t in (".bf16", ".tf32", ".f64"):
        add("mma", t, "7.0", f"§9.7 {_MMA}: mma, PTX ISA Notes ({t})")
    return rows


MODIFIERS = _mod_rows()
"""(opcode, modifiers that must all be present) -> when that form was introduced."""

_SREG_SECTION = "§10 Special Registers: {name}, PTX ISA Notes"
SPECIAL_REGISTERS: dict[str, Row] = {
    **_rows("1.0", _SREG_SECTION, "%tid %ntid %ctaid %nctaid %clock %gridid"),
    **_rows("1.3", _SREG_SECTION, "%laneid %warpid %smid %pm0 %pm1 %pm2 %pm3"),
    **_rows("2.0", _SREG_SECTION, "%nwarpid %nsmid %clock64"),
    **_rows("2.0", _SREG_SECTION, "%lanemask_eq %lanemask_le %lanemask_lt %lanemask_ge"),
    **_rows("2.0", _SREG_SECTION, "%lanemask_gt"),
    **_rows("3.1", _SREG_SECTION, "%globaltimer %globaltimer_lo %globaltimer_hi"),
    **_rows("4.1", _SREG_SECTION, "%dynamic_smem_size %total_smem_size"),
    **_rows("7.8", _SREG_SECTION, "%clusterid %nclusterid %cluster_ctaid %cluster_nctaid"),
    **_rows("7.8", _SREG_SECTION, "%cluster_ctarank %cluster_nctarank %is_explicit_cluster"),
}
"""Special registers by name (a `.x/.y/.z` component counts as its register)."""

_DIR = "§11 Directives"
DIRECTIVES: dict[str, Row] = {
    **_rows("1.0", _DIR + ": {name}, PTX ISA Notes", ".version .target .entry .func .param"),
    **_rows("1.0", _DIR + ": {name}, PTX ISA Notes", ".reg .local .shared .global .const"),
    **_rows("1.0", _DIR + ": {name}, PTX ISA Notes", ".align .extern .visible .file .loc .tex"),
    ".maxnreg": _row("1.3", f"{_DIR}: .maxnreg, PTX ISA Notes"),
    ".maxntid": _row("1.3", f"{_DIR}: .maxntid, PTX ISA Notes"),
    ".pragma": _row("2.0", f'{_DIR}: .pragma, PTX ISA Notes ("nounroll" in PTX ISA 2.0)'),
    ".minnctapersm": _row("2.0", f"{_DIR}: .minnctapersm, PTX ISA Notes"),
    ".section": _row("2.0", f"{_DIR}: .section, PTX ISA Notes"),
    ".reqntid": _row("2.1", f"{_DIR}: .reqntid, PTX ISA Notes"),
    ".ptr": _row("2.2", f"{_DIR}: kernel parameter attribute .ptr, PTX ISA Notes"),
    ".address_size": _row("2.3", f"{_DIR}: .address_size, PTX ISA Notes"),
    ".weak": _row("3.1", f"{_DIR}: .weak, PTX ISA Notes"),
    ".common": _row("5.0", f"{_DIR}: .common, PTX ISA Notes"),
    ".noreturn": _row("6.4", f"{_DIR}: .noreturn, PTX ISA Notes"),
    ".maxclusterrank": _row("7.8", f"{_DIR}: .maxclusterrank, PTX ISA Notes"),
    ".reqnctapercluster": _row("7.8", f"{_DIR}: .reqnctapercluster, PTX ISA Notes"),
    ".explicitcluster": _row("7.8", f"{_DIR}: .explicitcluster, PTX ISA Notes"),
    # Types in declarations (.reg .f16 %h<4>; .shared .b128 ...).
    ".f16": _row("4.2", "§5.2.1 Fundamental Types: .f16, PTX ISA Notes of the half instructions"),
    ".f16x2": _row("4.2", "§5.2.1 Fundamental Types: .f16x2, as above"),
    ".bf16": _row("7.0", "§5.2.1 Fundamental Types: .bf16 (PTX ISA 7.0)"),
    ".bf16x2": _row("7.0", "§5.2.1 Fundamental Types: .bf16x2 (PTX ISA 7.0)"),
    ".tf32": _row("7.0", "§5.2.1 Fundamental Types: .tf32 (PTX ISA 7.0)"),
    ".b128": _row("8.3", "§5.2.1 Fundamental Types: .b128 (PTX ISA 8.3)"),
}
"""Directives (and the non-classic types a declaration may name)."""

_TGT = "§11 Directives: .target, PTX ISA Notes"
TARGETS: dict[str, Row] = {
    t: _row(v, _TGT)
    for t, v in {
        "sm_50": "4.0", "sm_52": "4.1", "sm_53": "4.2", "sm_60": "5.0", "sm_61": "5.0",
        "sm_62": "5.0", "sm_70": "6.0", "sm_72": "6.1", "sm_75": "6.3", "sm_80": "7.0",
        "sm_86": "7.1", "sm_87": "7.4", "sm_89": "7.8", "sm_90": "7.8", "sm_90a": "8.0",
        "sm_100": "8.6", "sm_100a": "8.6", "sm_101": "8.6", "sm_101a": "8.6", "sm_120": "8.7",
        "sm_120a": "8.7", "sm_100f": "8.8", "sm_101f": "8.8", "sm_103": "8.8", "sm_103a": "8.8",
        "sm_103f": "8.8", "sm_120f": "8.8", "sm_121": "8.8", "sm_121a": "8.8", "sm_121f": "8.8",
        "sm_88": "9.0", "sm_110": "9.0", "sm_110a": "9.0", "sm_110f": "9.0",
        "texmode_unified": "1.0", "texmode_independent": "1.5", "debug": "3.0",
        "map_f64_to_f32": "1.0",
    }.items()
}  # fmt: skip
"""`.target` entries (architectures and the platform options)."""

_VERSION = re.compile(r"^(\s*\.version\s+)(\d+)\.(\d+)", re.M)
_DIRECTIVE_TOKEN = re.compile(r"(?<![\w%$.])\.[A-Za-z_]\w*")
_SREG = re.compile(r"%[A-Za-z_]\w*")
_STRING = re.compile(r'"[^"]*"')


@dataclass(frozen=True)
class Need:
    """Something in the module and the ISA it needs (`isa` None: not in the table)."""

    what: str
    line: int
    isa: Isa | None
    section: str = ""

    def describe(self) -> str:
        where = f"`{self.what}` (line {self.line})"
        if self.isa is None:
            return f"{where}, which the PTX ISA table does not know"
        return f"{where}, PTX ISA {self.isa[0]}.{self.isa[1]} ({self.section})"


@dataclass(frozen=True)
class IsaNeeds:
    """What a module needs: the binding feature (highest ISA) and anything the table lacks."""

    declared: Isa | None
    needed: Isa
    binding: Need | None
    unknown: tuple[Need, ...] = field(default=())

    @property
    def lowest(self) -> Isa:
        """The lowest `.version` this module can carry: its declared one when the table does
        not know everything in it (never lowered on a guess), else what it needs."""
        if self.unknown and self.declared is not None:
            return self.declared
        return self.needed


def isa_str(isa: Isa) -> str:
    return f"{isa[0]}.{isa[1]}"


def declared_isa(ptx: str) -> Isa | None:
    """The `.version` of a PTX module, e.g. (9, 0); None when it has none."""
    m = _VERSION.search(ptx)
    return (int(m[2]), int(m[3])) if m else None


def _instruction_needs(ins: Instruction, registers: set[str]) -> list[Need]:
    text = ins.text.strip().rstrip(";")
    row = OPCODES.get(ins.opcode)
    if row is None:
        return [Need(text, ins.line, None)]
    needs = [Need(text, ins.line, row.isa, row.section)]
    mods = set(ins.modifiers)
    covered = set(CLASSIC) | row.own
    for (op, required), mrow in MODIFIERS.items():
        if op == ins.opcode and required <= mods:
            needs.append(Need(text, ins.line, mrow.isa, mrow.section))
            covered |= required
    needs += [Need(f"{text} ({m})", ins.line, None) for m in sorted(mods - covered)]
    for operand in ins.operands:
        for name in _SREG.findall(operand):
            if sreg := SPECIAL_REGISTERS.get(name):
                needs.append(Need(f"{text} ({name})", ins.line, sreg.isa, sreg.section))
            elif not {name, _declared_base(name)} & registers:  # an unknown special register
                needs.append(Need(f"{text} ({name})", ins.line, None))
    return needs


def _declared_base(name: str) -> str:
    """`%r12` -> `%r` (how `.reg .b32 %r<16>` declares it); other names as they are."""
    return re.sub(r"(?<=\D)\d+$", "", name)


def _registers(statements: list) -> set[str]:
    """Every register name and `%name<N>` prefix the module's `.reg` directives declare."""
    out: set[str] = set()
    for stmt in statements:
        if isinstance(stmt, Directive) and stmt.name == ".reg":
            out.update(d.name for d in parse_reg_decl(stmt))
    return out


def _directive_needs(d: Directive) -> list[Need]:
    text = d.text.strip().rstrip(";")
    if d.name == ".target":
        out = []
        for t in (x.strip() for x in d.args.split(",")):
            row = TARGETS.get(t)
            out.append(Need(f".target {t}", d.line, row.isa if row else None, _TGT))
        return out
    if d.name == ".version":
        return []
    if d.name == ".section":  # DWARF data: section names and bytes, nothing to lower for
        row = DIRECTIVES[".section"]
        return [Need(text.split("{")[0].strip(), d.line, row.isa, row.section)]
    out = []
    for token in _DIRECTIVE_TOKEN.findall(_STRING.sub("", text)):
        row = DIRECTIVES.get(token)
        what = f"{token} in {text[:60]}"
        if row is not None:
            out.append(Need(what, d.line, row.isa, row.section))
        elif token not in CLASSIC:
            out.append(Need(what, d.line, None))
    return out


def required_isa(ptx: str) -> IsaNeeds:
    """The lowest PTX ISA the module's instructions, directives and target need."""
    module = parse(ptx)
    registers = _registers(list(module.statements))
    needs: list[Need] = []
    for stmt in module.statements:
        if isinstance(stmt, Instruction):
            needs += _instruction_needs(stmt, registers)
        elif isinstance(stmt, Directive):
            needs += _directive_needs(stmt)
    known = [n for n in needs if n.isa is not None]
    binding = max(known, key=lambda n: n.isa or (0, 0), default=None)
    return IsaNeeds(
        declared=declared_isa(ptx),
        needed=binding.isa if binding and binding.isa else (1, 0),
        binding=binding,
        unknown=tuple(n for n in needs if n.isa is None),
    )


def with_version(ptx: str, isa: Isa) -> str:
    """`ptx` with its `.version` line set to `isa` (only that line changes)."""
    if not _VERSION.search(ptx):
        raise ValueError("the PTX has no .version directive to rewrite")
    return _VERSION.sub(lambda m: f"{m[1]}{isa[0]}.{isa[1]}", ptx, count=1)


@functools.lru_cache(maxsize=256)
def lower_isa(ptx: str) -> tuple[str, IsaNeeds]:
    """(`ptx` with `.version` at the lowest ISA it needs, what it needs). A module already at
    or below that, or holding something the table does not know, keeps its version.
    Remembered: a measurement asks for the same text a few times (key, build, provenance)."""
    needs = required_isa(ptx)
    declared = needs.declared
    if declared is None or needs.lowest >= declared:
        return ptx, needs
    return with_version(ptx, needs.lowest), needs
