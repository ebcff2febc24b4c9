"""vec_ld / vec_st on block-stride element loops, the loop of row-per-block kernels:

    const float* xr = x + blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) ... xr[c] ...

nvcc's PTX: `c = tid.x` (or a copy of a register holding it), an entry guard `tid.x < n` on
the only path to the loop, and the do-while `L: B(c); add c, c, S; setp.lt.s32 p, c, n; @p
bra L` with `S = ntid.x`. Addresses in B are affine in c: `U + c*e` with U block-uniform
(the row base), however nvcc spells it (`cvt; add row; shl; add param` or `mad.lo row, cols,
c; mul.wide; add param`).

The rewrite, ahead of L: groups `g = tid.x, tid.x+S, .. < n/W` run B on elements `gW ..
gW+W-1` (B copied W times with c = gW+j; each access's W copies become one vector access at
copy 0's address), then the original loop runs from `tid.x + (n/W)*W` as the scalar tail.
Start values tid.x are a complete residue system modulo S, so every element is visited once.

Legal only when B's effect on element c does not depend on the thread running it: B is
straight-line, reads only c, its own earlier results and block-uniform registers; nothing it
defines is read outside it or carried to the next element (a per-thread partial such as
`m = fmaxf(m, x[c])` is refused: regrouping changes which elements each partial covers, and
that the block then combines every partial by the same operation is not proved here); every
access is a plain global element access whose address is affine in c with slope its element
size; each array is accessed at one element per iteration (no `x[c+1]` neighbour); at most one
array is stored, and it is accessed nowhere else in the kernel; loaded arrays are read-only or
the stored one. Affinity assumes the original accesses are in bounds: a 32-bit index that
wrapped between two adjacent elements would put one of them outside its buffer.

Alignment: copy 0's address is `U + gW*e`, aligned to W*e exactly when U is. Where the
congruence analysis (alignment.py) proves that from spec.alignment and spec.divisibility, the
vector loop is unconditional; otherwise a runtime test of every access's row base (B's
address arithmetic at c = 0) selects the vector loop, else the original loop runs alone. The
test reads only block-uniform registers, so every thread of a block takes the same version
(mixing them would lose elements).
"""

from __future__ import annotations

from dataclasses import dataclass

from chronos.ptx import Function, Instruction, Label, Module, type_bytes
from chronos.ptx.model import Directive
from chronos.ptx.parse import parse

from .alignment import PointerAnalysis
from .base import NotApplicable, TransformContext
from .divergence import block_uniform
from .loopvec import (
    _LD_MODS,
    _MEMORY,
    _PURE,
    _TOKEN,
    _back_branch,
    _Facts,
    _fresh_tag,
    _param_of,
    _Regs,
    _statements_between,
    _steps_and_tests,
    _vector_load,
    _vector_store,
)

_SPECIAL_OK = ("%ntid.", "%nctaid.", "%ctaid.")
_PRIVATE = (".param", ".shared", ".local", ".const")
_INT = frozenset(".s32 .u32 .s64 .u64 .b32 .b64".split())


@dataclass
class Loop:
    """A block-stride loop: `head` its label, `body` B, `control` the step/test/branch."""

    name: str
    head: Label
    body: list[Instruction]
    control: list[Instruction]
    c: str
    n: str
    stride: str
    guard: Instruction  # the entry guard's branch
    after: object  # the statement after the back branch


@dataclass
class Access:
    """One global element access of B: `k` its body index, `param` the array."""

    k: int
    op: str
    param: str
    e: int
    data: str
    key: tuple


@dataclass
class Plan:
    loop: Loop
    width: int
    accesses: list[Access]
    form: dict[str, tuple | None]  # body register -> its affine form in the index


