"""The parsed-PTX data model.

A `Module` keeps the exact source text and a list of statements that point into it by offset.
Printing is therefore the identity (`str(module) == text`), and editing is span replacement
followed by a re-parse (`Module.edit()`), which keeps every structural view consistent
without a second, mutable representation to keep in sync.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property

PTX_TYPES = frozenset(
    ".pred .b8 .b16 .b32 .b64 .b128 .u8 .u16 .u32 .u64 .s8 .s16 .s32 .s64 "
    ".f16 .f16x2 .bf16 .bf16x2 .tf32 .f32 .f64 .e4m3 .e5m2 .e4m3x2 .e5m2x2".split()
)
STATE_SPACES = frozenset(".global .shared .local .param .const .tex .generic".split())

_TYPE_BYTES = {"8": 1, "16": 2, "32": 4, "64": 8, "128": 16}


def type_bytes(ptx_type: str) -> int:
    """Size in bytes of a scalar PTX type such as `.f32` or `.u64` (`.pred` counts as 1)."""
    if ptx_type == ".pred":
        return 1
    m = re.search(r"(8|16|32|64|128)", ptx_type)
    if not m:
        raise ValueError(f"not a sized PTX type: {ptx_type}")
    return _TYPE_BYTES[m.group(1)]


@dataclass(frozen=True)
class Span:
    """Where a statement sits in the source: offsets and 1-based line/column of its start."""

    start: int
    end: int
    line: int
    col: int
    end_line: int


@dataclass(frozen=True)
class Statement:
    """One PTX statement: an instruction, a directive, a label, or a block brace."""

    text: str
    span: Span

    @property
    def line(self) -> int:
        return self.span.line


@dataclass(frozen=True)
class Directive(Statement):
    """A directive statement such as `.reg .b32 %r<5>;`, `.version 8.0` or an entry header."""

    name: str = ""

    @property
    def args(self) -> str:
        return self.text[len(self.name) :].strip().rstrip(";").strip()


@dataclass(frozen=True)
class Label(Statement):
    name: str = ""


@dataclass(frozen=True)
class Brace(Statement):
    char: str = "{"


@dataclass(frozen=True)
class Address:
    """A memory operand `[base+offset]`; `base` is a register or a symbol."""

    base: str
    offset: int

    def render(self) -> str:
        if self.offset == 0:
            return f"[{self.base}]"
        # nvcc's `[%rd1+-4]`: ptxas rejects `[%rd1-4]` with a syntax error.
        return f"[{self.base}+{self.offset}]"


# nvcc writes negative offsets as `[%rd1+-4]`, so the number may carry its own sign.
_ADDR_RE = re.compile(r"^\[\s*([%$\w.]+)\s*(?:([+-])\s*(-?\s*(?:0[xX][0-9a-fA-F]+|\d+)))?\s*\]$")

# Instructions whose first operand is not written (stores, reductions, control flow, ...).
_NO_DEST = frozenset(
    "st red bra ret exit bar barrier membar fence prefetch prefetchu cp trap brkpt "
    "call nanosleep discard applypriority mbarrier stmatrix".split()
)


@dataclass(frozen=True)
class Instruction(Statement):
    """An instruction: optional guard, dotted mnemonic split into opcode and modifiers, operands."""

    guard: str | None = None
    opcode: str = ""
    modifiers: tuple[str, ...] = ()
    operands: tuple[str, ...] = ()

    @property
    def mnemonic(self) -> str:
        return self.opcode + "".join(self.modifiers)

    @property
    def type(self) -> str | None:
        """The last type modifier (`.f32` in `ld.global.v4.f32`), if any."""
        for mod in reversed(self.modifiers):
            if mod in PTX_TYPES:
                return mod
        return None

    @property
    def space(self) -> str | None:
        for mod in self.modifiers:
            if mod in STATE_SPACES:
                return mod
        return None

    @property
    def vector_width(self) -> int:
        for mod in self.modifiers:
            if mod in (".v2", ".v4", ".v8"):
                return int(mod[2:])
        return 1

    def has(self, *mods: str) -> bool:
        return all(m in self.modifiers for m in mods)

    @property
    def dests(self) -> tuple[str, ...]:
        """Registers written by this instruction (vector and `|` pair destinations expanded)."""
        if self.opcode in _NO_DEST or not self.operands:
            return ()
        regs = []
        for part in split_vector(self.operands[0]):
            regs.extend(r.strip() for r in part.split("|"))
        return tuple(r for r in regs if r.startswith("%"))

    @property
    def srcs(self) -> tuple[str, ...]:
        """Operand strings read by this instruction (addresses included as written)."""
        if self.opcode in _NO_DEST:
            return self.operands
        return self.operands[1:]

    def registers_read(self) -> tuple[str, ...]:
        regs: list[str] = []
        if self.guard:
            regs.append(self.guard.lstrip("@!"))
        for op in self.srcs:
            regs.extend(re.findall(r"%[\w$.]+", op))
        return tuple(regs)

    def address(self) -> Address | None:
        """The memory operand of a load/store-like instruction, parsed."""
        for op in self.operands:
            if op.startswith("["):
                m = _ADDR_RE.match(op)
                if not m:
                    return None
                off = 0
                if m.group(2):
                    off = int(m.group(3).replace(" ", ""), 0) * (-1 if m.group(2) == "-" else 1)
                return Address(m.group(1), off)
        return None

    def render(self) -> str:
        """The instruction in nvcc's layout (mnemonic, space, tab, operands), unindented."""
        head = f"{self.guard} " if self.guard else ""
        ops = ", ".join(self.operands)
        if ops:
            return f"{head}{self.mnemonic} \t{ops};"
        return f"{head}{self.mnemonic};"

    def with_(self, **changes: object) -> Instruction:
        """A copy with fields replaced (span and text kept; use `render()` for the new text)."""
        fields = {
            "text": self.text,
            "span": self.span,
            "guard": self.guard,
            "opcode": self.opcode,
            "modifiers": self.modifiers,
            "operands": self.operands,
        }
        fields.update(changes)
        return Instruction(**fields)  # type: ignore[arg-type]


