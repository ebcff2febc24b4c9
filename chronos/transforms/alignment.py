"""Pointer facts for the vectorizer and friends: alignment (a congruence lattice) and provenance.

A misaligned `ld.v4` kills the CUDA context, so vectorizing needs a proof that an address is a
multiple of 16 (or 8). Each integer register gets a lattice value `x = rem (mod 2**k)`: known
low bits, which is what alignment is. Moduli are powers of two because register arithmetic
wraps modulo 2**32 or 2**64, and only power-of-two congruences survive the wrap. Parameters
start from the kernel's contract (pointer alignment, divisors of scalar sizes), shared
variables from their `.align`, and a forward fixpoint over the CFG joins loop-carried values
(`x = 0; x += 64` gives `x = 0 (mod 64)`).

Alongside, each register carries its provenance: the set of roots (pointer parameters and
memory symbols) it may be derived from. Two addresses with disjoint, known roots point into
different allocations, so a load may move across a store to the other buffer. Addresses are
64-bit (`.address_size 64`, every nvcc and Triton module), so a 32-bit scalar parameter and a
value loaded narrower than 64 bits (an index read from memory, as in `bins[in[i]]` or
`x[col[j]]`) root nothing: `bins + 4 * in[i]` points into `bins`.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from chronos.ptx import Directive, Function, Instruction, Module, type_bytes
from chronos.ptx.model import PTX_TYPES

from .base import TransformContext

MAX_BITS = 64
_INT = re.compile(r"^-?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9]\d*)[uU]?$")
_SPECIAL = re.compile(
    r"^%(?:tid|ntid|ctaid|nctaid|laneid|warpid|nwarpid|smid|nsmid|gridid|"
    r"clock|clock64|globaltimer|lanemask_\w+|pm\d+|envreg\d+|"
    r"dynamic_smem_size|total_smem_size|cluster\w*|is_explicit_cluster)"
    r"(?:\.[xyz])?$"
)
_CVTA_CAP = 1 << 12
"""Window bases of the generic address space are aligned at least this much."""


def _v2(x: int) -> int:
    """2-adic valuation; 0 has valuation MAX_BITS (it is divisible by everything we track)."""
    if x == 0:
        return MAX_BITS
    return (x & -x).bit_length() - 1


@dataclass(frozen=True)
class Cong:
    """`value = rem (mod 2**bits)`; bits == width means the value is known exactly."""

    bits: int
    rem: int

    @staticmethod
    def top() -> Cong:
        return Cong(0, 0)

    @staticmethod
    def const(value: int, width: int) -> Cong:
        return Cong(width, value % (1 << width))

    @staticmethod
    def of(bits: int, rem: int) -> Cong:
        bits = max(0, min(bits, MAX_BITS))
        return Cong(bits, rem % (1 << bits))

    @property
    def mod(self) -> int:
        return 1 << self.bits

    def cap(self, width: int) -> Cong:
        return Cong.of(min(self.bits, width), self.rem)

    def exact(self, width: int) -> bool:
        return self.bits >= width

    def signed(self, width: int) -> int:
        v = self.rem % (1 << width)
        return v - (1 << width) if v >= 1 << (width - 1) else v

    def join(self, other: Cong) -> Cong:
        bits = min(self.bits, other.bits, _v2(self.rem - other.rem))
        return Cong.of(bits, self.rem)

    def add(self, other: Cong, width: int) -> Cong:
        return Cong.of(min(self.bits, other.bits, width), self.rem + other.rem)

    def sub(self, other: Cong, width: int) -> Cong:
        return Cong.of(min(self.bits, other.bits, width), self.rem - other.rem)

    def mul(self, other: Cong, width: int) -> Cong:
        # (r1 + a 2^k1)(r2 + b 2^k2) = r1 r2 + a r2 2^k1 + b r1 2^k2 + ab 2^(k1+k2)
        bits = min(
            self.bits + _v2(other.rem),
            other.bits + _v2(self.rem),
            self.bits + other.bits,
            width,
        )
        return Cong.of(bits, self.rem * other.rem)

    def shl(self, n: int, width: int) -> Cong:
        return Cong.of(min(self.bits + n, width), self.rem << n)

    def alignment(self) -> int:
        """The largest power of two known to divide the value (capped at 2**MAX_BITS)."""
        return 1 << min(self.bits, _v2(self.rem))


TOP = Cong.top()


@dataclass(frozen=True)
class Value:
    """A register's facts: congruence and provenance (None: unknown, may point anywhere)."""

    cong: Cong
    roots: frozenset[str] | None

    def join(self, other: Value) -> Value:
        roots = None if self.roots is None or other.roots is None else self.roots | other.roots
        return Value(self.cong.join(other.cong), roots)