def _is_tid(f: _Facts, fn: Function, reg: str, at: int, pos: dict) -> bool:
    """reg holds %tid.x at body position `at`: it is `mov reg, %tid.x`, or its one definition
    before `at` is, and its others lie after `at` with no branch from past `at` back to it."""
    if f.special_of(reg) == "%tid.x":
        return True
    defs = f.defs.get(reg, [])
    before = [d for d in defs if pos[id(d)] < at]
    if len(before) != 1 or before[0].mnemonic not in ("mov.u32", "mov.b32", "mov.s32"):
        return False
    if before[0].operands[1].strip() != "%tid.x" or before[0].guard:
        return False
    if len(defs) == 1:
        return True
    # a later definition reaches `at` only through a branch from past `at` back to it
    labels = fn.labels()
    return not any(
        x.opcode in ("bra", "brx")
        and pos[id(x)] > at
        and labels.get(x.operands[0].strip(), 0) <= at
        for x in f.instrs
    )


def _guard_fact(fn: Function, f: _Facts, li: int, pos: dict) -> tuple[Instruction, str, bool]:
    """The conditional branch on the only path into label body[li] and whether its predicate
    holds on that path; raises NotApplicable when the path merges or has no such branch."""
    branches: dict[str, list[Instruction]] = {}
    for x in f.instrs:
        if x.opcode == "bra":
            branches.setdefault(x.operands[0].strip(), []).append(x)
    k, seen = li - 1, set()
    while k >= 0 and k not in seen:
        seen.add(k)
        s = fn.body[k]
        if isinstance(s, Label):
            prev = next(
                (t for t in reversed(fn.body[:k]) if isinstance(t, Instruction)),
                None,
            )
            falls = prev is not None and not (
                prev.opcode in ("ret", "exit") or (prev.opcode == "bra" and not prev.guard)
            )
            into = branches.get(s.name, [])
            if not into:
                k -= 1
                continue
            if falls or len(into) != 1:
                break
            b = into[0]
            if b.guard:
                return b, b.guard.lstrip("@!"), not b.guard.startswith("@!")
            k = pos[id(b)] - 1
            continue
        if isinstance(s, Instruction):
            if s.opcode == "bra" and s.guard:
                return s, s.guard.lstrip("@!"), s.guard.startswith("@!")
            if s.opcode in ("bra", "ret", "exit", "brx", "trap"):
                break
        k -= 1
    raise NotApplicable("no `threadIdx.x < n` entry guard on a single path into it")


def _entry_guard(fn: Function, f: _Facts, lp: Loop, li: int, pos: dict) -> Instruction:
    """The branch proving `tid.x < n` whenever the loop is entered, or NotApplicable."""
    bra, pred, holds = _guard_fact(fn, f, li, pos)
    setp = f.only_def(pred)
    ok = setp is not None and setp.opcode == "setp" and not setp.guard
    if ok:
        cmp, typ = setp.modifiers[:2]
        a, b = (o.strip() for o in setp.operands[1:3])
        want = ".lt" if holds else ".ge"
        ok = (
            typ == ".s32"
            and cmp == want
            and b == lp.n
            and len(f.defs.get(lp.n, [])) == 1
            and _is_tid(f, fn, a, pos[id(setp)], pos)
        )
    if not ok:
        raise NotApplicable("no `threadIdx.x < n` entry guard on a single path into it")
    return bra


def _find_loop(fn: Function, f: _Facts, name: str, li: int, pos: dict) -> Loop | None:
    """The block-stride loop at label `name`, None when not a loop; NotApplicable why not."""
    bra = _back_branch(fn, f, name, li, pos)
    if not isinstance(bra, Instruction):
        return None
    seg = _statements_between(fn, li + 1, pos[id(bra)] + 1)
    if seg is None or len(seg) < 3 or not _steps_and_tests(seg[-3], seg[-2], bra):
        return None  # loopvec names these shapes
    add, setp = seg[-3], seg[-2]
    c, stride, n = add.operands[0].strip(), add.operands[2].strip(), setp.operands[2].strip()
    init = [d for d in f.defs.get(c, []) if d is not add]
    if len(init) != 1 or pos[id(init[0])] > li or init[0].guard or init[0].opcode != "mov":
        return None
    src = init[0].operands[1].strip()
    if not (src == "%tid.x" or (f.is_register(src) and _is_tid(f, fn, src, pos[id(init[0])], pos))):
        return None
    if f.special_of(stride) != "%ntid.x":
        raise NotApplicable(f"the stride {stride} is not blockDim.x")
    after = next((s for s in fn.body[pos[id(bra)] + 1 :] if not isinstance(s, Directive)), None)
    lp = Loop(name, fn.body[li], seg[:-3], seg[-3:], c, n, stride, bra, after)
    lp.guard = _entry_guard(fn, f, lp, li, pos)
    return lp