def split_vector(operand: str) -> list[str]:
    """`{%f1, %f2}` -> [`%f1`, `%f2`]; a plain operand -> [operand]."""
    op = operand.strip()
    if op.startswith("{") and op.endswith("}"):
        return [p.strip() for p in op[1:-1].split(",") if p.strip()]
    return [op]


@dataclass(frozen=True)
class Param:
    """A kernel or function parameter from the header (`.param .u64 .ptr .align 16 name`)."""

    name: str
    type: str
    align: int | None
    array: int | None
    text: str


@dataclass(frozen=True)
class RegDecl:
    """`.reg .b32 %r<12>;` -> RegDecl(".b32", "%r", 12); `.reg .pred %p;` -> count None."""

    type: str
    name: str
    count: int | None
    statement: Directive

    def names(self) -> list[str]:
        if self.count is None:
            return [self.name]
        return [f"{self.name}{i}" for i in range(self.count)]


@dataclass
class BasicBlock:
    """Maximal straight-line run of instructions; `successors` are indices into the block list."""

    label: str | None
    instructions: list[Instruction]
    successors: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Function:
    """A `.entry` or `.func` with a body. Statement lists are in source order."""

    kind: str
    name: str
    header: Directive
    params: tuple[Param, ...]
    return_params: tuple[Param, ...]
    directives: dict[str, str]
    open_brace: Brace
    close_brace: Brace
    body: tuple[Statement, ...]

    @property
    def is_entry(self) -> bool:
        return self.kind == ".entry"

    def instructions(self) -> list[Instruction]:
        return [s for s in self.body if isinstance(s, Instruction)]

    def labels(self) -> dict[str, int]:
        """Label name -> index in `body`."""
        return {s.name: i for i, s in enumerate(self.body) if isinstance(s, Label)}

    def reg_decls(self) -> list[RegDecl]:
        decls = []
        for s in self.body:
            if isinstance(s, Directive) and s.name == ".reg":
                decls.extend(parse_reg_decl(s))
        return decls

    def basic_blocks(self) -> list[BasicBlock]:
        """Split the body at labels, nested-scope braces and after branches/returns; link
        fall-through and targets."""
        blocks: list[BasicBlock] = []
        cur = BasicBlock(None, [])
        for s in self.body:
            if isinstance(s, Label):
                if cur.instructions or cur.label is not None:
                    blocks.append(cur)
                cur = BasicBlock(s.name, [])
            elif isinstance(s, Brace):
                # A nested `{ }` scope (inline asm declares registers like `low` in one):
                # nothing may move across its edges, so it bounds blocks as a label does.
                if cur.instructions or cur.label is not None:
                    blocks.append(cur)
                    cur = BasicBlock(None, [])
            elif isinstance(s, Instruction):
                cur.instructions.append(s)
                if s.opcode in ("bra", "ret", "exit", "trap", "brx"):
                    blocks.append(cur)
                    cur = BasicBlock(None, [])
        if cur.instructions or cur.label is not None:
            blocks.append(cur)
        index = {b.label: i for i, b in enumerate(blocks) if b.label}
        for i, b in enumerate(blocks):
            last = b.instructions[-1] if b.instructions else None
            falls = True
            if last is not None and last.opcode == "bra":
                target = last.operands[0] if last.operands else None
                if target in index:
                    b.successors.append(index[target])
                falls = last.guard is not None
            elif last is not None and last.opcode in ("ret", "exit", "trap"):
                falls = last.guard is not None
            if falls and i + 1 < len(blocks):
                b.successors.append(i + 1)
        return blocks