UNKNOWN = Value(TOP, None)
_PLAIN = frozenset()


def _union(values: Iterable[Value]) -> frozenset[str] | None:
    out: set[str] = set()
    for v in values:
        if v.roots is None:
            return None
        out |= v.roots
    return frozenset(out)


def _width(ptx_type: str | None) -> int:
    if not ptx_type or ptx_type == ".pred":
        return 0
    try:
        return type_bytes(ptx_type) * 8
    except ValueError:
        return 0


def _is_int_type(ptx_type: str | None) -> bool:
    return bool(ptx_type) and ptx_type[1] in "usb" and ptx_type != ".pred"


_DECL = re.compile(
    r"^(?:\.(?:visible|extern|weak|common)\s+)*\.(shared|global|const|local)\b(.*)$", re.S
)
_DECL_ALIGN = re.compile(r"\.align\s+(\d+)")
_DECL_NAME = re.compile(r"([A-Za-z_$%][\w$]*)\s*(?:\[[^\]]*\])*\s*(?:=.*)?$", re.S)
_DECL_TYPE = re.compile(r"\.(?:[usbf](?:8|16|32|64|128)|pred)\b")


@dataclass(frozen=True)
class Variable:
    """A `.shared`/`.global`/... variable declaration and the alignment it guarantees."""

    name: str
    space: str
    align: int
    extern: bool
    statement: Directive


def variables(module: Module, fn: Function | None = None) -> dict[str, Variable]:
    """Module-scope variables plus those declared in `fn`'s body (body ones win)."""
    stmts: list[Directive] = list(module.module_variables())
    if fn is not None:
        stmts += [s for s in fn.body if isinstance(s, Directive)]
    out: dict[str, Variable] = {}
    for s in stmts:
        m = _DECL.match(s.text.strip().rstrip(";"))
        if not m:
            continue
        rest = m.group(2)
        name_m = _DECL_NAME.search(rest.strip())
        if not name_m:
            continue
        align_m = _DECL_ALIGN.search(rest)
        if align_m:
            align = int(align_m.group(1))
        else:
            t = _DECL_TYPE.search(rest)
            align = type_bytes(t.group(0)) if t else 1
        out[name_m.group(1)] = Variable(
            name_m.group(1), "." + m.group(1), align, ".extern" in s.text, s
        )
    return out