def _lin(a: tuple, b: tuple, s: int) -> tuple:
    d = dict(a[1])
    for key, v in b[1].items():
        d[key] = d.get(key, 0) + s * v
    return (a[0] + s * b[0], {k: v for k, v in d.items() if v})


def _scale(a: tuple, m: int) -> tuple:
    return (a[0] * m, {k: v * m for k, v in a[1].items()})


def _const(x: tuple) -> int | None:
    return x[1].get("", 0) if not x[0] and set(x[1]) <= {""} else None


def _rule(ins: Instruction, ops: list) -> tuple | None:
    """The affine form of ins's result from its operands' forms, None when not affine."""
    op = ins.opcode
    if ins.guard or None in ops or not ops:
        return None
    if op == "mov" or (op == "cvt" and ins.modifiers[:2] == (".s64", ".s32")):
        return ops[0]
    if op in ("add", "sub") and len(ops) == 2 and ins.type in _INT:
        return _lin(ops[0], ops[1], 1 if op == "add" else -1)
    if op == "shl" and len(ops) == 2 and _const(ops[1]) is not None:
        return _scale(ops[0], 1 << _const(ops[1]))
    if op in ("mul", "mad") and (".lo" in ins.modifiers or ".wide" in ins.modifiers):
        a, b = ops[0], ops[1]
        res = None
        if _const(a) is not None:
            res = _scale(b, _const(a))
        elif _const(b) is not None:
            res = _scale(a, _const(b))
        elif not a[0] and not b[0]:
            res = (0, {f"{ins.dests[0]}#product": 1})  # an opaque uniform a*b
        if res is not None and op == "mad":
            res = _lin(res, ops[2], 1) if len(ops) == 3 else None
        return res
    return None


def _affine(f: _Facts, lp: Loop, uniform: set[str]) -> dict[str, tuple | None]:
    """Body register -> its value as (slope in c, {atom: coefficient}) with atoms block-uniform
    registers (outside ones expanded through their one affine definition, so a row pointer
    `out + row*cols` is seen as `out` plus an offset) and "" the constant; None for data."""
    form: dict[str, tuple | None] = {}

    def of(tok: str, depth: int = 8) -> tuple | None:
        tok = tok.strip()
        if tok == lp.c:
            return (1, {})
        if tok in form:
            return form[tok]
        if not f.is_register(tok):
            try:
                return (0, {"": int(tok, 0)})
            except ValueError:
                return None
        if tok not in uniform:
            return None
        d = f.only_def(tok)
        if depth and d is not None and d.dests == (tok,) and not _param_of(f, tok):
            res = _rule(d, [of(o, depth - 1) for o in d.operands[1:]])
            if res is not None and not res[0]:
                return res
        return (0, {tok: 1})

    for ins in lp.body:
        if not ins.dests:
            continue
        ops = [of(o) for o in ins.operands[1:]]
        res = _rule(ins, ops)
        if res is None and all(o is not None and not o[0] for o in ops) and ins.opcode in _PURE:
            res = (0, {ins.dests[0]: 1})
        form[ins.dests[0]] = res
    return form


