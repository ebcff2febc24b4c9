"""The Decoder: one function of a module into a Program.

It owns what every instruction shares (the register scopes, operand readers and writers,
addresses, guards, branch targets) and looks each opcode up in the one dispatch table
(`chronos.emulate.decode.table.DISPATCH`); the families' handlers build the closures.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from chronos.emulate.batch import find_runs
from chronos.emulate.decode.base import BOOL, I64, Decoded
from chronos.emulate.decode.table import DISPATCH
from chronos.emulate.errors import UnsupportedInstruction
from chronos.emulate.operands import (
    DTYPES,
    DYNAMIC_SPECIAL,
    SPECIAL_REGISTERS,
    UNSIGNED,
    Reader,
    Writer,
    convert,
    parse_immediate,
    sink_writer,
    unsupported,
)
from chronos.emulate.program import Op, Program, Variable, param_layout, parse_variable
from chronos.ptx import Brace, Directive, Function, Instruction, Label, Module
from chronos.ptx.model import parse_reg_decl

NO_REGISTER_DESTS = frozenset(("st", "red", "cp", "prefetch", "prefetchu"))
"""Opcodes whose first operand is an address, not a register they write."""

_SYMBOL = re.compile(r"^([A-Za-z_$][\w$]*)\s*(?:([+-])\s*(\d+))?$")
_ADDRESS = re.compile(r"^\[\s*([%$\w.]+)\s*(?:([+-])\s*(-?\s*(?:0[xX][0-9a-fA-F]+|\d+)))?\s*\]$")


class Decoder:
    """Decodes one function of a module into a Program."""

    def __init__(self, module: Module, func: Function):
        self.module = module
        self.func = func
        self.reg_names: list[str] = []
        self.reg_dtypes: list[np.dtype] = []
        self.scopes: list[dict[str, int]] = [{}]
        self.variables: dict[str, Variable] = {}
        self.param_names = {p.name for p in func.params}
        self.ins: Instruction | None = None

    # --- registers and operands -------------------------------------------------------------

    def declare(self, stmt: Directive) -> None:
        for decl in parse_reg_decl(stmt):
            types = [t for t in re.findall(r"\.\w+", decl.type) if t in DTYPES]
            if not types or ".v" in decl.type:
                raise UnsupportedInstruction(f"register type {decl.type}", stmt.line, stmt.text)
            dt = DTYPES[types[-1]]
            storage = BOOL if dt.kind == "b" else UNSIGNED[dt.itemsize]
            for name in decl.names():
                self.scopes[-1][name] = len(self.reg_names)
                self.reg_names.append(name)
                self.reg_dtypes.append(storage)

    def reg(self, name: str) -> int | None:
        """The index of register `name` in the innermost scope that declares it."""
        if len(self.scopes) == 1:
            return self.scopes[0].get(name)
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        return None

    def is_symbol(self, name: str) -> bool:
        return name in self.variables or name in self.param_names

    def read(self, text: str, dt: np.dtype) -> Reader:
        """A function machine -> value (length-N array or 0-d) of dtype `dt`."""
        t = text.strip()
        if t.startswith("!"):
            inner = self.read(t[1:], BOOL)
            return lambda m: ~inner(m)
        # Inline asm declares scoped registers with plain names ({.reg .f16 low; ...}).
        if t.startswith("%") or self.reg(t) is not None:
            return self._read_register(t, dt)
        imm = parse_immediate(t, dt)
        if imm is not None:
            return lambda m: imm
        if t == "WARP_SZ":
            ws = np.array(32).astype(dt)
            return lambda m: ws
        sm = _SYMBOL.match(t)
        if sm and self.is_symbol(sm.group(1)):
            name = sm.group(1)
            off = int(sm.group(3) or 0) * (-1 if sm.group(2) == "-" else 1)
            u = UNSIGNED[dt.itemsize] if dt.kind != "b" else np.dtype(np.uint64)

            def sym(m: Any) -> np.ndarray:
                v = (m.symbols[name] + off) % (1 << (8 * u.itemsize))
                return np.array(v, u).view(dt)

            return sym
        raise unsupported(f"unsupported operand {t!r}", self.ins)

    def _read_register(self, t: str, dt: np.dtype) -> Reader:
        """A declared register viewed (or converted) as `dt`, or a special register."""
        idx = self.reg(t)
        if idx is not None:
            sd = self.reg_dtypes[idx]
            if sd == dt:
                return lambda m: m.R[idx]
            if sd.itemsize == dt.itemsize and sd.kind != "b" and dt.kind != "b":
                return lambda m: m.R[idx].view(dt)
            if (sd.kind == "b") != (dt.kind == "b") and dt.kind != "u":
                raise unsupported(f"register {t} used with type {dt}", self.ins)
            return lambda m: convert(m.R[idx], sd, dt)
        name = t[1:]
        if name in SPECIAL_REGISTERS:
            if name in DYNAMIC_SPECIAL:
                return lambda m: convert(m.dynamic_special(name), np.dtype(np.uint64), dt)
            return lambda m: convert(m.special[name], m.special[name].dtype, dt)
        raise unsupported(f"undeclared register {t}", self.ins)

    def write(self, text: str, dt: np.dtype) -> Writer:
        t = text.strip()
        if t == "_":
            return sink_writer(dt)
        idx = self.reg(t)
        if idx is None:
            raise unsupported(f"destination {t!r} is not a declared register", self.ins)
        return Writer(idx, dt, self.reg_dtypes[idx])

    def address(self, text: str) -> Callable[[Any, np.ndarray | None], np.ndarray]:
        """A function (machine, lanes) -> int64 addresses of a `[base+off]` operand."""
        assert self.ins is not None
        m_ = _ADDRESS.match(text.strip())
        if not m_:
            raise unsupported(f"unsupported address {text!r}", self.ins)
        base = m_.group(1)
        off = 0
        if m_.group(2):
            off = int(m_.group(3).replace(" ", ""), 0) * (-1 if m_.group(2) == "-" else 1)
        if base.startswith("%"):
            return self._register_address(base, off)
        imm = parse_immediate(base, I64)
        if imm is not None:
            value = int(imm) + off
            return lambda m, lanes: np.full(m.N if lanes is None else len(lanes), value, np.int64)
        if not self.is_symbol(base):
            raise unsupported(f"unknown symbol {base!r} in address", self.ins)

        def addr_sym(m: Any, lanes: np.ndarray | None) -> np.ndarray:
            return np.full(m.N if lanes is None else len(lanes), m.symbols[base] + off, np.int64)

        return addr_sym

    def _register_address(
        self, base: str, off: int
    ) -> Callable[[Any, np.ndarray | None], np.ndarray]:
        """Addresses `base + off` with `base` a 32- or 64-bit register."""
        idx = self.reg(base)
        if idx is None:
            raise unsupported(f"undeclared register {base}", self.ins)
        sd = self.reg_dtypes[idx]
        if sd.itemsize == 8:

            def addr64(m: Any, lanes: np.ndarray | None) -> np.ndarray:
                r = m.R[idx].view(np.int64)
                return (r if lanes is None else r[lanes]) + off

            return addr64
        if sd.itemsize == 4:

            def addr32(m: Any, lanes: np.ndarray | None) -> np.ndarray:
                r = m.R[idx]
                return (r if lanes is None else r[lanes]).astype(np.int64) + off

            return addr32
        raise unsupported(f"address register {base} is not 32 or 64 bits", self.ins)

    # --- operand shapes shared by the families ----------------------------------------------

    def typed(self, ins: Instruction) -> np.dtype:
        """The dtype of `ins`'s (last) type modifier; unsupported without one."""
        t = ins.type
        if t is None:
            raise unsupported(f"{ins.opcode} without a type", ins)
        return DTYPES[t]

    def ops(self, ins: Instruction, n: int) -> tuple[str, ...]:
        """`ins`'s operands, which must be at least `n`."""
        if len(ins.operands) < n:
            raise unsupported(f"{ins.opcode} needs {n} operands", ins)
        return ins.operands

    def unary(
        self,
        ins: Instruction,
        f: Callable[[np.ndarray], np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        """`d = f(a)`."""
        ops = self.ops(ins, 2)
        ra = self.read(ops[1], dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m))), cls)

    def binary(
        self,
        ins: Instruction,
        f: Callable[[np.ndarray, np.ndarray], np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        b_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        """`d = f(a, b)`."""
        ops = self.ops(ins, 3)
        ra = self.read(ops[1], dt)
        rb = self.read(ops[2], b_dt or dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m), rb(m))), cls)

    def ternary(
        self,
        ins: Instruction,
        f: Callable[..., np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        c_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        """`d = f(a, b, c)`."""
        ops = self.ops(ins, 4)
        ra, rb = self.read(ops[1], dt), self.read(ops[2], dt)
        rc = self.read(ops[3], c_dt or out_dt or dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m), rb(m), rc(m))), cls)

    # --- decoding ---------------------------------------------------------------------------

    def decode(self) -> Program:
        for stmt in self.module.module_variables():
            var = parse_variable(stmt)
            self.variables[var.name] = var
        body = self.func.body
        labels: dict[str, int] = {}
        count = 0
        for s in body:
            if isinstance(s, Label):
                labels[s.name] = count
            elif isinstance(s, Instruction):
                count += 1
        ops: list[Op] = []
        for s in body:
            if isinstance(s, Brace):
                if s.char == "{":
                    self.scopes.append({})
                else:
                    self.scopes.pop()
            elif isinstance(s, Directive):
                self._directive(s)
            elif isinstance(s, Instruction):
                ops.append(self.decode_instruction(s, len(ops), labels))
        params, nbytes = param_layout(
            [(p.name, p.type, p.align, p.array) for p in self.func.params]
        )
        return Program(
            entry=self.func.name,
            ops=ops,
            reg_names=self.reg_names,
            reg_dtypes=self.reg_dtypes,
            params=params,
            param_bytes=nbytes,
            variables=list(self.variables.values()),
            labels=labels,
            static_instructions=len(ops),
            runs=find_runs(ops),
        )

    def _directive(self, s: Directive) -> None:
        """A declaration inside the function body: registers and variables."""
        if s.name == ".reg":
            self.declare(s)
        elif s.name in (".shared", ".local", ".global", ".const", ".extern"):
            var = parse_variable(s)
            self.variables[var.name] = var
        elif s.name == ".param":
            raise UnsupportedInstruction("function-scope .param (calls)", s.line, s.text)

    def decode_instruction(self, ins: Instruction, index: int, labels: dict[str, int]) -> Op:
        self.ins = ins
        handler = DISPATCH.get(ins.opcode)
        if handler is None:
            raise unsupported(f"unsupported instruction {ins.mnemonic}", ins)
        d = handler(self, ins)
        guard = None
        neg = False
        if ins.guard:
            g = ins.guard.lstrip("@")
            neg = g.startswith("!")
            guard = self.reg(g.lstrip("!"))
            if guard is None or self.reg_dtypes[guard].kind != "b":
                raise unsupported(f"guard {ins.guard} is not a predicate register", ins)
        target = -1
        if d.target is not None:
            if d.target not in labels:
                raise unsupported(f"branch to unknown label {d.target!r}", ins)
            target = labels[d.target]
        srcs = tuple(i for r in ins.registers_read() if (i := self.reg(r)) is not None)
        dsts = tuple(i for r in ins.dests if (i := self.reg(r)) is not None)
        if ins.opcode in NO_REGISTER_DESTS:
            dsts = ()
        return Op(
            index=index,
            line=ins.line,
            text=" ".join(ins.text.split()),
            kind=d.kind,
            fn=d.fn,
            cls=d.cls,
            guard=guard,
            guard_neg=neg,
            target=target,
            srcs=srcs,
            dsts=dsts,
            mem=d.mem,
            barrier_count=d.barrier_count,
            batch=d.batch,
        )
