"""Line-oriented PTX parser with exact source spans.

The scanner walks the text token by token (comments, strings, punctuation, runs of other
characters), cuts it into statements at `;`, at block braces, after labels and at the end of
line-terminated directives (`.version`, `.loc`, ...), and records each statement's span.
Structure (functions, parameters, bodies) is then built from the statement list. Any
malformed input raises `PtxParseError` with the line and column of the problem.
"""

from __future__ import annotations

import bisect
import re

from chronos.ptx.model import (
    Brace,
    Directive,
    Function,
    Instruction,
    Label,
    Module,
    Param,
    Span,
    Statement,
)


class PtxParseError(ValueError):
    """Malformed PTX; `line` and `column` are 1-based and point at the offending text."""

    def __init__(self, message: str, line: int, column: int):
        super().__init__(f"line {line}, column {column}: {message}")
        self.message = message
        self.line = line
        self.column = column


_TOKEN = re.compile(
    r"""
    (?P<lc>//[^\n]*)
  | (?P<bc>/\*.*?\*/)
  | (?P<bcu>/\*)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<stru>")
  | (?P<nl>\n)
  | (?P<p>[;{}()\[\]:])
  | (?P<o>[^;{}()\[\]:"/\n]+|/)
    """,
    re.S | re.X,
)

# Directives that end at the end of their line rather than at a semicolon.
_LINE_DIRECTIVES = frozenset(
    ".version .target .address_size .file .loc .section .maxnreg .maxntid .reqntid "
    ".minnctapersm .maxnctapersm .noreturn .explicitcluster .reqnctapercluster "
    ".maxclusterrank .blocksareclusters".split()
)
_LINKAGE = frozenset(".visible .extern .weak .common".split())
_LABEL_RE = re.compile(r"^[A-Za-z_$][\w$]*$")
_DIRECTIVE_NAME_RE = re.compile(r"^\.[A-Za-z_][\w]*$")
_INSTR_RE = re.compile(
    r"^(?:(?P<guard>@!?%?[A-Za-z_$][\w$]*)\s+)?"
    r"(?P<mn>[A-Za-z_][\w$]*(?:\.[\w$]+(?:::[\w$]+)*)*)"
    r"(?:\s+(?P<ops>.*))?$",
    re.S,
)
# The start of a line that begins a new instruction: a guard, or an opcode with modifiers, or
# one of the bare opcodes. After an unfinished instruction it means a `;` is missing.
_NEXT_INSTR_RE = re.compile(
    r"[ \t]*(?:@!?%?[A-Za-z_$][\w$]*[ \t]+[A-Za-z_]"
    r"|[a-z][a-z0-9_]*(?:\.[\w$]+(?:::[\w$]+)*)+[ \t]"
    r"|(?:ret|exit|trap|brkpt)(?:\.uni)?[ \t]*;)"
)
_PERF_DIRECTIVE_RE = re.compile(
    r"(\.maxnreg|\.maxntid|\.reqntid|\.minnctapersm|\.maxnctapersm|\.noreturn|"
    r"\.explicitcluster|\.reqnctapercluster|\.maxclusterrank|\.blocksareclusters|\.pragma)"
    r"((?:\s+[^.\s][^.]*?)?)(?=\s*(?:\.|$))",
    re.S,
)