def _access(f: _Facts, ins: Instruction, k: int, form: dict) -> Access | str | None:
    """A global element access of the body, None for another instruction, or why not."""
    if ins.opcode not in ("ld", "st") or ins.space in (".param", ".const"):
        return None
    adr = ins.address()
    if ins.space != ".global" or ins.guard or adr is None or ins.vector_width != 1:
        return f"has {ins.mnemonic} (only plain unpredicated ld/st.global are regrouped)"
    if any(m not in _LD_MODS and m != ins.type for m in ins.modifiers):
        return f"has {ins.mnemonic} (only plain ld/st.global are regrouped)"
    fa = form.get(adr.base) if adr.base in form else None
    if fa is None:
        return f"{ins.mnemonic}'s address {adr.base} is not affine in the index"
    e = type_bytes(ins.type or ".b64")
    if fa[0] != e:
        return f"{ins.mnemonic} steps {fa[0]} bytes per element, not its {e}-byte element"
    params = [p for p in (_param_of(f, a) for a in fa[1] if a) if p]
    if len(params) != 1 or fa[1].get(next(a for a in fa[1] if _param_of(f, a)), 0) != 1:
        return f"{ins.mnemonic}'s address is not one kernel pointer parameter plus an offset"
    data = ins.operands[0 if ins.opcode == "ld" else 1].strip()
    if not f.is_register(data):
        return f"{ins.mnemonic} moves an immediate, not a register"
    key = (tuple(sorted(fa[1].items())), adr.offset)
    return Access(k, ins.opcode, params[0], e, data, key)


def _body_checks(f: _Facts, lp: Loop, uniform: set[str], pos: dict) -> str | None:
    """Why B's effect on an element may depend on the thread or on other elements."""
    inside = {id(x) for x in lp.body}
    first = {}
    for k, ins in enumerate(lp.body):
        for d in ins.dests:
            if d in first or d == lp.c:
                return f"defines {d} twice"
            first[d] = k
    for k, ins in enumerate(lp.body):
        for reg in ins.registers_read():
            if reg in first and first[reg] >= k:
                return (
                    f"{reg} is carried from one element to the next "
                    f"({lp.body[first[reg]].mnemonic}, a per-thread partial): regrouping changes "
                    "which elements each thread's partial covers, and that the block combines "
                    "every partial by that operation is not proved"
                )
            if reg != lp.c and reg not in first and reg not in uniform:
                return f"reads {reg}, which differs between threads (elements change threads)"
        for tok in _TOKEN.findall(" ".join(ins.operands)):
            if not f.is_register(tok) and not tok.startswith(_SPECIAL_OK):
                return f"reads {tok}, which differs between threads"
        if ins.opcode not in _PURE and ins.opcode not in ("ld", "st"):
            return f"has {ins.mnemonic} (only arithmetic and element loads/stores are regrouped)"
    for reg in first:
        if any(id(u) not in inside for u in f.uses.get(reg, [])):
            return f"{reg}, computed per element, is used after the loop"
    end = pos[id(lp.control[-1])]
    for u in f.uses.get(lp.c, []):
        if pos[id(u)] > end:
            return f"the index {lp.c} is used after the loop ({u.mnemonic})"
    return None


def _reached(fn: Function, f: _Facts, lp: Loop, uniform: set[str], pos: dict) -> str | None:
    """Why some thread past the entry guard may not run the loop exactly once: a thread-
    dependent branch or return before the guard leaves past the loop, or a branch after the
    loop leads back before it (the loop sits in another loop)."""
    labels = fn.labels()
    start, end = pos[id(lp.guard)], pos[id(lp.control[-1])]
    for ins in f.instrs:
        k = pos[id(ins)]
        if ins.opcode not in ("bra", "brx", "ret", "exit", "trap") or start <= k <= end:
            continue
        if ins.opcode == "brx":
            return "an indirect branch is in the kernel"
        target = labels.get(ins.operands[0].strip()) if ins.opcode == "bra" else None
        if k > end:
            if ins.opcode == "bra" and (target is None or target <= end):
                return "a branch after it leads back before it (it sits in another loop)"
            continue
        if target is not None and target < start:
            continue
        pred = ins.guard.lstrip("@!") if ins.guard else None
        if pred is not None and pred not in uniform:
            return f"{ins.mnemonic} before it depends on the thread ({pred}) and skips it"
    return None


