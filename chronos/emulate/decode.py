"""PTX instruction -> NumPy closure, once per PTX text (cached by the text's hash).

Each instruction becomes an `Op` whose `fn(machine, mask)` computes the instruction for every
emulated thread at once and writes the lanes in `mask`. Operand lookup, type conversions and
modifier parsing happen here, once, so the executor's inner loop is a list walk and a call.

Anything outside the supported subset raises `UnsupportedInstruction` with its line: the
decoder never guesses what an instruction means.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronos.caching import BoundedCache
from chronos.emulate import approx as ax
from chronos.emulate import numerics as nx
from chronos.emulate.errors import EmulationError, TrapExecuted, UnsupportedInstruction
from chronos.emulate.operands import (
    DTYPES,
    DYNAMIC_SPECIAL,
    SIGNED,
    SPECIAL_REGISTERS,
    UNSIGNED,
    Reader,
    Writer,
    convert,
    parse_immediate,
    sink_writer,
    unsupported,
)
from chronos.emulate.program import (
    BAR,
    BRA,
    EXIT,
    OP,
    MemAccess,
    Op,
    Program,
    Variable,
    param_layout,
    parse_variable,
)
from chronos.ptx import Brace, Directive, Function, Instruction, Label, Module, parse, ptx_sha256
from chronos.ptx.model import parse_reg_decl, split_vector

Fn = Callable[[Any, np.ndarray | None], None]

ROUND_MODS = {".rn": "rn", ".rz": "rz", ".rm": "rm", ".rp": "rp"}
IROUND_MODS = {".rni": "rni", ".rzi": "rzi", ".rmi": "rmi", ".rpi": "rpi"}
IGNORED_MEM_MODS = re.compile(
    r"^\.(?:weak|volatile|relaxed|acquire|release|mmio|cta|cluster|gpu|sys|nc|ca|cg|cs|lu|cv|wb|wt"
    r"|L1::\w+|L2::\w+|level::\w+|unified)$"
)
SFU_OPS = frozenset("rcp sqrt rsqrt sin cos lg2 ex2 tanh".split())

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_BOOL = np.dtype(bool)
_U32 = np.dtype(np.uint32)
_I64 = np.dtype(np.int64)


@dataclass
class Decoded:
    """What a handler returns; the decoder adds position, guard and register sets."""

    fn: Fn | None
    cls: str
    kind: int = OP
    mem: MemAccess | None = None
    target: str | None = None
    barrier_count: int | None = None


def _types(ins: Instruction) -> list[str]:
    return [m for m in ins.modifiers if m in DTYPES]


def _rounding(ins: Instruction, default: str = "rn") -> str:
    for m in ins.modifiers:
        if m in ROUND_MODS:
            return ROUND_MODS[m]
    return default


def _scalar_bytes(dt: np.dtype) -> int:
    return dt.itemsize


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
            storage = _BOOL if dt.kind == "b" else UNSIGNED[dt.itemsize]
            for name in decl.names():
                self.scopes[-1][name] = len(self.reg_names)
                self.reg_names.append(name)
                self.reg_dtypes.append(storage)

    def reg(self, name: str) -> int | None:
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
            inner = self.read(t[1:], _BOOL)
            return lambda m: ~inner(m)
        # Inline asm declares scoped registers with plain names ({.reg .f16 low; ...}).
        if t.startswith("%") or self.reg(t) is not None:
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
        imm = parse_immediate(t, dt)
        if imm is not None:
            return lambda m: imm
        if t == "WARP_SZ":
            ws = np.array(32).astype(dt)
            return lambda m: ws
        sm = re.match(r"^([A-Za-z_$][\w$]*)\s*(?:([+-])\s*(\d+))?$", t)
        if sm and self.is_symbol(sm.group(1)):
            name = sm.group(1)
            off = int(sm.group(3) or 0) * (-1 if sm.group(2) == "-" else 1)
            u = UNSIGNED[dt.itemsize] if dt.kind != "b" else np.dtype(np.uint64)

            def sym(m: Any) -> np.ndarray:
                v = (m.symbols[name] + off) % (1 << (8 * u.itemsize))
                return np.array(v, u).view(dt)

            return sym
        raise unsupported(f"unsupported operand {t!r}", self.ins)

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
        m_ = re.match(
            r"^\[\s*([%$\w.]+)\s*(?:([+-])\s*(-?\s*(?:0[xX][0-9a-fA-F]+|\d+)))?\s*\]$", text.strip()
        )
        if not m_:
            raise unsupported(f"unsupported address {text!r}", self.ins)
        base = m_.group(1)
        off = 0
        if m_.group(2):
            off = int(m_.group(3).replace(" ", ""), 0) * (-1 if m_.group(2) == "-" else 1)
        if base.startswith("%"):
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
        imm = parse_immediate(base, _I64)
        if imm is not None:
            value = int(imm) + off
            return lambda m, lanes: np.full(m.N if lanes is None else len(lanes), value, np.int64)
        if not self.is_symbol(base):
            raise unsupported(f"unknown symbol {base!r} in address", self.ins)

        def addr_sym(m: Any, lanes: np.ndarray | None) -> np.ndarray:
            return np.full(m.N if lanes is None else len(lanes), m.symbols[base] + off, np.int64)

        return addr_sym

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
                if s.name == ".reg":
                    self.declare(s)
                elif s.name in (".shared", ".local", ".global", ".const", ".extern"):
                    var = parse_variable(s)
                    self.variables[var.name] = var
                elif s.name == ".param":
                    raise UnsupportedInstruction("function-scope .param (calls)", s.line, s.text)
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
        )

    def decode_instruction(self, ins: Instruction, index: int, labels: dict[str, int]) -> Op:
        self.ins = ins
        handler = getattr(self, "_i_" + ins.opcode.replace("::", "_"), None)
        if handler is None:
            raise unsupported(f"unsupported instruction {ins.mnemonic}", ins)
        d: Decoded = handler(ins)
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
        if ins.opcode in ("st", "red", "cp", "prefetch", "prefetchu"):
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
        )

    # --- helpers for handlers ---------------------------------------------------------------

    def _typed(self, ins: Instruction) -> np.dtype:
        t = ins.type
        if t is None:
            raise unsupported(f"{ins.opcode} without a type", ins)
        return DTYPES[t]

    def _ops(self, ins: Instruction, n: int) -> tuple[str, ...]:
        if len(ins.operands) < n:
            raise unsupported(f"{ins.opcode} needs {n} operands", ins)
        return ins.operands

    def _float_cls(self, dt: np.dtype) -> str:
        return "fp64" if dt == _F64 else ("fp16" if dt.itemsize == 2 else "fma")

    def _unary(
        self,
        ins: Instruction,
        f: Callable[[np.ndarray], np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        ops = self._ops(ins, 2)
        ra = self.read(ops[1], dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m))), cls)

    def _binary(
        self,
        ins: Instruction,
        f: Callable[[np.ndarray, np.ndarray], np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        b_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        ops = self._ops(ins, 3)
        ra = self.read(ops[1], dt)
        rb = self.read(ops[2], b_dt or dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m), rb(m))), cls)

    def _ternary(
        self,
        ins: Instruction,
        f: Callable[..., np.ndarray],
        dt: np.dtype,
        out_dt: np.dtype | None = None,
        c_dt: np.dtype | None = None,
        cls: str = "alu",
    ) -> Decoded:
        ops = self._ops(ins, 4)
        ra, rb = self.read(ops[1], dt), self.read(ops[2], dt)
        rc = self.read(ops[3], c_dt or out_dt or dt)
        w = self.write(ops[0], out_dt or dt)
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m), rb(m), rc(m))), cls)

    def _float_wrap(
        self, ins: Instruction, dt: np.dtype, f: Callable[..., np.ndarray]
    ) -> Callable[..., np.ndarray]:
        """Apply .ftz to inputs and output, and .sat to the output, around a float op."""
        ftz = ins.has(".ftz") and dt == _F32
        sat = ins.has(".sat")
        if not ftz and not sat:
            return f

        def wrapped(*args: np.ndarray) -> np.ndarray:
            if ftz:
                args = tuple(nx.ftz32(a) for a in args)
            r = f(*args)
            if ftz:
                r = nx.ftz32(r)
            if sat:
                r = nx.sat01(r)
            return r

        return wrapped

    def _f16(self, ins: Instruction, f64op: Callable[..., np.ndarray], n: int) -> Decoded:
        """f16 / f16x2 arithmetic: exact in float64, one rounding (round to odd, then f16)."""
        t = ins.type
        packed = t == ".f16x2"
        mode = _rounding(ins)
        ops = self._ops(ins, n + 1)
        carrier = _U32 if packed else np.dtype(np.uint16)
        readers = [self.read(o, carrier) for o in ops[1 : n + 1]]
        w = self.write(ops[0], carrier)
        sat = ins.has(".sat")

        def one(vals: list[np.ndarray]) -> np.ndarray:
            s, e = f64op(*[v.view(np.float16).astype(np.float64) for v in vals])
            r = nx.f64_to_f16(
                nx.round_odd(np.asarray(s, np.float64), np.asarray(e, np.float64)), mode
            )
            if sat:
                r = nx.sat01(r)
            return np.asarray(r, np.float16).view(np.uint16)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            vals = [np.atleast_1d(np.asarray(r(m))) for r in readers]
            if packed:
                lo = one([(v & 0xFFFF).astype(np.uint16) for v in vals]).astype(np.uint32)
                hi = one([(v >> 16).astype(np.uint16) for v in vals]).astype(np.uint32)
                w.put(m, mask, lo | (hi << np.uint32(16)))
            else:
                w.put(m, mask, one(vals))

        return Decoded(fn, "fp16")

    # --- integer and float arithmetic -------------------------------------------------------

    def _i_add(self, ins: Instruction) -> Decoded:
        return self._addsub(ins, 1)

    def _i_sub(self, ins: Instruction) -> Decoded:
        return self._addsub(ins, -1)

    def _addsub(self, ins: Instruction, sign: int) -> Decoded:
        if ins.has(".cc"):
            raise unsupported("carry-chain arithmetic (.cc)", ins)
        dt = self._typed(ins)
        t = ins.type
        if t in (".f16", ".f16x2"):
            return self._f16(ins, lambda a, b: nx.two_sum(a, sign * b), 2)
        if dt.kind == "f":
            mode = _rounding(ins)
            if dt == _F32:
                base = nx.add_f32
            elif dt == _F64:
                base = nx.add_f64
            else:
                raise unsupported(f"{ins.mnemonic}", ins)
            f = self._float_wrap(ins, dt, lambda a, b: base(a, b if sign > 0 else -b, mode))
            return self._binary(ins, f, dt, cls=self._float_cls(dt))
        if ins.has(".sat"):
            if dt != np.dtype(np.int32):
                raise unsupported("saturating add/sub on a type other than .s32", ins)

            def sat(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                r = a.astype(np.int64) + sign * np.asarray(b).astype(np.int64)
                return np.clip(r, -(2**31), 2**31 - 1).astype(np.int32)

            return self._binary(ins, sat, dt)
        if sign > 0:
            return self._binary(ins, np.add, dt)
        return self._binary(ins, np.subtract, dt)

    def _i_mul(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        t = ins.type
        if t in (".f16", ".f16x2"):
            return self._f16(ins, lambda a, b: (a * b, np.zeros_like(a)), 2)
        if dt.kind == "f":
            mode = _rounding(ins)
            base = nx.mul_f32 if dt == _F32 else nx.mul_f64
            f = self._float_wrap(ins, dt, lambda a, b: base(a, b, mode))
            return self._binary(ins, f, dt, cls=self._float_cls(dt))
        wide = (
            np.dtype(SIGNED[dt.itemsize * 2] if dt.kind == "i" else UNSIGNED[dt.itemsize * 2])
            if dt.itemsize < 8
            else None
        )
        if ins.has(".wide"):
            if wide is None:
                raise unsupported("mul.wide on 64-bit operands", ins)
            return self._binary(
                ins,
                lambda a, b: a.astype(wide) * np.asarray(b).astype(wide),
                dt,
                out_dt=wide,
                cls="imul",
            )
        if ins.has(".hi"):
            return self._binary(ins, lambda a, b: _mul_hi(a, b, dt, wide), dt, cls="imul")
        return self._binary(ins, np.multiply, dt, cls="imul")

    def _i_mad(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if dt.kind == "f":
            return self._i_fma(ins)
        if ins.has(".cc") or ins.opcode == "madc":
            raise unsupported("carry-chain arithmetic (.cc)", ins)
        wide = (
            np.dtype(SIGNED[dt.itemsize * 2] if dt.kind == "i" else UNSIGNED[dt.itemsize * 2])
            if dt.itemsize < 8
            else None
        )
        if ins.has(".wide"):
            if wide is None:
                raise unsupported("mad.wide on 64-bit operands", ins)
            return self._ternary(
                ins,
                lambda a, b, c: a.astype(wide) * np.asarray(b).astype(wide) + c,
                dt,
                out_dt=wide,
                cls="imul",
            )
        if ins.has(".hi"):
            if ins.has(".sat"):
                raise unsupported("mad.hi.sat", ins)
            return self._ternary(ins, lambda a, b, c: _mul_hi(a, b, dt, wide) + c, dt, cls="imul")
        return self._ternary(ins, lambda a, b, c: a * b + c, dt, cls="imul")

    def _i_mul24(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if ins.has(".hi"):
            raise unsupported("mul24.hi", ins)

        def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return (_low24(a, dt) * _low24(b, dt)).astype(np.uint64).astype(np.uint32).view(dt)

        return self._binary(ins, f, dt, cls="imul")

    def _i_mad24(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if ins.has(".hi") or ins.has(".sat"):
            raise unsupported("mad24.hi / mad24.sat", ins)

        def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            p = (_low24(a, dt) * _low24(b, dt)).astype(np.uint64).astype(np.uint32).view(dt)
            return p + c

        return self._ternary(ins, f, dt, cls="imul")

    def _i_fma(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        t = ins.type
        if t in (".f16", ".f16x2"):
            return self._f16(ins, lambda a, b, c: nx.two_sum(a * b, c), 3)
        mode = _rounding(ins)
        if dt == _F32:
            f = self._float_wrap(ins, dt, lambda a, b, c: nx.fma_f32(a, b, c, mode))
        elif dt == _F64:
            f = self._float_wrap(ins, dt, lambda a, b, c: nx.fma_f64(a, b, c, mode))
        else:
            raise unsupported(f"{ins.mnemonic}", ins)
        return self._ternary(ins, f, dt, cls=self._float_cls(dt))

    def _i_sad(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)

        def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            wide = np.int64 if dt.itemsize <= 4 else dt
            diff = np.abs(np.asarray(a).astype(wide) - np.asarray(b).astype(wide))
            return (diff.astype(dt) + c).astype(dt)

        return self._ternary(ins, f, dt)

    def _i_div(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if dt == _F32 and ins.has(".approx"):
            return self._approx(ins, "div.approx", 2)
        if dt == _F32 and ins.has(".full"):
            return self._approx(ins, "div.full", 2)
        if dt.kind == "f":
            mode = _rounding(ins)
            if dt == _F32:
                f = self._float_wrap(ins, dt, lambda a, b: nx.div_f32(a, b, mode))
            else:
                f = self._float_wrap(ins, dt, lambda a, b: nx.div_f64(a, b, mode))
            return self._binary(ins, f, dt, cls="sfu")
        return self._binary(ins, lambda a, b: nx.trunc_div(a, b)[0], dt, cls="idiv")

    def _i_rem(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._binary(ins, lambda a, b: nx.trunc_div(a, b)[1], dt, cls="idiv")

    def _i_abs(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if dt.kind == "f":
            u = UNSIGNED[dt.itemsize]
            mask = np.array((1 << (8 * dt.itemsize - 1)) - 1, u)
            f = self._float_wrap(ins, dt, lambda a: (np.asarray(a).view(u) & mask).view(dt))
            return self._unary(ins, f, dt, cls=self._float_cls(dt))
        return self._unary(ins, np.abs, dt)

    def _i_neg(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if dt.kind == "f":
            u = UNSIGNED[dt.itemsize]
            bit = np.array(1 << (8 * dt.itemsize - 1), u)
            f = self._float_wrap(ins, dt, lambda a: (np.asarray(a).view(u) ^ bit).view(dt))
            return self._unary(ins, f, dt, cls=self._float_cls(dt))
        return self._unary(ins, np.negative, dt)

    def _minmax(self, ins: Instruction, is_max: bool) -> Decoded:
        dt = self._typed(ins)
        if dt.kind == "f":
            nan = ins.has(".NaN")
            f = self._float_wrap(ins, dt, lambda a, b: nx.fminmax(a, b, is_max, nan))
            return self._binary(ins, f, dt, cls=self._float_cls(dt))
        return self._binary(ins, np.maximum if is_max else np.minimum, dt)

    def _i_min(self, ins: Instruction) -> Decoded:
        return self._minmax(ins, False)

    def _i_max(self, ins: Instruction) -> Decoded:
        return self._minmax(ins, True)

    def _sfu(
        self,
        ins: Instruction,
        f32: Callable[[np.ndarray], np.ndarray],
        f64: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> Decoded:
        dt = self._typed(ins)
        if dt == _F32:
            f = self._float_wrap(ins, dt, f32)
        elif dt == _F64 and f64 is not None:
            f = self._float_wrap(ins, dt, f64)
        else:
            raise unsupported(f"{ins.mnemonic}", ins)
        return self._unary(ins, f, dt, cls="sfu")

    def _approx(self, ins: Instruction, op: str, n: int) -> Decoded:
        """An f32 approximate instruction (chronos.emulate.approx): nominal or pushed to its
        bound by the run's `Machine.approx`, with `.ftz` on inputs and result."""
        if self._typed(ins) != _F32:
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, n + 1)
        readers = [self.read(o, _F32) for o in ops[1 : n + 1]]
        w = self.write(ops[0], _F32)
        ftz, sat = ins.has(".ftz"), ins.has(".sat")

        def fn(m: Any, mask: np.ndarray | None) -> None:
            args = tuple(r(m) for r in readers)
            if ftz:
                args = tuple(nx.ftz32(a) for a in args)
            r = ax.evaluate(op, args, m.approx)
            if ftz:
                r = nx.ftz32(r)
            if sat:
                r = nx.sat01(r)
            w.put(m, mask, r)

        return Decoded(fn, "sfu")

    def _approx_f64(self, ins: Instruction, f: Callable[[np.ndarray], np.ndarray]) -> Decoded:
        """`rcp/rsqrt.approx.f64`: IEEE-rounded nominally; the ISA bounds neither."""
        ops = self._ops(ins, 2)
        ra = self.read(ops[1], _F64)
        w = self.write(ops[0], _F64)
        return Decoded(lambda m, mask: w.put(m, mask, ax.unbounded_f64(f(ra(m)), m.approx)), "sfu")

    def _i_rcp(self, ins: Instruction) -> Decoded:
        if ins.has(".approx"):
            if ins.type == ".f64":
                return self._approx_f64(ins, lambda a: nx.div_f64(np.float64(1.0), a))
            return self._approx(ins, "rcp", 1)
        mode = _rounding(ins)
        one32 = np.float32(1.0)
        return self._sfu(
            ins,
            lambda a: nx.div_f32(one32, a, mode),
            lambda a: nx.div_f64(np.float64(1.0), a, mode),
        )

    def _i_sqrt(self, ins: Instruction) -> Decoded:
        if ins.has(".approx"):
            return self._approx(ins, "sqrt", 1)
        mode = _rounding(ins)
        if ins.type == ".f64" and mode != "rn":
            raise unsupported("directed-rounding sqrt.f64", ins)
        return self._sfu(ins, lambda a: nx.sqrt_f32(a, mode), np.sqrt)

    def _i_rsqrt(self, ins: Instruction) -> Decoded:
        if ins.type == ".f64":
            return self._approx_f64(ins, _rsqrt64)
        return self._approx(ins, "rsqrt", 1)

    def _i_sin(self, ins: Instruction) -> Decoded:
        return self._approx(ins, "sin", 1)

    def _i_cos(self, ins: Instruction) -> Decoded:
        return self._approx(ins, "cos", 1)

    def _i_lg2(self, ins: Instruction) -> Decoded:
        return self._approx(ins, "lg2", 1)

    def _i_ex2(self, ins: Instruction) -> Decoded:
        return self._approx(ins, "ex2", 1)

    def _i_tanh(self, ins: Instruction) -> Decoded:
        return self._approx(ins, "tanh", 1)

    def _i_copysign(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._binary(ins, lambda a, b: np.copysign(b, a), dt, cls=self._float_cls(dt))

    def _i_testp(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        tiny = np.finfo(dt).tiny
        tests: dict[str, Callable[[np.ndarray], np.ndarray]] = {
            ".finite": np.isfinite,
            ".infinite": np.isinf,
            ".number": lambda a: ~np.isnan(a),
            ".notanumber": np.isnan,
            ".normal": lambda a: np.isfinite(a) & (np.abs(a) >= tiny),
            ".subnormal": lambda a: (a != 0) & (np.abs(a) < tiny),
        }
        for mod, f in tests.items():
            if ins.has(mod):
                return self._unary(ins, f, dt, out_dt=_BOOL)
        raise unsupported(f"{ins.mnemonic}", ins)

    # --- bit operations ---------------------------------------------------------------------

    def _logic(
        self, ins: Instruction, f: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> Decoded:
        return self._binary(ins, f, self._typed(ins))

    def _i_and(self, ins: Instruction) -> Decoded:
        return self._logic(ins, np.bitwise_and)

    def _i_or(self, ins: Instruction) -> Decoded:
        return self._logic(ins, np.bitwise_or)

    def _i_xor(self, ins: Instruction) -> Decoded:
        return self._logic(ins, np.bitwise_xor)

    def _i_not(self, ins: Instruction) -> Decoded:
        return self._unary(ins, np.invert, self._typed(ins))

    def _i_cnot(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._unary(ins, lambda a: (a == 0).astype(dt), dt)

    def _i_lop3(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        ops = self._ops(ins, 5)
        lut_imm = parse_immediate(ops[4], _U32)
        if lut_imm is None:
            raise unsupported("lop3 with a non-immediate LUT", ins)
        lut = int(lut_imm)

        def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            r = np.zeros(np.broadcast(a, b, c).shape, dt)
            for i in range(8):
                if lut >> i & 1:
                    r = r | ((a if i & 4 else ~a) & (b if i & 2 else ~b) & (c if i & 1 else ~c))
            return r

        return self._ternary(ins, f, dt)

    def _i_shl(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        bits = dt.itemsize * 8
        u = UNSIGNED[dt.itemsize]

        def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            amt = np.asarray(b, np.uint32)
            r = np.asarray(a).view(u) << np.minimum(amt, bits - 1).astype(u)
            return np.where(amt >= bits, u.type(0), r).astype(u).view(dt)

        return self._binary(ins, f, dt, b_dt=_U32)

    def _i_shr(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        bits = dt.itemsize * 8

        def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            amt = np.asarray(b, np.uint32)
            r = np.asarray(a) >> np.minimum(amt, bits - 1).astype(dt)
            if dt.kind == "i":
                return r
            return np.where(amt >= bits, dt.type(0), r).astype(dt)

        return self._binary(ins, f, dt, b_dt=_U32)

    def _i_shf(self, ins: Instruction) -> Decoded:
        left = ins.has(".l")
        clamp = ins.has(".clamp")
        return self._ternary(ins, lambda a, b, c: nx.funnel_shift(a, b, c, left, clamp), _U32)

    def _i_popc(self, ins: Instruction) -> Decoded:
        return self._unary(ins, nx.popc, self._typed(ins), out_dt=_U32)

    def _i_clz(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._unary(ins, lambda a: nx.clz(a, dt.itemsize * 8), dt, out_dt=_U32)

    def _i_bfind(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        shift = ins.has(".shiftamt")
        return self._unary(
            ins, lambda a: nx.bfind(a, dt.itemsize * 8, dt.kind == "i", shift), dt, out_dt=_U32
        )

    def _i_brev(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._unary(ins, lambda a: nx.brev(a, dt.itemsize * 8), dt)

    def _i_bfe(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        ops = self._ops(ins, 4)
        ra = self.read(ops[1], dt)
        rb, rc = self.read(ops[2], _U32), self.read(ops[3], _U32)
        w = self.write(ops[0], dt)
        bits, signed = dt.itemsize * 8, dt.kind == "i"
        return Decoded(
            lambda m, mask: w.put(m, mask, nx.bfe(ra(m), rb(m), rc(m), bits, signed)), "alu"
        )

    def _i_bfi(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        ops = self._ops(ins, 5)
        ra, rb = self.read(ops[1], dt), self.read(ops[2], dt)
        rc, rd = self.read(ops[3], _U32), self.read(ops[4], _U32)
        w = self.write(ops[0], dt)
        bits = dt.itemsize * 8
        return Decoded(
            lambda m, mask: w.put(m, mask, nx.bfi(ra(m), rb(m), rc(m), rd(m), bits).view(dt)), "alu"
        )

    def _i_prmt(self, ins: Instruction) -> Decoded:
        mode = next(
            (
                m[1:]
                for m in ins.modifiers
                if m in (".f4e", ".b4e", ".rc8", ".ecl", ".ecr", ".rc16")
            ),
            None,
        )
        return self._ternary(ins, lambda a, b, c: nx.prmt(a, b, c, mode), _U32)

    # --- comparison and selection -----------------------------------------------------------

    def _compare(self, ins: Instruction, cmp: str, dt: np.dtype) -> Callable[..., np.ndarray]:
        ftz = ins.has(".ftz") and dt == _F32
        if dt.kind == "f":
            base = cmp.rstrip("u") if cmp not in ("num", "nan") else cmp
            unordered = cmp.endswith("u") and cmp not in ("num",)
            ops = {
                "eq": np.equal,
                "ne": np.not_equal,
                "lt": np.less,
                "le": np.less_equal,
                "gt": np.greater,
                "ge": np.greater_equal,
            }

            def fcmp(a: np.ndarray, b: np.ndarray) -> np.ndarray:
                if ftz:
                    a, b = nx.ftz32(a), nx.ftz32(b)
                nan = np.isnan(a) | np.isnan(b)
                if base == "num":
                    return ~nan
                if base == "nan":
                    return nan
                r = ops[base](a, b)
                return (r | nan) if unordered else (r & ~nan)

            if cmp not in ("eq ne lt le gt ge equ neu ltu leu gtu geu num nan".split()):
                raise unsupported(f"comparison {cmp} on floats", ins)
            return fcmp
        signed_ops = {
            "eq": np.equal,
            "ne": np.not_equal,
            "lt": np.less,
            "le": np.less_equal,
            "gt": np.greater,
            "ge": np.greater_equal,
        }
        unsigned_ops = {
            "lo": np.less,
            "ls": np.less_equal,
            "hi": np.greater,
            "hs": np.greater_equal,
        }
        if cmp in signed_ops:
            return signed_ops[cmp]
        if cmp in unsigned_ops:
            f = unsigned_ops[cmp]
            u = UNSIGNED[dt.itemsize]
            return lambda a, b: f(np.asarray(a).view(u), np.asarray(b).view(u))
        raise unsupported(f"comparison {cmp}", ins)

    def _cmp_and_bool(self, ins: Instruction) -> tuple[str, str | None]:
        names = [m[1:] for m in ins.modifiers if m not in DTYPES and m != ".ftz"]
        if not names:
            raise unsupported("comparison without an operator", ins)
        cmp = names[0]
        boolop = names[1] if len(names) > 1 else None
        if boolop not in (None, "and", "or", "xor"):
            raise unsupported(f"boolean operator {boolop}", ins)
        return cmp, boolop

    def _i_setp(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        if ins.type in (".f16x2", ".bf16x2", ".f16", ".bf16"):
            raise unsupported("half-precision setp", ins)
        cmp, boolop = self._cmp_and_bool(ins)
        f = self._compare(ins, cmp, dt)
        ops = self._ops(ins, 3)
        dests = [d.strip() for d in ops[0].split("|")]
        wp = self.write(dests[0], _BOOL)
        wq = self.write(dests[1], _BOOL) if len(dests) > 1 else None
        ra, rb = self.read(ops[1], dt), self.read(ops[2], dt)
        rc = self.read(ops[3], _BOOL) if boolop else None
        comb = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}.get(boolop or "")

        def fn(m: Any, mask: np.ndarray | None) -> None:
            t = f(ra(m), rb(m))
            if comb is not None and rc is not None:
                c = rc(m)
                p, q = comb(t, c), comb(~t, c)
            else:
                p, q = t, ~t
            wp.put(m, mask, p)
            if wq is not None:
                wq.put(m, mask, q)

        return Decoded(fn, self._float_cls(dt) if dt.kind == "f" else "alu")

    def _i_set(self, ins: Instruction) -> Decoded:
        types = _types(ins)
        if len(types) != 2:
            raise unsupported("set needs destination and source types", ins)
        ddt, sdt = DTYPES[types[0]], DTYPES[types[1]]
        cmp, boolop = self._cmp_and_bool(ins)
        f = self._compare(ins, cmp, sdt)
        ops = self._ops(ins, 3)
        ra, rb = self.read(ops[1], sdt), self.read(ops[2], sdt)
        rc = self.read(ops[3], _BOOL) if boolop else None
        comb = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor}.get(boolop or "")
        w = self.write(ops[0], ddt)
        true = np.array(1.0, ddt) if ddt.kind == "f" else np.array(-1).astype(ddt)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            t = f(ra(m), rb(m))
            if comb is not None and rc is not None:
                t = comb(t, rc(m))
            w.put(m, mask, np.where(t, true, ddt.type(0)).astype(ddt))

        return Decoded(fn, "alu")

    def _i_selp(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        return self._ternary(ins, lambda a, b, c: np.where(c, a, b).astype(dt), dt, c_dt=_BOOL)

    def _i_slct(self, ins: Instruction) -> Decoded:
        types = _types(ins)
        ddt, cdt = DTYPES[types[0]], DTYPES[types[-1]]
        ftz = ins.has(".ftz")

        def f(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
            if ftz and cdt == _F32:
                c = nx.ftz32(c)
            ge = (c >= 0) if cdt.kind == "i" else ~(np.asarray(c) < 0) & ~np.isnan(c)
            return np.where(ge, a, b).astype(ddt)

        return self._ternary(ins, f, ddt, c_dt=cdt)

    # --- data movement ----------------------------------------------------------------------

    def _i_mov(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        ops = self._ops(ins, 2)
        dst, src = ops[0].strip(), ops[1].strip()
        if dst.startswith("{"):
            parts = split_vector(dst)
            return self._unpack(ins, parts, src, dt)
        if src.startswith("{"):
            parts = split_vector(src)
            return self._pack(ins, dst, parts, dt)
        gm = re.match(r"^generic\(\s*([A-Za-z_$][\w$]*)\s*\)$", src)
        if gm:
            name = gm.group(1)
            w = self.write(dst, dt)
            if not self.is_symbol(name):
                raise unsupported(f"unknown symbol {name}", ins)
            return Decoded(
                lambda m, mask: w.put(m, mask, np.array(m.generic_symbol(name), dt)), "alu"
            )
        ra = self.read(src, dt)
        w = self.write(dst, dt)
        return Decoded(lambda m, mask: w.put(m, mask, ra(m)), "alu")

    def _unpack(self, ins: Instruction, parts: list[str], src: str, dt: np.dtype) -> Decoded:
        n = len(parts)
        piece = UNSIGNED[dt.itemsize // n]
        ra = self.read(src, UNSIGNED[dt.itemsize])
        writers = [self.write(p, piece) for p in parts]
        shift = dt.itemsize * 8 // n
        u = UNSIGNED[dt.itemsize]

        def fn(m: Any, mask: np.ndarray | None) -> None:
            v = np.asarray(ra(m))
            for k, w in enumerate(writers):
                w.put(m, mask, ((v >> u.type(k * shift)) & u.type((1 << shift) - 1)).astype(piece))

        return Decoded(fn, "alu")

    def _pack(self, ins: Instruction, dst: str, parts: list[str], dt: np.dtype) -> Decoded:
        n = len(parts)
        piece = UNSIGNED[dt.itemsize // n]
        readers = [self.read(p, piece) for p in parts]
        u = UNSIGNED[dt.itemsize]
        shift = dt.itemsize * 8 // n
        w = self.write(dst, u)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            acc = np.asarray(readers[0](m)).astype(u)
            for k in range(1, n):
                acc = acc | (np.asarray(readers[k](m)).astype(u) << u.type(k * shift))
            w.put(m, mask, acc)

        return Decoded(fn, "alu")

    def _i_cvt(self, ins: Instruction) -> Decoded:
        types = _types(ins)
        if len(types) != 2:
            raise unsupported("cvt needs two types", ins)
        dname, sname = types
        if dname in (".f16x2", ".bf16x2"):
            return self._cvt_pack(ins, dname, sname)
        ddt, sdt = DTYPES[dname], DTYPES[sname]
        ftz = ins.has(".ftz")
        sat = ins.has(".sat")
        irnd = next((IROUND_MODS[m] for m in ins.modifiers if m in IROUND_MODS), None)
        frnd = _rounding(ins)
        sfloat = sdt.kind == "f" or sname == ".bf16"
        dfloat = ddt.kind == "f" or dname == ".bf16"

        def to_float_value(a: np.ndarray) -> np.ndarray:
            if sname == ".bf16":
                return nx.bf16_bits_to_f32(a)
            v = np.asarray(a)
            if ftz and v.dtype == _F32:
                v = nx.ftz32(v)
            return v

        def f(a: np.ndarray) -> np.ndarray:
            a = np.asarray(a)
            if not sfloat and not dfloat:
                if sat:
                    info = np.iinfo(ddt)
                    if a.dtype.kind == "u":
                        return (
                            np.minimum(a, np.array(info.max).astype(a.dtype)).astype(ddt)
                            if info.max < np.iinfo(a.dtype).max
                            else a.astype(ddt)
                        )
                    lo = max(info.min, np.iinfo(a.dtype).min)
                    hi = min(info.max, np.iinfo(a.dtype).max)
                    return np.clip(a, lo, hi).astype(ddt)
                return a.astype(ddt)
            if not sfloat and dfloat:
                if dname == ".bf16":
                    r = nx.f32_to_bf16_bits(nx.int_to_float(a, _F32, frnd), frnd)
                    return r
                r = nx.int_to_float(a, ddt, frnd)
                return _post_float(r, ddt, ftz, sat)
            v = to_float_value(a)
            if sfloat and not dfloat:
                return nx.float_to_int(v, ddt, irnd or "rzi")
            if irnd is not None:
                if dname != sname:
                    raise unsupported("integer rounding between different float types", ins)
                r = nx.round_to_int_float(v, irnd).astype(v.dtype)
                return _post_float(r, ddt, ftz, sat)
            if dname == ".bf16":
                return nx.f32_to_bf16_bits(np.asarray(v, np.float32), frnd)
            if ddt == _F32:
                r = nx.f64_to_f32(np.asarray(v, np.float64), frnd)
            elif ddt == _F64:
                r = np.asarray(v, np.float64)
            else:
                r = nx.f64_to_f16(np.asarray(v, np.float64), frnd)
            return _post_float(r, ddt, ftz, sat)

        ops = self._ops(ins, 2)
        ra = self.read(ops[1], sdt)
        w = self.write(ops[0], ddt)
        cls = "conv" if (sfloat or dfloat) and sname != dname else "alu"
        return Decoded(lambda m, mask: w.put(m, mask, f(ra(m))), cls)

    def _cvt_pack(self, ins: Instruction, dname: str, sname: str) -> Decoded:
        if sname != ".f32":
            raise unsupported(f"{ins.mnemonic}", ins)
        mode = _rounding(ins)
        ops = self._ops(ins, 3)
        ra, rb = self.read(ops[1], _F32), self.read(ops[2], _F32)
        w = self.write(ops[0], _U32)

        def half(x: np.ndarray) -> np.ndarray:
            if dname == ".bf16x2":
                return nx.f32_to_bf16_bits(x, mode).astype(np.uint32)
            return (
                np.asarray(nx.f64_to_f16(np.asarray(x, np.float64), mode))
                .view(np.uint16)
                .astype(np.uint32)
            )

        return Decoded(
            lambda m, mask: w.put(m, mask, (half(ra(m)) << np.uint32(16)) | half(rb(m))), "conv"
        )

    def _i_cvta(self, ins: Instruction) -> Decoded:
        dt = self._typed(ins)
        to = ins.has(".to")
        space = ins.space
        if space not in (".global", ".shared", ".local", ".const", ".param"):
            raise unsupported(f"{ins.mnemonic}", ins)
        u = UNSIGNED[dt.itemsize]

        def f(m: Any, a: np.ndarray) -> np.ndarray:
            base = np.array(m.window(space), np.uint64).astype(u)
            return (a - base) if to else (a + base)

        ops = self._ops(ins, 2)
        ra = self.read(ops[1], u)
        w = self.write(ops[0], u)
        return Decoded(lambda m, mask: w.put(m, mask, f(m, np.asarray(ra(m)))), "alu")

    def _i_isspacep(self, ins: Instruction) -> Decoded:
        space = next(
            (m for m in ins.modifiers if m in (".global", ".shared", ".local", ".const", ".param")),
            None,
        )
        if space is None:
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, 2)
        ra = self.read(ops[1], _I64)
        w = self.write(ops[0], _BOOL)
        return Decoded(lambda m, mask: w.put(m, mask, m.in_space(space, ra(m))), "alu")

    # --- memory -----------------------------------------------------------------------------

    def _mem_space(self, ins: Instruction) -> str:
        space = ins.space or ".generic"
        for mod in ins.modifiers:
            if mod in DTYPES or mod in (".v2", ".v4", ".v8") or mod == space:
                continue
            if mod.startswith(".shared::") or mod.startswith(".global"):
                continue
            if not IGNORED_MEM_MODS.match(mod):
                raise unsupported(f"memory modifier {mod}", ins)
        return space

    def _i_ld(self, ins: Instruction) -> Decoded:
        space = self._mem_space(ins)
        if ins.has(".shared::cluster"):
            raise unsupported("cluster shared memory", ins)
        dt = self._typed(ins)
        ops = self._ops(ins, 2)
        dsts = split_vector(ops[0])
        width = len(dsts)
        if width != ins.vector_width:
            raise unsupported("vector width does not match its operand", ins)
        writers = [self.write(d, dt) for d in dsts]
        addr = self.address(ops[1])
        nbytes = dt.itemsize * width

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lanes = None if mask is None else np.flatnonzero(mask)
            a = addr(m, lanes)
            vals = m.load(space, a, lanes, dt, width, nbytes)
            for w, v in zip(writers, vals, strict=True):
                w.scatter(m, lanes, v)

        cls = "ld" + ("" if space == ".generic" else space)
        return Decoded(fn, cls, mem=MemAccess(space, True, False, dt.itemsize, width))

    _i_ldu = _i_ld

    def _i_st(self, ins: Instruction) -> Decoded:
        space = self._mem_space(ins)
        if space in (".param", ".const"):
            raise unsupported(f"store to {space}", ins)
        dt = self._typed(ins)
        ops = self._ops(ins, 2)
        srcs = split_vector(ops[1])
        width = len(srcs)
        if width != ins.vector_width:
            raise unsupported("vector width does not match its operand", ins)
        readers = [self.read(s, dt) for s in srcs]
        addr = self.address(ops[0])
        nbytes = dt.itemsize * width

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lanes = None if mask is None else np.flatnonzero(mask)
            a = addr(m, lanes)
            vals = []
            for r in readers:
                v = np.asarray(r(m))
                if v.ndim == 0:
                    v = np.full(len(a), v, dt)
                elif lanes is not None:
                    v = v[lanes]
                vals.append(v)
            m.store(space, a, lanes, dt, vals, nbytes)

        cls = "st" + ("" if space == ".generic" else space)
        return Decoded(fn, cls, mem=MemAccess(space, False, True, dt.itemsize, width))

    def _i_prefetch(self, ins: Instruction) -> Decoded:
        self._ops(ins, 1)
        space = ins.space or ".generic"
        addr = self.address(ins.operands[0])

        def fn(m: Any, mask: np.ndarray | None) -> None:
            # A hint: no value changes, never a fault; the trace keeps its global address
            # so the cost model sees the cache fill.
            lanes = None if mask is None else np.flatnonzero(mask)
            m.prefetch(space, addr(m, lanes), lanes)

        return Decoded(fn, "prefetch")

    _i_prefetchu = _i_prefetch

    def _i_cp(self, ins: Instruction) -> Decoded:
        mods = ins.modifiers
        if not mods or mods[0] != ".async":
            raise unsupported(f"{ins.mnemonic}", ins)
        if ins.has(".commit_group"):
            return Decoded(lambda m, mask: m.cp_async_commit(mask), "cp.async.commit")
        if ins.has(".wait_group"):
            n_imm = parse_immediate(self._ops(ins, 1)[0], _I64)
            if n_imm is None:
                raise unsupported("cp.async.wait_group with a non-immediate count", ins)
            n = int(n_imm)
            return Decoded(
                lambda m, mask: m.cp_async_wait(mask, n), "cp.async.wait", barrier_count=n
            )
        if ins.has(".wait_all"):

            def wait_all(m: Any, mask: np.ndarray | None) -> None:
                m.cp_async_commit(mask)
                m.cp_async_wait(mask, 0)

            return Decoded(wait_all, "cp.async.wait", barrier_count=0)
        if any(m.startswith(".bulk") or m.startswith(".mbarrier") for m in mods):
            raise unsupported(f"{ins.mnemonic}", ins)
        if not (ins.has(".ca") or ins.has(".cg")):
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, 3)
        dst = self.address(ops[0])
        src = self.address(ops[1])
        size_imm = parse_immediate(ops[2], _I64)
        if size_imm is None or int(size_imm) not in (4, 8, 16):
            raise unsupported("cp.async size must be 4, 8 or 16", ins)
        size = int(size_imm)
        src_size: Reader | None = None
        ignore: Reader | None = None
        if len(ops) > 3 and not ins.has(".L2::cache_hint"):
            extra = ops[3].strip()
            idx = self.reg(extra.lstrip("!"))
            if idx is not None and self.reg_dtypes[idx].kind == "b":
                ignore = self.read(extra, _BOOL)
            else:
                src_size = self.read(extra, _U32)
        elif len(ops) > 4:
            src_size = self.read(ops[3], _U32)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lanes = None if mask is None else np.flatnonzero(mask)
            n_src = None
            if src_size is not None:
                n_src = np.asarray(src_size(m))
            if ignore is not None:
                ig = np.asarray(ignore(m))
                n_src = np.where(ig, 0, size)
            if n_src is not None and n_src.ndim and lanes is not None:
                n_src = n_src[lanes]
            m.cp_async(dst(m, lanes), src(m, lanes), lanes, size, n_src)

        return Decoded(fn, "cp.async", mem=MemAccess(".global", True, True, size, 1))

    def _atomic_op(self, ins: Instruction) -> tuple[str, np.dtype, str]:
        space = ins.space or ".generic"
        opname = next(
            (
                m[1:]
                for m in ins.modifiers
                if m[1:] in ("add", "min", "max", "and", "or", "xor", "exch", "cas", "inc", "dec")
            ),
            None,
        )
        if opname is None:
            raise unsupported(f"{ins.mnemonic}", ins)
        dt = self._typed(ins)
        if dt.itemsize < 4 or ins.type in (".f16x2", ".bf16x2"):
            raise unsupported(f"{ins.mnemonic}", ins)
        return space, dt, opname

    def _i_red(self, ins: Instruction) -> Decoded:
        space, dt, opname = self._atomic_op(ins)
        if opname in ("cas", "exch"):
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, 2)
        addr = self.address(ops[0])
        rb = self.read(ops[1], dt)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lanes = None if mask is None else np.flatnonzero(mask)
            a = addr(m, lanes)
            b = _lanes_of(np.asarray(rb(m)), lanes, len(a), dt)
            m.atomic(space, opname, dt, a, lanes, b, None, want_old=False)

        return Decoded(fn, "atom", mem=MemAccess(space, True, True, dt.itemsize, 1))

    def _i_atom(self, ins: Instruction) -> Decoded:
        space, dt, opname = self._atomic_op(ins)
        ops = self._ops(ins, 4 if opname == "cas" else 3)
        w = self.write(ops[0], dt)
        addr = self.address(ops[1])
        rb = self.read(ops[2], dt)
        rc = self.read(ops[3], dt) if opname == "cas" else None

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lanes = None if mask is None else np.flatnonzero(mask)
            a = addr(m, lanes)
            b = _lanes_of(np.asarray(rb(m)), lanes, len(a), dt)
            c = _lanes_of(np.asarray(rc(m)), lanes, len(a), dt) if rc is not None else None
            old = m.atomic(space, opname, dt, a, lanes, b, c, want_old=True)
            w.scatter(m, lanes, old)

        return Decoded(fn, "atom", mem=MemAccess(space, True, True, dt.itemsize, 1))

    # --- control flow and synchronisation ---------------------------------------------------

    def _i_bra(self, ins: Instruction) -> Decoded:
        ops = self._ops(ins, 1)
        return Decoded(None, "branch", kind=BRA, target=ops[0].strip())

    def _i_ret(self, ins: Instruction) -> Decoded:
        if not self.func.is_entry:
            raise unsupported("ret from a device function", ins)
        return Decoded(None, "branch", kind=EXIT)

    _i_exit = _i_ret

    def _barrier(self, ins: Instruction) -> Decoded:
        if ins.has(".arrive") or ins.has(".red"):
            raise unsupported(f"{ins.mnemonic}", ins)
        if ins.guard:
            raise unsupported("predicated barrier", ins)
        count = None
        if len(ins.operands) > 1:
            imm = parse_immediate(ins.operands[1], _I64)
            if imm is None:
                raise unsupported("barrier with a register thread count", ins)
            count = int(imm)
        return Decoded(None, "barrier", kind=BAR, barrier_count=count)

    def _i_bar(self, ins: Instruction) -> Decoded:
        if ins.has(".warp"):
            return Decoded(lambda m, mask: None, "alu")
        return self._barrier(ins)

    def _i_barrier(self, ins: Instruction) -> Decoded:
        return self._barrier(ins)

    def _i_membar(self, ins: Instruction) -> Decoded:
        return Decoded(lambda m, mask: None, "membar")

    _i_fence = _i_membar

    def _i_nanosleep(self, ins: Instruction) -> Decoded:
        return Decoded(lambda m, mask: None, "alu")

    def _i_trap(self, ins: Instruction) -> Decoded:
        line, text = ins.line, ins.text

        def fn(m: Any, mask: np.ndarray | None) -> None:
            raise TrapExecuted("trap executed", line, text)

        return Decoded(fn, "branch")

    _i_brkpt = _i_trap

    # --- warp-level -------------------------------------------------------------------------

    def _i_shfl(self, ins: Instruction) -> Decoded:
        if not ins.has(".sync"):
            raise unsupported("shfl without .sync", ins)
        kind = next((m[1:] for m in ins.modifiers if m in (".up", ".down", ".bfly", ".idx")), None)
        if kind is None:
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, 5)
        dests = [d.strip() for d in ops[0].split("|")]
        wd = self.write(dests[0], _U32)
        wp = self.write(dests[1], _BOOL) if len(dests) > 1 else None
        ra, rb, rc = self.read(ops[1], _U32), self.read(ops[2], _U32), self.read(ops[3], _U32)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            lane = m.special["laneid"].astype(np.int64)
            b = np.asarray(rb(m)).astype(np.int64) & 31
            c = np.asarray(rc(m)).astype(np.int64)
            seg = (c >> 8) & 31
            clamp = c & 31
            max_lane = (lane & seg) | (clamp & ~seg)
            min_lane = lane & seg
            if kind == "up":
                j = lane - b
                ok = j >= max_lane
            elif kind == "down":
                j = lane + b
                ok = j <= max_lane
            elif kind == "bfly":
                j = lane ^ b
                ok = j <= max_lane
            else:
                j = min_lane | (b & ~seg)
                ok = j <= max_lane
            j = np.where(ok, j, lane)
            src = m.thread_ids - lane + j
            a = np.asarray(ra(m))
            val = a[src] if a.ndim else np.full(m.N, a, np.uint32)
            wd.put(m, mask, val)
            if wp is not None:
                wp.put(m, mask, ok)

        return Decoded(fn, "shfl")

    def _warp_collective(self, ins: Instruction) -> Callable[[Any, np.ndarray | None], np.ndarray]:
        """The warps (indices into N // 32) executing a .sync.aligned instruction.

        Every thread of the warp must execute it together; a partial warp is undefined
        behaviour in PTX, so it is an error here rather than a guess.
        """
        line, text = ins.line, ins.text

        def warps(m: Any, mask: np.ndarray | None) -> np.ndarray:
            active = (m.live if mask is None else mask).reshape(-1, 32)
            full, none = active.all(1), ~active.any(1)
            if not (full | none).all():
                raise EmulationError(
                    f"{ins.opcode} executed by part of a warp (line {line}: {text.strip()})"
                )
            return np.flatnonzero(full)

        return warps

    def _i_ldmatrix(self, ins: Instruction) -> Decoded:
        """ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 (PTX ISA 9.7.14.5.15).

        Lanes 8i..8i+7 give the row addresses of matrix i (16 bytes each); lane l receives in
        destination register i the two b16 elements at row l//4, columns 2(l%4) and 2(l%4)+1
        of matrix i (of its transpose with .trans), the lower column in the low half.
        """
        if not (ins.has(".sync") and ins.has(".aligned") and ins.has(".m8n8")):
            raise unsupported(f"{ins.mnemonic}", ins)
        if not ins.has(".b16"):
            raise unsupported(f"{ins.mnemonic}: only .b16 elements", ins)
        count = next((int(m[2:]) for m in ins.modifiers if m in (".x1", ".x2", ".x4")), None)
        if count is None:
            raise unsupported(f"{ins.mnemonic} without .x1/.x2/.x4", ins)
        trans = ins.has(".trans")
        space = ".shared" if any(m.startswith(".shared") for m in ins.modifiers) else ".generic"
        ops = self._ops(ins, 2)
        dsts = split_vector(ops[0])
        if len(dsts) != count:
            raise unsupported(f"ldmatrix .x{count} needs {count} destinations", ins)
        writers = [self.write(d, _U32) for d in dsts]
        addr = self.address(ops[1])
        warps_of = self._warp_collective(ins)
        lane = np.arange(32)
        row, col = lane // 4, 2 * (lane % 4)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            warps = warps_of(m, mask)
            if not warps.size:
                return
            a = addr(m, None).reshape(-1, 32)[warps]
            owners = (warps[:, None] * 32 + lane[None, : 8 * count]).ravel()
            rows = m.load(space, a[:, : 8 * count].ravel(), owners, np.dtype(np.uint16), 8, 16)
            # mats[w, i, r, c]: element (r, c) of matrix i of warp w.
            mats = np.stack(rows, axis=-1).reshape(len(warps), count, 8, 8)
            if trans:
                mats = mats.transpose(0, 1, 3, 2)
            threads = (warps[:, None] * 32 + lane[None, :]).ravel()
            for i, w in enumerate(writers):
                lo = mats[:, i, row, col].astype(np.uint32)
                hi = mats[:, i, row, col + 1].astype(np.uint32)
                w.scatter(m, threads, (lo | (hi << np.uint32(16))).ravel())

        return Decoded(fn, "ld.shared", mem=MemAccess(space, True, False, 16, 1))

    _MMA_SHAPES = {".m16n8k16": (16, 8, 16), ".m16n8k8": (16, 8, 8)}

    def _i_mma(self, ins: Instruction) -> Decoded:
        """mma.sync.aligned.m16n8k{8,16}.row.col.f32.f16.f16.f32 (PTX ISA 9.7.14.5.x).

        Fragments, with g = lane//4 and t = lane%4: A (16 x K, row-major) element pairs at
        rows g / g+8, columns 2t + {0,1} (+8 for the second half of K); B (K x 8) pairs at
        rows 2t + {0,1} (+8), column g; C and D (16 x 8) pairs at rows g / g+8, columns
        2t + {0,1}. The products of f16 values are exact; the sum is formed in float64 and
        rounded once to f32 (the hardware's internal order may differ in the last bit for
        inexact sums: docs/emulator.md).
        """
        shape = next((self._MMA_SHAPES[m] for m in ins.modifiers if m in self._MMA_SHAPES), None)
        types = [m for m in ins.modifiers if m in DTYPES]
        if (
            shape is None
            or not (
                ins.has(".sync") and ins.has(".aligned") and ins.has(".row") and ins.has(".col")
            )
            or types != [".f32", ".f16", ".f16", ".f32"]
            or any(m in (".satfinite",) for m in ins.modifiers)
        ):
            raise unsupported(f"{ins.mnemonic}", ins)
        mm, nn, kk = shape
        ops = self._ops(ins, 4)
        d_regs, a_regs, b_regs, c_regs = (split_vector(o) for o in ops[:4])
        na, nb = mm * kk // 64, kk * nn // 64
        if (len(d_regs), len(a_regs), len(b_regs), len(c_regs)) != (4, na, nb, 4):
            raise unsupported("mma operand counts do not match its shape", ins)
        wd = [self.write(r, _F32) for r in d_regs]
        ra = [self.read(r, _U32) for r in a_regs]
        rb = [self.read(r, _U32) for r in b_regs]
        rc = [self.read(r, _F32) for r in c_regs]
        warps_of = self._warp_collective(ins)
        lane = np.arange(32)
        g, t = lane // 4, lane % 4
        # (row, col) of each fragment element: register r, half h.
        a_rc = [[(g + 8 * (r % 2), 2 * t + h + 8 * (r // 2)) for h in (0, 1)] for r in range(na)]
        b_rc = [[(2 * t + h + 8 * r, g) for h in (0, 1)] for r in range(nb)]
        c_rc = [(g + 8 * (r // 2), 2 * t + r % 2) for r in range(4)]

        def fn(m: Any, mask: np.ndarray | None) -> None:
            warps = warps_of(m, mask)
            if not warps.size:
                return
            nw = len(warps)
            threads = (warps[:, None] * 32 + lane[None, :]).ravel()
            wi = np.arange(nw)[:, None]
            A = np.zeros((nw, mm, kk))
            B = np.zeros((nw, kk, nn))
            C = np.zeros((nw, mm, nn))

            def halves(reader: Reader) -> list[np.ndarray]:
                v = np.broadcast_to(np.asarray(reader(m)), (m.N,))[threads].reshape(nw, 32)
                lo = (v & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float64)
                hi = (v >> 16).astype(np.uint16).view(np.float16).astype(np.float64)
                return [lo, hi]

            for reader, places in zip(ra, a_rc, strict=True):
                for val, (r, c) in zip(halves(reader), places, strict=True):
                    A[wi, r, c] = val
            for reader, places in zip(rb, b_rc, strict=True):
                for val, (r, c) in zip(halves(reader), places, strict=True):
                    B[wi, r, c] = val
            for reader, (r, c) in zip(rc, c_rc, strict=True):
                v = np.broadcast_to(np.asarray(reader(m)), (m.N,))[threads].reshape(nw, 32)
                C[wi, r, c] = v.astype(np.float64)
            D = nx.f64_to_f32(np.matmul(A, B) + C, "rn")
            for w, (r, c) in zip(wd, c_rc, strict=True):
                w.scatter(m, threads, np.asarray(D[wi, r, c], np.float32).ravel())

        return Decoded(fn, "mma")

    def _i_vote(self, ins: Instruction) -> Decoded:
        kind = next(
            (m[1:] for m in ins.modifiers if m in (".all", ".any", ".uni", ".ballot")), None
        )
        if kind is None or not ins.has(".sync"):
            raise unsupported(f"{ins.mnemonic}", ins)
        ops = self._ops(ins, 2)
        rp = self.read(ops[1], _BOOL)
        out = _U32 if kind == "ballot" else _BOOL
        w = self.write(ops[0], out)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            active = m.live if mask is None else mask
            p = np.broadcast_to(np.asarray(rp(m)), (m.N,)) & active
            bits = (p.reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(1)
            act = (active.reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(
                1
            )
            if kind == "ballot":
                r = np.repeat(bits.astype(np.uint32), 32)
            elif kind == "all":
                r = np.repeat(bits == act, 32)
            elif kind == "any":
                r = np.repeat(bits != 0, 32)
            else:
                r = np.repeat((bits == act) | (bits == 0), 32)
            w.put(m, mask, r)

        return Decoded(fn, "alu")

    def _i_activemask(self, ins: Instruction) -> Decoded:
        w = self.write(self._ops(ins, 1)[0], _U32)

        def fn(m: Any, mask: np.ndarray | None) -> None:
            active = m.live if mask is None else mask
            bits = (active.reshape(-1, 32).astype(np.uint64) << np.arange(32, dtype=np.uint64)).sum(
                1
            )
            w.put(m, mask, np.repeat(bits.astype(np.uint32), 32))

        return Decoded(fn, "alu")


def _rsqrt64(a: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(np.asarray(a, np.float64))


def _post_float(r: np.ndarray, dt: np.dtype, ftz: bool, sat: bool) -> np.ndarray:
    r = np.asarray(r, dt)
    if ftz and dt == _F32:
        r = nx.ftz32(r)
    if sat:
        r = nx.sat01(r)
    return r


def _mul_hi(a: np.ndarray, b: np.ndarray, dt: np.dtype, wide: np.dtype | None) -> np.ndarray:
    if wide is None:
        return nx.mul_hi64(a, b, dt.kind == "i").astype(dt)
    p = np.asarray(a).astype(wide) * np.asarray(b).astype(wide)
    return (p >> (dt.itemsize * 8)).astype(dt)


def _low24(a: np.ndarray, dt: np.dtype) -> np.ndarray:
    v = np.asarray(a).view(UNSIGNED[4]).astype(np.int64) & 0xFFFFFF
    if dt.kind == "i":
        v = np.where(v & 0x800000, v - 0x1000000, v)
    return v


def _lanes_of(v: np.ndarray, lanes: np.ndarray | None, n: int, dt: np.dtype) -> np.ndarray:
    if v.ndim == 0:
        return np.full(n, v, dt)
    return v if lanes is None else v[lanes]


# --- cache ----------------------------------------------------------------------------------

_CACHE: BoundedCache[Program] = BoundedCache(256, name="decode")


def _decode(ptx: str, entry: str | None) -> Program:
    module = parse(ptx)
    try:
        func = module.entry(entry)
    except (KeyError, ValueError) as exc:
        raise EmulationError(str(exc)) from None
    return Decoder(module, func).decode()


def decode(ptx: str, entry: str | None = None) -> Program:
    """The decoded Program of `entry` (the only entry when None), cached by PTX hash."""
    return _CACHE.get((ptx_sha256(ptx), entry), lambda: _decode(ptx, entry))


def cache_clear() -> None:
    """Forget every decoded program (for cold timings)."""
    _CACHE.clear()