class PointerAnalysis:
    """Forward dataflow of `Value`s over one function's CFG, queried per memory instruction.

    `symbol_align` overrides the declared alignment of variables (the vectorizer asks "what if
    the shared arrays were 16-aligned?" before it raises their `.align`).
    """

    def __init__(
        self,
        module: Module,
        fn: Function,
        ctx: TransformContext,
        symbol_align: Mapping[str, int] | None = None,
    ):
        self.fn = fn
        self.ctx = ctx
        self.variables = variables(module, fn)
        self.symbol_align = {n: v.align for n, v in self.variables.items()}
        self.symbol_align.update(symbol_align or {})
        self.params = {p.name: p for p in fn.params}
        self._align = dict(ctx.alignment)
        self._div = dict(ctx.divisibility)
        self.blocks = fn.basic_blocks()
        self._addr: dict[int, Value] = {}
        self._solve()

    # --- operands -------------------------------------------------------------------------

    def _operand(self, op: str, state: Mapping[str, Value], width: int) -> Value:
        op = op.strip()
        if op in state:
            return state[op]
        if _INT.match(op):
            return Value(Cong.const(int(op.rstrip("uU"), 0), width or MAX_BITS), _PLAIN)
        if _SPECIAL.match(op):
            return Value(TOP, _PLAIN)
        name = op
        if name in self.symbol_align:
            return Value(Cong.of(_v2(self.symbol_align[name]), 0), frozenset({name}))
        return UNKNOWN

    def _param_value(self, instr: Instruction) -> Value:
        addr = instr.address()
        if addr is None or addr.offset != 0 or addr.base not in self.params:
            return UNKNOWN
        name = addr.base
        if name in self._align:
            return Value(Cong.of(_v2(self._align[name]), 0), frozenset({name}))
        if name in self._div:
            return Value(Cong.of(_v2(self._div[name]), 0), _PLAIN)
        if self.params[name].type not in (".u64", ".b64", ".s64"):
            return Value(TOP, _PLAIN)  # a 32-bit scalar is no pointer: it roots nothing
        return Value(TOP, frozenset({name}))

    # --- transfer -------------------------------------------------------------------------

    def _transfer(self, instr: Instruction, state: Mapping[str, Value]) -> Value:
        """The value written to the (single) destination register."""
        op, mods = instr.opcode, instr.modifiers
        types = [m for m in mods if m in PTX_TYPES]
        t = types[0] if types else None
        width = _width(t)
        srcs = list(instr.srcs)

        def val(i: int, w: int = width) -> Value:
            return self._operand(srcs[i], state, w) if i < len(srcs) else UNKNOWN

        if op == "ld":
            if instr.space == ".param":
                return self._param_value(instr)
            if width and width < 64:
                return Value(TOP, _PLAIN)  # loaded data narrower than an address roots nothing
            return UNKNOWN
        if op == "mov" and len(srcs) == 1 and not srcs[0].startswith("{"):
            v = val(0)
            return Value(v.cong.cap(width), v.roots) if width else v
        if op == "cvta":
            v = val(0)
            return Value(v.cong.cap(min(width or MAX_BITS, _CVTA_CAP.bit_length() - 1)), v.roots)
        if not _is_int_type(t):
            return UNKNOWN
        roots = _union(self._operand(s, state, width) for s in srcs if not s.startswith("["))
        rule = _INT_RULES.get(op)
        site = _Site(self, op, mods, types, srcs, state, width, roots)
        out = rule(site) if rule is not None else None
        return out if out is not None else Value(TOP, roots)

    def _widen(self, v: Value, width: int, t: str | None) -> Value:
        """Sign/zero extension of a `.wide` operand from `width` to 2*width bits."""
        c = v.cong.cap(width)
        if c.exact(width):
            x = c.signed(width) if t and t.startswith(".s") else c.rem
            return Value(Cong.const(x, 2 * width), v.roots)
        return Value(c, v.roots)

    def _step(self, instr: Instruction, state: dict[str, Value]) -> None:
        if instr.address() is not None:
            self._addr[instr.span.start] = self._address_value(instr, state)
        dests = instr.dests
        if not dests:
            return
        if len(dests) == 1:
            new = self._transfer(instr, state)
        else:
            new = UNKNOWN
        for d in dests:
            if instr.guard is not None:
                state[d] = state.get(d, UNKNOWN).join(new) if d in state else UNKNOWN
            else:
                state[d] = new

    def _address_value(self, instr: Instruction, state: Mapping[str, Value]) -> Value:
        addr = instr.address()
        assert addr is not None
        if addr.base in self.params:
            return UNKNOWN
        base = self._operand(addr.base, state, MAX_BITS)
        return Value(base.cong.add(Cong.const(addr.offset, MAX_BITS), MAX_BITS), base.roots)

    # --- fixpoint -------------------------------------------------------------------------

    def _solve(self) -> None:
        n = len(self.blocks)
        inputs: list[dict[str, Value] | None] = [None] * n
        if n == 0:
            return
        inputs[0] = {}
        work = [0]
        queued = {0}
        while work:
            b = work.pop(0)
            queued.discard(b)
            state = dict(inputs[b] or {})
            for instr in self.blocks[b].instructions:
                self._step(instr, state)
            for s in self.blocks[b].successors:
                old = inputs[s]
                new = state if old is None else _join_states(old, state)
                if old is None or new != old:
                    inputs[s] = new
                    if s not in queued:
                        work.append(s)
                        queued.add(s)
        # Final pass: record the state before every instruction from the converged inputs.
        self._addr.clear()
        for b, block in enumerate(self.blocks):
            if inputs[b] is None:
                continue
            state = dict(inputs[b])
            for instr in block.instructions:
                self._step(instr, state)

    # --- queries --------------------------------------------------------------------------

    def address(self, instr: Instruction) -> Value:
        """Facts about the effective address of a memory instruction (UNKNOWN if unreached)."""
        return self._addr.get(instr.span.start, UNKNOWN)

    def alignment(self, instr: Instruction) -> int:
        """The largest power of two that provably divides the instruction's address."""
        return self.address(instr).cong.alignment()