def _memory(
    module: Module, fn: Function, lp: Loop, accesses: list[Access], ctx: TransformContext
) -> str | None:
    """Why moving elements between threads may change what an access sees: an array accessed
    at two elements per iteration, two stored arrays, a loaded array that may be written, or
    the stored array accessed elsewhere in the kernel."""
    keys: dict[str, tuple] = {}
    for a in accesses:
        if keys.setdefault(a.param, a.key) != a.key:
            return f"accesses {a.param} at two elements per iteration (a neighbour such as c+1)"
    stored = {a.param for a in accesses if a.op == "st"}
    if len(stored) > 1:
        return f"stores to {len(stored)} arrays ({', '.join(sorted(stored))})"
    for a in accesses:
        ins = lp.body[a.k]
        if a.op == "ld" and a.param not in stored:
            if a.param not in ctx.read_only and ".nc" not in ins.modifiers:
                return (
                    f"loads {a.param}, which is not read-only (spec.read_only or "
                    "ld.global.nc) and may be written by other threads"
                )
    if not stored:
        return None
    pa = PointerAnalysis(module, fn, ctx)
    inside = {id(x) for x in lp.body}
    for ins in fn.instructions():
        if id(ins) in inside or ins.opcode not in _MEMORY or ins.space in _PRIVATE:
            continue
        roots = pa.address(ins).roots
        if roots is None or roots & stored:
            return f"the stored array is also accessed outside the loop ({ins.mnemonic})"
    return None


def plan(
    module: Module,
    fn: Function,
    f: _Facts,
    lp: Loop,
    ctx: TransformContext,
    opcode: str,
    uniform: set[str],
) -> Plan:
    """Check every legality condition of the loop; NotApplicable names the first that fails.
    `uniform`: the block-uniform registers (divergence.block_uniform)."""
    pos = {id(s): k for k, s in enumerate(fn.body)}
    why = _body_checks(f, lp, uniform, pos) or _reached(fn, f, lp, uniform, pos)
    if why:
        raise NotApplicable(why)
    form = _affine(f, lp, uniform)
    accesses: list[Access] = []
    for k, ins in enumerate(lp.body):
        a = _access(f, ins, k, form)
        if isinstance(a, str):
            raise NotApplicable(a)
        if a is not None:
            accesses.append(a)
    why = _memory(module, fn, lp, accesses, ctx)
    if why:
        raise NotApplicable(why)
    if not any(a.op == opcode for a in accesses):
        raise NotApplicable(f"has no element-indexed {opcode}.global to widen")
    width = 16 // max(a.e for a in accesses)
    for a in accesses:
        bits = type_bytes(f.reg_type(a.data) or ".b64")
        if a.e < 4 and a.op == "st" and (a.e != 2 or bits != 2):
            raise NotApplicable(f"{lp.body[a.k].mnemonic}: only 16-bit narrow stores are packed")
        if a.e == 1 and (bits not in (2, 4) or lp.body[a.k].type not in (".u8", ".s8", ".b8")):
            raise NotApplicable(f"{lp.body[a.k].mnemonic}: byte data in an unsupported register")
        if a.e == 2 and bits != 2:
            raise NotApplicable(f"{a.data} is not a 16-bit register")
    return Plan(lp, width, accesses, form)


def _copy(ins: Instruction, ren: dict[str, str]) -> str:
    def sub(text: str) -> str:
        return _TOKEN.sub(lambda m: ren.get(m.group(0), m.group(0)), text)

    ops = tuple(sub(o) for o in ins.operands)
    return ins.with_(operands=ops, guard=sub(ins.guard) if ins.guard else None).render()


def _fresh_copy(f: _Facts, ins: Instruction, ren: dict[str, str], regs: _Regs) -> str:
    """ins with its sources renamed by ren and fresh destinations (recorded in ren)."""
    text_ren = dict(ren)
    for d in ins.dests:
        ren[d] = regs.new(f.reg_type(d) or ".b32")
    out = _copy(ins, {**text_ren, **{d: ren[d] for d in ins.dests}})
    return out