class _Scanner:
    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0]
        for m in re.finditer(r"\n", text):
            self.line_starts.append(m.end())
        self.stmts: list[Statement] = []
        self.buf: list[str] = []
        self.buf_start: int | None = None
        self.paren: list[int] = []
        self.bracket: list[int] = []
        self.inner_brace: list[int] = []
        self.block_braces: list[int] = []

    def pos(self, offset: int) -> tuple[int, int]:
        lo = bisect.bisect_right(self.line_starts, offset) - 1
        return lo + 1, offset - self.line_starts[lo] + 1

    def error(self, message: str, offset: int) -> PtxParseError:
        line, col = self.pos(offset)
        return PtxParseError(message, line, col)

    def span(self, start: int, end: int) -> Span:
        line, col = self.pos(start)
        end_line, _ = self.pos(max(start, end - 1))
        return Span(start, end, line, col, end_line)

    def add(self, piece: str, offset: int) -> None:
        if self.buf_start is None:
            if not piece.strip():
                return
            offset += len(piece) - len(piece.lstrip())
            piece = piece.lstrip()
            self.buf_start = offset
        self.buf.append(piece)

    def buffered(self) -> str:
        return "".join(self.buf).strip()

    def depth(self) -> int:
        return len(self.paren) + len(self.bracket) + len(self.inner_brace)

    def emit(self, end: int) -> None:
        text = self.buffered()
        start = self.buf_start
        self.buf, self.buf_start = [], None
        if start is None:
            return
        self.stmts.append(self.classify(text, self.span(start, end)))

    def classify(self, text: str, span: Span) -> Statement:
        if text.startswith("."):
            name = text.split(None, 1)[0].rstrip(";")
            if not _DIRECTIVE_NAME_RE.match(name):
                raise PtxParseError(f"malformed directive {name!r}", span.line, span.col)
            return Directive(text=text, span=span, name=name)
        body = text[:-1].rstrip() if text.endswith(";") else text
        m = _INSTR_RE.match(body)
        if not m:
            raise PtxParseError(f"malformed instruction {text[:40]!r}", span.line, span.col)
        parts = m.group("mn").split(".")
        modifiers = tuple("." + p for p in parts[1:])
        ops = split_operands(m.group("ops") or "", span)
        return Instruction(
            text=text,
            span=span,
            guard=m.group("guard"),
            opcode=parts[0],
            modifiers=modifiers,
            operands=tuple(ops),
        )

    def is_header(self) -> bool:
        words = self.buffered().split()
        while words and words[0] in _LINKAGE:
            words = words[1:]
        return bool(words) and words[0] in (".entry", ".func")

    def line_directive(self) -> bool:
        text = self.buffered()
        return bool(text) and text.split(None, 1)[0] in _LINE_DIRECTIVES

    def run(self) -> list[Statement]:
        text = self.text
        section_depth = 0
        for m in _TOKEN.finditer(text):
            kind, tok, off = m.lastgroup, m.group(), m.start()
            if section_depth:
                if kind == "p" and tok == "{":
                    section_depth += 1
                elif kind == "p" and tok == "}":
                    section_depth -= 1
                    if section_depth == 0:
                        self.add(tok, off)
                        self.emit(m.end())
                        continue
                if kind not in ("lc", "bc"):
                    self.add(tok, off)
                continue
            if kind in ("lc", "bc"):
                continue
            if kind == "bcu":
                raise self.error("unterminated block comment", off)
            if kind == "stru":
                raise self.error("unterminated string", off)
            if kind == "nl":
                if self.line_directive() and self.depth() == 0:
                    self.emit(off)
                else:
                    self.check_continuation(off)
                    self.add(" ", off)
                continue
            if kind in ("str", "o"):
                self.add(tok, off)
                continue
            self.punct(tok, off)
            if tok == "{" and self.stmts and self.buf_start is None:
                last = self.stmts[-1]
                if (
                    isinstance(last, Brace)
                    and len(self.stmts) > 1
                    and isinstance(self.stmts[-2], Directive)
                    and self.stmts[-2].name == ".section"
                    and last.span.start == off
                ):
                    self.stmts.pop()
                    self.block_braces.pop()
                    sec = self.stmts.pop()
                    assert isinstance(sec, Directive)
                    self.buf, self.buf_start = [text[sec.span.start : off + 1]], sec.span.start
                    section_depth = 1
        if section_depth:
            raise self.error("unterminated .section block", len(text))
        if self.buf_start is not None:
            if self.line_directive() and self.depth() == 0:
                self.emit(len(text))
            else:
                raise self.error("statement is missing its ';'", self.buf_start)
        for opener in (self.paren, self.bracket, self.inner_brace):
            if opener:
                raise self.error("unclosed bracket", opener[-1])
        if self.block_braces:
            raise self.error("unclosed '{'", self.block_braces[-1])
        return self.stmts

    def check_continuation(self, newline: int) -> None:
        """An instruction followed by a line that starts another one lacks its `;`.

        Without this check the two would merge into one statement whose operands name
        registers like `%r1 setp.lt.s32 %p1`, and the error would blame a register.
        """
        text = self.buffered()
        if not text or text.startswith(".") or self.depth() or text.endswith((",", "{", "(")):
            return
        if _NEXT_INSTR_RE.match(self.text, newline + 1):
            assert self.buf_start is not None
            raise self.error("statement is missing its ';'", self.buf_start)

    def punct(self, tok: str, off: int) -> None:
        if tok == ";":
            if self.depth():
                raise self.error("';' inside brackets", off)
            if self.buf_start is None:
                raise self.error("empty statement", off)
            self.add(tok, off)
            self.emit(off + 1)
        elif tok == "{":
            if self.buf_start is None:
                self.block_braces.append(off)
                self.stmts.append(Brace(text="{", span=self.span(off, off + 1), char="{"))
            elif self.is_header() and self.depth() == 0:
                self.emit(off)
                self.block_braces.append(off)
                self.stmts.append(Brace(text="{", span=self.span(off, off + 1), char="{"))
            else:
                self.inner_brace.append(off)
                self.add(tok, off)
        elif tok == "}":
            if self.inner_brace:
                self.inner_brace.pop()
                self.add(tok, off)
            elif self.buf_start is not None:
                if self.line_directive() and self.depth() == 0:
                    self.emit(off)
                else:
                    raise self.error("statement before '}' is missing its ';'", self.buf_start)
                self.close_block(off)
            else:
                self.close_block(off)
        elif tok in "([":
            stack = self.paren if tok == "(" else self.bracket
            stack.append(off)
            self.add(tok, off)
        elif tok in ")]":
            stack = self.paren if tok == ")" else self.bracket
            if not stack:
                raise self.error(f"unmatched {tok!r}", off)
            stack.pop()
            self.add(tok, off)
        elif tok == ":":
            cand = self.buffered()
            if (
                self.depth() == 0
                and _LABEL_RE.match(cand)
                and not self.text.startswith("::", off)
                and not self.text[max(0, off - 1) : off] == ":"
            ):
                start = self.buf_start
                assert start is not None
                self.buf, self.buf_start = [], None
                self.stmts.append(Label(text=cand + ":", span=self.span(start, off + 1), name=cand))
            else:
                self.add(tok, off)

    def close_block(self, off: int) -> None:
        if not self.block_braces:
            raise self.error("unmatched '}'", off)
        self.block_braces.pop()
        self.stmts.append(Brace(text="}", span=self.span(off, off + 1), char="}"))