@dataclass(frozen=True, slots=True)
class _Site:
    """An integer instruction as the transfer rules read it: its operands under `state`."""

    analysis: PointerAnalysis
    op: str
    mods: Sequence[str]
    types: list[str]
    srcs: list[str]
    state: Mapping[str, Value]
    width: int
    roots: frozenset[str] | None

    @property
    def ptx_type(self) -> str | None:
        return self.types[0] if self.types else None

    def operand(self, src: str, width: int) -> Value:
        return self.analysis._operand(src, self.state, width)

    def val(self, i: int) -> Value:
        """Source `i` at the instruction's width (UNKNOWN when there is none)."""
        return self.operand(self.srcs[i], self.width) if i < len(self.srcs) else UNKNOWN


def _arith(s: _Site) -> Value | None:
    """add, sub, mul.lo/.wide and mad.lo/.wide."""
    op, mods, srcs, width = s.op, s.mods, s.srcs, s.width
    if op in ("add", "sub") and ".cc" not in mods and len(srcs) == 2:
        a, b = s.val(0), s.val(1)
        c = a.cong.add(b.cong, width) if op == "add" else a.cong.sub(b.cong, width)
        return Value(c, s.roots)
    if op in ("mul", "mad") and len(srcs) >= 2 and (".lo" in mods or ".wide" in mods):
        if ".wide" in mods:
            widen = s.analysis._widen
            a, b = widen(s.val(0), width, s.ptx_type), widen(s.val(1), width, s.ptx_type)
            width = 2 * width
        else:
            a, b = s.val(0), s.val(1)
        c = a.cong.mul(b.cong, width)
        if op == "mad":
            addend = s.operand(srcs[2], width) if len(srcs) > 2 else UNKNOWN
            c = c.add(addend.cong, width)
        return Value(c, s.roots)
    return None


def _shift(s: _Site) -> Value | None:
    """shl and shr by a known amount."""
    if len(s.srcs) != 2:
        return None
    width, roots = s.width, s.roots
    n = s.operand(s.srcs[1], 32)
    if s.op == "shl":
        if n.cong.exact(32) and 0 <= n.cong.rem < width:
            return Value(s.val(0).cong.shl(n.cong.rem, width), roots)
        return Value(TOP, roots)
    a = s.val(0).cong
    if not (n.cong.exact(32) and 0 <= n.cong.rem < width):
        return Value(TOP, roots)
    k = n.cong.rem
    if a.exact(width):
        t = s.ptx_type
        v = a.signed(width) if t and t.startswith(".s") else a.rem
        return Value(Cong.const(v >> k, width), roots)
    return Value(Cong.of(max(a.bits - k, 0), a.rem >> k), roots)