def _base(ins: Instruction, a: Access, w: int, ren: dict[str, str], regs: _Regs, masked: bool):
    """(code, address) of copy 0's access: `base+offset`, or under the runtime test that
    address with its low log2(W*e) bits cleared (they are zero there; the clearing tells the
    congruence analysis, so the other action's merge of scalar copies can prove them aligned)."""
    adr = ins.address()
    assert adr is not None
    base = ren.get(adr.base, adr.base)
    if not masked and not adr.offset:
        return [], base
    m = regs.new(".b64")
    code = [f"add.s64 \t{m}, {base}, {adr.offset};"]
    if masked:
        code.append(f"and.b64 \t{m}, {m}, {-(w * a.e)};")
    return code, m


def _groups(p: Plan, f: _Facts, regs: _Regs, g: str, opcode: str, masked: bool) -> list[str]:
    """B on elements gW .. gW+W-1: copied W times; each access of the widened kind as one vector
    access, of the other kind as W scalar accesses off copy 0's address."""
    lp, w = p.loop, p.width
    at = {a.k: a for a in p.accesses}
    cw = regs.new(f.reg_type(lp.c) or ".b32")
    out = [f"shl.b32 \t{cw}, {g}, {w.bit_length() - 1};"]
    ren: list[dict[str, str]] = [{lp.c: cw}]
    for j in range(1, w):
        ren.append({lp.c: regs.new(f.reg_type(lp.c) or ".b32")})
        out.append(f"add.s32 \t{ren[j][lp.c]}, {cw}, {j};")
    for k, ins in enumerate(lp.body):
        a = at.get(k)
        if a is None:
            out += [_fresh_copy(f, ins, ren[j], regs) for j in range(w)]
            continue
        code, where = _base(ins, a, w, ren[0], regs, masked)
        out += code
        kind = "ld" if a.op == opcode else "scalar"
        if a.op == "ld":
            dt = f.reg_type(a.data) or ".b32"
            for j in range(w):
                ren[j][a.data] = regs.new(dt)
            dl = [ren[j][a.data] for j in range(w)]
            out += _vector_load(ins, where, a.e, dl, dt, regs, kind)
        else:
            vl = [ren[j].get(a.data, a.data) for j in range(w)]
            out += _vector_store(ins, where, a.e, vl, regs, "st" if a.op == opcode else kind)
    return out


def _row_test(p: Plan, f: _Facts, regs: _Regs, q: str) -> list[str]:
    """`q = some access's address at c = 0 is not W*e-aligned`: B's address arithmetic
    with c = 0 (block-uniform: it reads only uniform registers)."""
    lp, w = p.loop, p.width
    zero = regs.new(f.reg_type(lp.c) or ".b32")
    ren = {lp.c: zero}
    out = [f"mov.b32 \t{zero}, 0;"]
    form = p.form
    for ins in lp.body:
        if ins.dests and form.get(ins.dests[0]) is not None:
            out.append(_fresh_copy(f, ins, ren, regs))
    acc = regs.new(".b64")
    out.append(f"mov.b64 \t{acc}, 0;")
    for a in p.accesses:
        adr = lp.body[a.k].address()
        assert adr is not None
        t = regs.new(".b64")
        out += [
            f"add.s64 \t{t}, {ren.get(adr.base, adr.base)}, {adr.offset};",
            f"and.b64 \t{t}, {t}, {w * a.e - 1};",
            f"or.b64 \t{acc}, {acc}, {t};",
        ]
    out.append(f"setp.ne.s64 \t{q}, {acc}, 0;")
    return out