def parse_reg_decl(stmt: Directive) -> list[RegDecl]:
    """Parse `.reg .b32 %r<5>;` or `.reg .f32 %a, %b;` (also `.reg .v4 .b32` forms)."""
    body = stmt.args
    tokens = body.split()
    types = [t for t in tokens if t.startswith(".")]
    names_part = body[body.rfind(types[-1]) + len(types[-1]) :] if types else body
    rtype = "".join(types)
    out = []
    for name in names_part.split(","):
        name = name.strip()
        if not name:
            continue
        m = re.match(r"^(%?[\w$]+)\s*<\s*(\d+)\s*>$", name)
        if m:
            out.append(RegDecl(rtype, m.group(1), int(m.group(2)), stmt))
        else:
            out.append(RegDecl(rtype, name, None, stmt))
    return out


class Module:
    """A parsed PTX module. Immutable: edits produce a new Module through `edit()`."""

    def __init__(self, text: str, statements: Sequence[Statement], functions: Sequence[Function]):
        self.text = text
        self.statements: tuple[Statement, ...] = tuple(statements)
        self.functions: tuple[Function, ...] = tuple(functions)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        names = ", ".join(f.name for f in self.functions)
        return f"Module({len(self.statements)} statements; functions: {names})"

    @cached_property
    def lines(self) -> list[str]:
        """Physical lines with their line endings."""
        return self.text.splitlines(keepends=True)

    @property
    def entries(self) -> list[Function]:
        return [f for f in self.functions if f.is_entry]

    def entry(self, name: str | None = None) -> Function:
        """The named entry, or the only one when `name` is None."""
        entries = self.entries
        if name is None:
            if len(entries) != 1:
                raise ValueError(f"module has {len(entries)} entries; name one")
            return entries[0]
        for e in entries:
            if e.name == name:
                return e
        raise KeyError(f"no entry {name!r}; entries: {[e.name for e in entries]}")

    def directive(self, name: str) -> Directive | None:
        """The first module-scope directive with this name (e.g. `.target`)."""
        for s in self.statements:
            if isinstance(s, Directive) and s.name == name:
                return s
        return None

    @property
    def version(self) -> str | None:
        d = self.directive(".version")
        return d.args if d else None

    @property
    def target(self) -> str | None:
        d = self.directive(".target")
        return d.args if d else None

    def module_variables(self) -> list[Directive]:
        """Module-scope `.global`/`.shared`/`.const` variable declarations."""
        inside = set()
        for f in self.functions:
            inside.update(id(s) for s in f.body)
        return [
            s
            for s in self.statements
            if isinstance(s, Directive)
            and s.name in (".global", ".shared", ".const", ".visible", ".extern", ".weak")
            and id(s) not in inside
            and ".entry" not in s.text
            and ".func" not in s.text
        ]

    def instructions(self) -> Iterator[Instruction]:
        for f in self.functions:
            yield from f.instructions()

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def edit(self) -> Editor:
        return Editor(self)