def _bitwise(s: _Site) -> Value | None:
    """and, or, xor of two sources; not and neg of one."""
    op, width = s.op, s.width
    if op in ("and", "or", "xor") and len(s.srcs) == 2:
        a, b = s.val(0).cong, s.val(1).cong
        bits = min(a.bits, b.bits)
        if op == "and":
            for x, y in ((a, b), (b, a)):
                if y.exact(width) and x.bits < width:
                    # bits above x's known ones stay known where the mask is zero
                    high = y.rem >> x.bits
                    extra = _v2(high) if high else width - x.bits
                    bits = max(bits, min(x.bits + extra, width))
        rem = {"and": a.rem & b.rem, "or": a.rem | b.rem, "xor": a.rem ^ b.rem}[op]
        return Value(Cong.of(min(bits, width), rem), s.roots)
    if op in ("not", "neg") and len(s.srcs) == 1:
        a = s.val(0).cong
        rem = ~a.rem if op == "not" else -a.rem
        return Value(Cong.of(min(a.bits, width), rem), s.roots)
    return None


def _choice(s: _Site) -> Value | None:
    """selp, min, max: one of the sources."""
    if len(s.srcs) < 2:
        return None
    a, b = s.val(0), s.val(1)
    return Value(a.cong.join(b.cong).cap(s.width), _union((a, b)))


_CVT_ROUNDING = frozenset({".sat", ".rni", ".rzi", ".rmi", ".rpi", ".rn", ".rz"})


def _convert(s: _Site) -> Value | None:
    """cvt between integer types without saturation or rounding."""
    mods, types = s.mods, s.types
    if len(mods) < 2 or set(mods) & _CVT_ROUNDING:
        return None
    src_t = types[-1]
    if len(types) != 2 or not _is_int_type(src_t):
        return UNKNOWN
    sw = _width(src_t)
    a = s.operand(s.srcs[0], sw).cong.cap(sw)
    if a.exact(sw):
        v = a.signed(sw) if src_t.startswith(".s") else a.rem
        return Value(Cong.const(v, s.width), s.roots)
    return Value(a.cap(min(sw, s.width)), s.roots)


_INT_RULES: dict[str, Callable[[_Site], Value | None]] = {
    **dict.fromkeys(("add", "sub", "mul", "mad"), _arith),
    **dict.fromkeys(("shl", "shr"), _shift),
    **dict.fromkeys(("and", "or", "xor", "not", "neg"), _bitwise),
    **dict.fromkeys(("selp", "min", "max"), _choice),
    "cvt": _convert,
}
"""Integer opcode -> its transfer rule; None from a rule (or no rule): TOP with the roots."""


def _join_states(a: Mapping[str, Value], b: Mapping[str, Value]) -> dict[str, Value]:
    """A register missing on one side is undefined there, i.e. unknown after the join."""
    return {k: a[k].join(b[k]) for k in a if k in b}


_cache: weakref.WeakKeyDictionary[Module, dict] = weakref.WeakKeyDictionary()


def analyze(
    module: Module,
    fn: Function,
    ctx: TransformContext,
    symbol_align: Mapping[str, int] | None = None,
) -> PointerAnalysis:
    """PointerAnalysis, memoized per (module, function, context, overrides)."""
    key = (fn.name, ctx, tuple(sorted((symbol_align or {}).items())))
    per_module = _cache.setdefault(module, {})
    if key not in per_module:
        per_module[key] = PointerAnalysis(module, fn, ctx, symbol_align)
    return per_module[key]