def _regrouped(p: Plan, f: _Facts, regs: _Regs, labels: str, opcode: str, test: bool) -> list[str]:
    """The vector groups and the scalar tail's start, inserted before the loop's label."""
    lp, w = p.loop, p.width
    lg = w.bit_length() - 1
    g, ng, e, q = regs.new(".b32"), regs.new(".b32"), regs.new(".b32"), regs.new(".pred")
    vec, tail, exit_label = f"{labels}_vec", f"{labels}_tail", f"{labels}_exit"
    if isinstance(lp.after, Label):
        exit_label = lp.after.name
    lines = [f"shr.s32 \t{ng}, {lp.n}, {lg};"]
    if test:
        lines += _row_test(p, f, regs, q) + [f"@{q} bra \t{lp.head.name};"]
    lines += [
        f"setp.ge.s32 \t{q}, {lp.c}, {ng};",
        f"@{q} bra \t{tail};",
        f"mov.b32 \t{g}, {lp.c};",
        f"{vec}:",
        *_groups(p, f, regs, g, opcode, test),
        f"add.s32 \t{g}, {g}, {lp.stride};",
        f"setp.lt.s32 \t{q}, {g}, {ng};",
        f"@{q} bra \t{vec};",
        f"{tail}:",
        f"shl.b32 \t{e}, {ng}, {lg};",
        f"add.s32 \t{lp.c}, {lp.c}, {e};",
        f"setp.ge.s32 \t{q}, {lp.c}, {lp.n};",
        f"@{q} bra \t{exit_label};",
    ]
    return lines


def _emit(
    module: Module, fn: Function, f: _Facts, plans: list[Plan], tag: str, opcode: str, tests: set
) -> str:
    regs = _Regs(f, tag)
    ed = module.edit()
    for n, p in enumerate(plans):
        lines = _regrouped(p, f, regs, f"$L__{tag}{n}", opcode, n in tests)
        ed.insert_before(p.loop.head, lines, indent="\t")  # type: ignore[arg-type]
        if not isinstance(p.loop.after, Label):
            ed.insert_after(p.loop.control[-1], [f"$L__{tag}{n}_exit:"], indent="")
    last_reg = [s for s in fn.body if isinstance(s, Directive) and s.name == ".reg"]
    if not last_reg:
        raise NotApplicable("the kernel declares no registers")
    ed.insert_after(last_reg[-1], regs.decls(), indent="\t")
    return ed.text()


def _unproven(text: str, ctx: TransformContext, tag: str, plans: list[Plan]) -> set[int]:
    """The plans whose vector accesses the congruence analysis does not prove W*e-aligned on
    the rewritten kernel."""
    module = parse(text)
    fn = module.entry(ctx.entry)
    pa = PointerAnalysis(module, fn, ctx)
    labels = fn.labels()
    out: set[int] = set()
    for n in range(len(plans)):
        k = labels[f"$L__{tag}{n}_vec"] + 1
        while k < len(fn.body) and not isinstance(fn.body[k], Label):
            s = fn.body[k]
            if isinstance(s, Instruction) and s.vector_width > 1 and s.space == ".global":
                if pa.alignment(s) < s.vector_width * type_bytes(s.type or ".b64"):
                    out.add(n)
            k += 1
    return out


def rewrite_block_loops(
    module: Module, fn: Function, ctx: TransformContext, opcode: str
) -> str | None:
    """The PTX with every legal block-stride loop regrouped; None when the kernel has no
    block-stride loop, NotApplicable naming why not when it has only refused ones."""
    f = _Facts(fn)
    pos = {id(s): k for k, s in enumerate(fn.body)}
    plans: list[Plan] = []
    why: list[str] = []
    uniform: set[str] | None = None
    for name, li in fn.labels().items():
        try:
            lp = _find_loop(fn, f, name, li, pos)
            if lp is not None:
                uniform = block_uniform(fn) if uniform is None else uniform
                plans.append(plan(module, fn, f, lp, ctx, opcode, uniform))
        except NotApplicable as exc:
            why.append(f"block-stride loop {name}: {exc}")
    if not plans:
        if why:
            raise NotApplicable("; ".join(why))
        return None
    tag = _fresh_tag(module, fn) + "b"
    text = _emit(module, fn, f, plans, tag, opcode, set())
    tests = _unproven(text, ctx, tag, plans)
    return _emit(module, fn, f, plans, tag, opcode, tests) if tests else text