class Editor:
    """Collects span edits against one Module and applies them all at once (then re-parses)."""

    def __init__(self, module: Module):
        self.module = module
        self._edits: list[tuple[int, int, str, int]] = []

    def _line_start(self, offset: int) -> int:
        return self.module.text.rfind("\n", 0, offset) + 1

    def _line_end(self, offset: int) -> int:
        nl = self.module.text.find("\n", offset)
        return len(self.module.text) if nl < 0 else nl + 1

    def indent_of(self, stmt: Statement) -> str:
        start = self._line_start(stmt.span.start)
        return self.module.text[start : stmt.span.start]

    def replace(self, stmt: Statement, new_text: str) -> Editor:
        """Replace the statement's own text (indentation and trailing comment stay)."""
        self._edits.append((stmt.span.start, stmt.span.end, new_text, len(self._edits)))
        return self

    def insert_before(
        self, stmt: Statement, lines: Sequence[str], indent: str | None = None
    ) -> Editor:
        """Insert whole lines before the line holding `stmt`, indented like it by default."""
        ind = self.indent_of(stmt) if indent is None else indent
        pos = self._line_start(stmt.span.start)
        nl = self.module.newline
        self._edits.append((pos, pos, "".join(f"{ind}{ln}{nl}" for ln in lines), len(self._edits)))
        return self

    def insert_after(
        self, stmt: Statement, lines: Sequence[str], indent: str | None = None
    ) -> Editor:
        """Insert whole lines after the line holding the end of `stmt`."""
        ind = self.indent_of(stmt) if indent is None else indent
        pos = self._line_end(stmt.span.end)
        nl = self.module.newline
        text = "".join(f"{ind}{ln}{nl}" for ln in lines)
        if pos == len(self.module.text) and not self.module.text.endswith("\n"):
            text = nl + text.rstrip("\r\n")
        self._edits.append((pos, pos, text, len(self._edits)))
        return self

    def delete(self, stmt: Statement) -> Editor:
        """Delete a statement; its line goes too when nothing else but whitespace is on it."""
        ls, le = self._line_start(stmt.span.start), self._line_end(stmt.span.end)
        before = self.module.text[ls : stmt.span.start]
        after = self.module.text[stmt.span.end : le]
        if not before.strip() and not after.strip():
            self._edits.append((ls, le, "", len(self._edits)))
        else:
            self._edits.append((stmt.span.start, stmt.span.end, "", len(self._edits)))
        return self

    def text(self) -> str:
        """The edited source. Overlapping replacements are a programming error."""
        text = self.module.text
        edits = sorted(self._edits, key=lambda e: (e[0], e[1], e[3]))
        out: list[str] = []
        pos = 0
        for start, end, new, _ in edits:
            if start < pos:
                raise ValueError("overlapping PTX edits")
            out.append(text[pos:start])
            out.append(new)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def apply(self) -> Module:
        from chronos.ptx.parse import parse

        return parse(self.text())