def split_operands(ops: str, span: Span) -> list[str]:
    """Split on top-level commas; brackets, braces and parentheses nest."""
    ops = ops.strip()
    if not ops:
        return []
    if not any(c in ops for c in "[]{}()"):
        out = [o.strip() for o in ops.split(",")]
        if any(not o for o in out):
            raise PtxParseError("empty operand", span.line, span.col)
        return [" ".join(o.split()) for o in out]
    out, depth, cur = [], 0, []
    for ch in ops:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    if any(not o for o in out):
        raise PtxParseError("empty operand", span.line, span.col)
    return [" ".join(o.split()) if "[" not in o else o for o in out]


_PARAM_RE = re.compile(
    r"^\.param\s+(?P<body>.*?)\s*(?P<name>[A-Za-z_$%][\w$]*)\s*(?:\[(?P<n>\d*)\])?$", re.S
)


def _parse_params(text: str, span: Span) -> list[Param]:
    text = text.strip()
    if not text:
        return []
    params = []
    for raw in split_operands(text, span):
        m = _PARAM_RE.match(raw)
        if not m:
            if raw.startswith(".reg"):
                parts = raw.split()
                params.append(Param(parts[-1], "".join(parts[1:-1]), None, None, raw))
                continue
            raise PtxParseError(f"malformed parameter {raw!r}", span.line, span.col)
        mods = m.group("body").split()
        align = None
        if ".align" in mods:
            i = mods.index(".align")
            try:
                align = int(mods[i + 1])
            except (IndexError, ValueError) as exc:
                raise PtxParseError(f"bad .align in {raw!r}", span.line, span.col) from exc
        ptype = next((t for t in mods if re.match(r"^\.[bsuf]\d+$|^\.pred$", t)), "")
        n = m.group("n")
        params.append(Param(m.group("name"), ptype, align, int(n) if n else None, raw))
    return params


