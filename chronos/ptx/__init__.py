"""PTX model: a line-oriented parser and printer with an exact round trip."""

from chronos.ptx.digest import ptx_sha256
from chronos.ptx.model import (
    Address,
    BasicBlock,
    Brace,
    Directive,
    Editor,
    Function,
    Instruction,
    Label,
    Module,
    Param,
    RegDecl,
    Span,
    Statement,
    split_vector,
    type_bytes,
)
from chronos.ptx.parse import PtxParseError, parse, parse_instruction
from chronos.ptx.print import print_ptx

__all__ = [
    "Address",
    "BasicBlock",
    "Brace",
    "Directive",
    "Editor",
    "Function",
    "Instruction",
    "Label",
    "Module",
    "Param",
    "PtxParseError",
    "RegDecl",
    "Span",
    "Statement",
    "parse",
    "parse_instruction",
    "print_ptx",
    "ptx_sha256",
    "split_vector",
    "type_bytes",
]
