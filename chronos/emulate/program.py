"""A decoded kernel: its operations, register file, parameters and variables.

Decoding (chronos.emulate.decode) happens once per (PTX text, entry) and is cached, so that
measuring the same PTX again, or verifying it on another seed, costs only the execution.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chronos.emulate.errors import UnsupportedInstruction
from chronos.ptx.model import Directive, type_bytes

OP, BRA, EXIT, BAR = 0, 1, 2, 3
"""Op kinds the executor dispatches on."""


@dataclass(frozen=True)
class MemAccess:
    """What a memory instruction touches, for the trace and the cost model."""

    space: str
    load: bool
    store: bool
    elem_bytes: int
    width: int

    @property
    def bytes(self) -> int:
        return self.elem_bytes * self.width


@dataclass(frozen=True)
class Run:
    """Instructions `start`..`stop - 1`, none guarded, none reading a register an earlier one
    writes: `fn(machine, mask)` executes them all, with the results of one after another
    (chronos.emulate.batch)."""

    start: int
    stop: int
    fn: Callable[[Any, np.ndarray | None], None]


@dataclass
class Op:
    """One decoded instruction. `fn(machine, mask)` runs it for the lanes in `mask` (None: all)."""

    index: int
    line: int
    text: str
    kind: int
    fn: Callable[[Any, np.ndarray | None], None] | None
    cls: str
    guard: int | None = None
    guard_neg: bool = False
    target: int = -1
    srcs: tuple[int, ...] = ()
    dsts: tuple[int, ...] = ()
    mem: MemAccess | None = None
    barrier_count: int | None = None
    batch: tuple[str, tuple[int, ...]] | None = None
    """Set where a run of like instructions may execute this one with its neighbours
    (chronos.emulate.batch): the run's kind and this instruction's registers."""


@dataclass(frozen=True)
class Variable:
    """A `.shared`/`.local`/`.global`/`.const` variable; size 0 with `extern` is dynamic shared."""

    space: str
    name: str
    size: int
    align: int
    init: bytes = b""
    extern: bool = False


@dataclass(frozen=True)
class ParamSlot:
    name: str
    type: str
    size: int
    offset: int


@dataclass
class Program:
    """Everything the executor needs; built by `decode.decode` and shared between runs."""

    entry: str
    ops: list[Op]
    reg_names: list[str]
    reg_dtypes: list[np.dtype]
    params: list[ParamSlot]
    param_bytes: int
    variables: list[Variable]
    labels: dict[str, int] = field(default_factory=dict)
    static_instructions: int = 0
    runs: dict[int, Run] = field(default_factory=dict)
    """Runs of independent instructions that execute in one call, by their first pc."""

    @property
    def shared_variables(self) -> list[Variable]:
        return [v for v in self.variables if v.space == ".shared"]


_VAR_RE = re.compile(
    r"^(?P<link>(?:\.(?:visible|extern|weak|common)\s+)*)"
    r"\.(?P<space>global|shared|local|const)\s+(?P<mods>(?:\.[\w:]+(?:\s+\d+)?\s+)*)"
    r"(?P<name>[A-Za-z_$%][\w$]*)\s*(?P<dims>(?:\[\s*\d*\s*\]\s*)*)"
    r"(?:=\s*(?P<init>.*?))?\s*;?\s*$",
    re.S,
)
_NUM_RE = re.compile(
    r"^[+-]?(?:0[xX][0-9a-fA-F]+U?|0[fF][0-9a-fA-F]{8}|0[dD][0-9a-fA-F]{16}|\d+U?)$"
)


def parse_variable(stmt: Directive) -> Variable:
    """Parse a variable declaration directive (module or function scope)."""
    text = " ".join(stmt.text.split())
    m = _VAR_RE.match(text)
    if not m:
        raise UnsupportedInstruction("unsupported variable declaration", stmt.line, stmt.text)
    mods = m["mods"].split()
    align = 0
    if ".align" in mods:
        align = int(mods[mods.index(".align") + 1])
    vec = 1
    for v in (".v2", ".v4", ".v8"):
        if v in mods:
            vec = int(v[2:])
    types = [t for t in mods if re.match(r"^\.(?:[bsuf](?:8|16|32|64)|pred)$", t)]
    if not types:
        raise UnsupportedInstruction("variable without a scalar type", stmt.line, stmt.text)
    ptype = types[-1]
    elem = type_bytes(ptype) * vec
    dims = [d.strip() for d in re.findall(r"\[\s*(\d*)\s*\]", m["dims"] or "")]
    init = b""
    count = 1
    extern = ".extern" in m["link"]
    if m["init"]:
        init_vals = _parse_init(m["init"], stmt)
        init = b"".join(_encode(v, ptype) for v in init_vals)
        if dims and dims[0] == "":
            dims[0] = str(len(init_vals) // max(1, int(np.prod([int(d) for d in dims[1:]] or [1]))))
    for d in dims:
        if d == "":
            if not extern:
                raise UnsupportedInstruction("unsized array without initializer", stmt.line)
            count = 0
        else:
            count *= int(d)
    size = elem * count
    if len(init) > size:
        raise UnsupportedInstruction("initializer larger than the variable", stmt.line, stmt.text)
    return Variable("." + m["space"], m["name"], size, align or elem, init, extern)


def _parse_init(text: str, stmt: Directive) -> list[str]:
    vals = [v.strip() for v in text.replace("{", " ").replace("}", " ").split(",")]
    vals = [v for v in vals if v]
    for v in vals:
        if not _NUM_RE.match(v):
            raise UnsupportedInstruction(f"unsupported initializer {v!r}", stmt.line, stmt.text)
    return vals


def _encode(v: str, ptype: str) -> bytes:
    size = type_bytes(ptype)
    if v[:2] in ("0f", "0F"):
        return struct.pack("<I", int(v[2:], 16))
    if v[:2] in ("0d", "0D"):
        return struct.pack("<Q", int(v[2:], 16))
    n = int(v.rstrip("U"), 0)
    if ptype.startswith(".f"):
        return struct.pack("<f" if size == 4 else "<d", float(n))
    return (n % (1 << (8 * size))).to_bytes(size, "little")


def param_layout(
    params: list[tuple[str, str, int | None, int | None]],
) -> tuple[list[ParamSlot], int]:
    """Offsets of kernel parameters in the param space: (name, type, align, array) each."""
    slots = []
    cursor = 0
    for name, ptype, align, array in params:
        size = type_bytes(ptype) if ptype else 8
        total = size * (array or 1)
        a = align or size
        cursor = -(-cursor // a) * a
        slots.append(ParamSlot(name, ptype, total, cursor))
        cursor += total
    return slots, cursor