def _split_groups(text: str, span: Span) -> tuple[str, list[str], str]:
    """Header text -> (text before first '(', [contents of each top-level (...)], rest)."""
    groups, depth, start, first = [], 0, 0, -1
    last_end = 0
    for i, ch in enumerate(text):
        if ch == "(":
            if depth == 0:
                start = i + 1
                if first < 0:
                    first = i
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                groups.append(text[start:i])
                last_end = i + 1
    if first < 0:
        return text, [], ""
    return text[:first], groups, text[last_end:]


def _build_function(
    header: Directive, body: list[Statement], close: Brace, open_: Brace
) -> Function:
    span = header.span
    kind = ".entry" if ".entry" in header.text.split() else ".func"
    head, groups, rest = _split_groups(header.text, span)
    words = head.split()
    ret_params: list[Param] = []
    if kind == ".func" and len(groups) == 2:
        ret_params = _parse_params(groups[0], span)
        name_text = header.text[
            header.text.index(")") + 1 : header.text.index("(", header.text.index(")"))
        ]
        name = name_text.strip()
        params = _parse_params(groups[1], span)
    else:
        if len(groups) > 1:
            raise PtxParseError("malformed function header", span.line, span.col)
        name = words[-1] if words else ""
        params = _parse_params(groups[0], span) if groups else []
    if not _LABEL_RE.match(name or "-"):
        raise PtxParseError(f"malformed {kind} name {name!r}", span.line, span.col)
    directives = {m.group(1): m.group(2).strip() for m in _PERF_DIRECTIVE_RE.finditer(rest)}
    return Function(
        kind=kind,
        name=name,
        header=header,
        params=tuple(params),
        return_params=tuple(ret_params),
        directives=directives,
        open_brace=open_,
        close_brace=close,
        body=tuple(body),
    )


def _is_header(stmt: Statement) -> bool:
    if not isinstance(stmt, Directive):
        return False
    words = stmt.text.split()
    while words and words[0] in _LINKAGE:
        words = words[1:]
    return bool(words) and words[0] in (".entry", ".func")


def parse(text: str) -> Module:
    """Parse PTX text. `str(parse(t)) == t` for every input that parses."""
    if not isinstance(text, str):
        raise TypeError("parse() takes the PTX source as str")
    stmts = _Scanner(text).run()
    functions: list[Function] = []
    depth = 0
    i = 0
    while i < len(stmts):
        s = stmts[i]
        if depth == 0 and _is_header(s):
            assert isinstance(s, Directive)
            if i + 1 < len(stmts) and isinstance(stmts[i + 1], Brace) and stmts[i + 1].text == "{":
                open_ = stmts[i + 1]
                j, d = i + 2, 1
                while j < len(stmts):
                    t = stmts[j]
                    if isinstance(t, Brace):
                        d += 1 if t.char == "{" else -1
                        if d == 0:
                            break
                    j += 1
                close = stmts[j]
                assert isinstance(close, Brace) and isinstance(open_, Brace)
                functions.append(_build_function(s, list(stmts[i + 2 : j]), close, open_))
                i = j + 1
                continue
            if not s.text.endswith(";"):
                raise PtxParseError(
                    "function header without a body or ';'", s.span.line, s.span.col
                )
            _build_function(s, [], s, s)  # validates the declaration's header
        elif isinstance(s, Brace):
            depth += 1 if s.char == "{" else -1
        elif depth == 0 and isinstance(s, (Instruction, Label)):
            kind = "instruction" if isinstance(s, Instruction) else "label"
            raise PtxParseError(f"{kind} outside a function body", s.span.line, s.span.col)
        i += 1
    return Module(text, stmts, functions)


def parse_instruction(text: str) -> Instruction:
    """Parse one instruction statement (with or without trailing ';')."""
    src = text if text.rstrip().endswith(";") else text + ";"
    module = parse(".entry __chronos_probe()\n{\n" + src + "\n}\n")
    ins = module.functions[0].instructions()
    if len(ins) != 1:
        raise PtxParseError("expected exactly one instruction", 1, 1)
    return ins[0]
