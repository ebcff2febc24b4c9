"""vec_ld / vec_st on element loops: regroup a grid-stride (or guarded) elementwise loop so
that each thread handles W contiguous elements with one vector access, plus a scalar tail.

The forms (nvcc's PTX for them, `i` the 32-bit element index):

* grid-stride loop: `i = ctaid.x*ntid.x + tid.x; if (i >= n) goto X; do { B(i); i += S; }
  while (i < n); X:` with `S = ntid.x*nctaid.x`; or block-stride: `i = tid.x`, `S = ntid.x`;
* guarded element: `i = ctaid.x*ntid.x + tid.x; if (i >= n) goto X; B(i); X:`, which is the
  grid-stride loop over `m = min(n, ntid.x*nctaid.x)` elements (each thread runs it once).

The rewrite: groups `g = i0, i0+S, ... < n/W` each run B on elements `g*W .. g*W+W-1` (B
copied W times, the W accesses of one array as one vector access), then the original B runs
as a scalar tail over `i = i0 + (n/W)*W, ... < n`. Thread start values `i0` form a complete
residue system modulo S, so groups cover `[0, (n/W)*W)` and the tail covers the rest, every
element exactly once (threads with `i0 >= n` had no work before and have none after).

It is legal only when what B does to element i does not depend on which thread runs it or
when: B is straight-line; every register it reads is the index, defined earlier in the same
iteration, or thread-uniform (no `%tid`, `%laneid`, loads, ...; `%ctaid` is allowed for the
block-stride form); nothing it defines is read outside it (no accumulation, no live-out); the
index feeds only `base + i*e` addresses of global accesses of e bytes, with `base` a
kernel pointer parameter; arrays it loads are read-only (spec.read_only or `.nc`) or the one
array it stores, at the same element; when it stores, the kernel has no other global access;
shared integer atomic adds need the whole-kernel proof of `_shared_sums_unproven`; every
thread past the guard reaches it; and vector accesses are aligned: the parameter's contract
alignment is at least W*e. Every refusal names the condition that failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chronos.ptx import Function, Instruction, Label, Module, type_bytes
from chronos.ptx.model import Brace, Directive

from .base import NotApplicable, TransformContext

_TOKEN = re.compile(r"%[\w$.]+")
_PURE = frozenset(
    "add sub mul mad mul24 mad24 sad div rem abs neg min max popc clz bfind fns brev bfe bfi "
    "prmt and or xor not cnot lop3 shf shl shr mov cvt cvta setp selp slct set fma rcp sqrt "
    "rsqrt sin cos lg2 ex2 tanh copysign testp".split()
)
_LD_MODS = frozenset((".global", ".nc", ".ca", ".cg", ".cs", ".lu", ".cv", ".wb", ".wt"))
_UNIFORM_SPECIAL = ("%ntid.", "%nctaid.")
# opcodes that may touch memory (a `call` may do anything)
_MEMORY = frozenset(
    "ld ldu st atom red cp prefetch prefetchu suld sust sured tex tld4 call".split()
)


@dataclass
class Region:
    """One candidate: `body` is B; `anchor` the statement the new code goes before (the loop
    label) or after (the guard's branch)."""

    kind: str  # "loop" or "guard"
    name: str  # a label naming it in messages
    body: list[Instruction]
    i: str
    n: str
    stride: str | None
    exit_label: str
    anchor: object
    control: list[Instruction] = field(default_factory=list)
    block_stride: bool = False
    start: object = None  # the entry guard's branch: the region begins after it


@dataclass
class Plan:
    region: Region
    width: int
    roles: dict[int, tuple]  # body index -> role


class _Facts:
    """Per-function def/use facts."""

    def __init__(self, fn: Function):
        self.fn = fn
        self.instrs = fn.instructions()
        self.types: dict[str, str] = {}
        self.prefixes: dict[str, str] = {}
        for d in fn.reg_decls():
            if d.count is None:
                self.types[d.name] = d.type
            else:
                self.prefixes[d.name] = d.type
        self.defs: dict[str, list[Instruction]] = {}
        self.uses: dict[str, list[Instruction]] = {}
        for ins in self.instrs:
            for r in ins.dests:
                self.defs.setdefault(r, []).append(ins)
            for r in set(ins.registers_read()):
                self.uses.setdefault(r, []).append(ins)
        self.params = {p.name for p in fn.params}

    def reg_type(self, reg: str) -> str | None:
        if reg in self.types:
            return self.types[reg]
        m = re.match(r"^(%[A-Za-z_$]+)(\d+)$", reg)
        if m and m.group(1) in self.prefixes:
            return self.prefixes[m.group(1)]
        return None

    def is_register(self, tok: str) -> bool:
        return self.reg_type(tok) is not None

    def only_def(self, reg: str) -> Instruction | None:
        d = self.defs.get(reg, [])
        return d[0] if len(d) == 1 else None

    def special_of(self, reg: str) -> str | None:
        """`%tid.x` when reg's only definition is `mov reg, %tid.x`."""
        d = self.only_def(reg)
        if d is None or d.opcode != "mov" or len(d.operands) != 2:
            return None
        src = d.operands[1].strip()
        return src if src.startswith("%") and not self.is_register(src) else None

    def uniform(self, allow_ctaid: bool, allow_tid: bool = False) -> set[str]:
        """Registers whose every definition gives the same value in every thread (of a block
        when allow_ctaid)."""
        # a register set in more than one place may hold a different definition's value in
        # each thread (which one reaches depends on the thread's path): never uniform
        varying: set[str] = {r for r, ds in self.defs.items() if len(ds) > 1}
        changed = True
        while changed:
            changed = False
            for ins in self.instrs:
                if not ins.dests or all(d in varying for d in ins.dests):
                    continue
                bad = False
                if ins.opcode == "ld" and ins.space == ".param":
                    bad = False
                elif ins.opcode not in _PURE:
                    bad = True
                else:
                    for tok in _TOKEN.findall(" ".join(ins.srcs)) + (
                        [ins.guard.lstrip("@!")] if ins.guard else []
                    ):
                        if self.is_register(tok):
                            bad = bad or tok in varying
                        elif not (
                            tok.startswith(_UNIFORM_SPECIAL)
                            or (allow_ctaid and tok.startswith("%ctaid."))
                            or (allow_tid and tok.startswith("%tid."))
                        ):
                            bad = True
                if bad:
                    varying.update(ins.dests)
                    changed = True
        return {r for r in self.defs if r not in varying}


def _is_global_id(f: _Facts, d: Instruction | None) -> bool:
    """d is `mad.lo reg, ctaid.x, ntid.x, tid.x` (the global thread index nvcc writes)."""
    if d is None or d.opcode != "mad" or ".lo" not in d.modifiers or d.guard:
        return False
    a, b, c = (o.strip() for o in d.operands[1:4])
    return {f.special_of(a), f.special_of(b)} == {"%ctaid.x", "%ntid.x"} and (
        f.special_of(c) == "%tid.x"
    )


def _is_grid_size(f: _Facts, reg: str) -> bool:
    d = f.only_def(reg)
    if d is None or d.opcode != "mul" or ".lo" not in d.modifiers or d.guard:
        return False
    a, b = (o.strip() for o in d.operands[1:3])
    return {f.special_of(a), f.special_of(b)} == {"%ntid.x", "%nctaid.x"}


def _guard_at(instrs: list[Instruction], k: int, i: str) -> tuple[str, str] | None:
    """(n, exit label) when instrs[k] is `@p bra X` and p's definition, earlier in the same
    straight-line run with neither i nor n redefined in between, is `setp.ge.s32 p, i, n`."""
    bra = instrs[k]
    if bra.opcode != "bra" or bra.guard is None or bra.guard.startswith("@!"):
        return None
    pred = bra.guard[1:]
    for kk in range(k - 1, -1, -1):
        setp = instrs[kk]
        if setp.opcode in ("bra", "ret", "exit"):
            return None
        if pred not in setp.dests:
            continue
        if setp.opcode != "setp" or setp.modifiers[:2] != (".ge", ".s32") or setp.guard:
            return None
        if setp.dests != (pred,) or setp.operands[1].strip() != i:
            return None
        n = setp.operands[2].strip()
        if any(x in ins.dests for ins in instrs[kk + 1 : k] for x in (i, n)):
            return None
        return n, bra.operands[0].strip()
    return None


def _statements_between(fn: Function, first: int, last: int) -> list | None:
    """Instructions of body[first:last]; None if a label or a non-.loc directive intervenes."""
    out = []
    for s in fn.body[first:last]:
        if isinstance(s, Instruction):
            out.append(s)
        elif isinstance(s, Brace):
            continue
        elif isinstance(s, Directive) and s.name == ".loc":
            continue
        else:
            return None
    return out


def _back_branch(
    fn: Function, f: _Facts, name: str, li: int, pos: dict
) -> Instruction | str | None:
    """The one backward `bra name` closing a loop at label `name` (body[li]); None when there
    is none, or why it is not a candidate when the loop is also entered by a branch."""
    back = [
        s
        for s in fn.body[li + 1 :]
        if isinstance(s, Instruction) and s.opcode == "bra" and s.operands[0].strip() == name
    ]
    if len(back) != 1 or pos[id(back[0])] < li:
        return None
    if sum(1 for x in f.instrs if x.opcode == "bra" and x.operands[0].strip() == name) != 1:
        return f"loop {name} is entered by a branch as well as by falling in"
    return back[0]


def _steps_and_tests(add: Instruction, setp: Instruction, bra: Instruction) -> bool:
    """The loop ends in `add i, i, S; setp.lt.s32 p, i, n; @p bra L`."""
    return not (
        add.opcode != "add"
        or add.guard
        or len(add.operands) != 3
        or add.operands[0].strip() != add.operands[1].strip()
        or setp.opcode != "setp"
        or setp.modifiers[:2] != (".lt", ".s32")
        or bra.guard != "@" + setp.dests[0]
        or setp.operands[1].strip() != add.operands[0].strip()
    )


def _entry_guard(
    fn: Function, f: _Facts, li: int, bra: Instruction, i: str, n: str, pos: dict, ipos: dict
) -> tuple[str, Instruction] | None:
    """(exit label, guard branch) of the loop's `setp.ge.s32 p, i, n; @p bra X` entry guard,
    with X right after the loop and only straight-line code between it and the loop label."""
    instrs = f.instrs
    g = None
    for kk in range(ipos[id(bra)] - 1, -1, -1):
        if instrs[kk].opcode == "bra" and pos[id(instrs[kk])] < li:
            g = kk
            break
    guard = _guard_at(instrs, g, i) if g is not None else None
    after = next(
        (s for s in fn.body[pos[id(bra)] + 1 :] if not isinstance(s, Directive)),
        None,
    )
    if (
        guard is None
        or guard[0] != n
        or not isinstance(after, Label)
        or after.name != guard[1]
        or _statements_between(fn, pos[id(instrs[g])] + 1, li) is None
    ):
        return None
    return guard[1], instrs[g]


def _block_stride(f: _Facts, i: str, add: Instruction, stride: str) -> bool | None:
    """False for a grid-stride loop (i starts at the global thread index, steps by the grid
    size), True for a block-stride one (tid.x, ntid.x), None for neither."""
    init = next(d for d in f.defs[i] if d is not add)
    if _is_global_id(f, init) and init is f.defs[i][0]:
        return False if _is_grid_size(f, stride) else None
    block = (
        init.opcode == "mov"
        and init.operands[1].strip() == "%tid.x"
        and f.special_of(stride) == "%ntid.x"
    )
    return True if block else None


def _loop_region(
    fn: Function, f: _Facts, name: str, li: int, pos: dict, ipos: dict
) -> Region | str | None:
    """The loop at label `name` as a Region, why it is not one, or None (not a loop)."""
    # a loop: label L ... add i, i, S; setp.lt.s32 p, i, n; @p bra L
    bra = _back_branch(fn, f, name, li, pos)
    if not isinstance(bra, Instruction):
        return bra
    seg = _statements_between(fn, li + 1, pos[id(bra)] + 1)
    if seg is None or len(seg) < 3:
        return f"loop {name} is not one straight-line block"
    add, setp = seg[-3], seg[-2]
    if not _steps_and_tests(add, setp, bra):
        return f"loop {name} does not end in `i += S; if (i < n) repeat` (s32)"
    i, stride, n = add.operands[0].strip(), add.operands[2].strip(), setp.operands[2].strip()
    entry = _entry_guard(fn, f, li, bra, i, n, pos, ipos)
    if entry is None:
        return f"loop {name} has no `if (i >= n) skip` entry guard"
    if len(f.defs.get(i, [])) != 2:
        return f"loop {name}: the index {i} has other definitions (already regrouped?)"
    block = _block_stride(f, i, add, stride)
    if block is None:
        return (
            f"loop {name} does not start at the global (or block) thread index and step "
            "by the grid (or block) size"
        )
    exit_label, start = entry
    return Region(
        "loop",
        name,
        seg[:-3],
        i,
        n,
        stride,
        exit_label,
        fn.body[li],
        [add, setp, bra],
        block,
        start,
    )


def _guard_region(
    fn: Function, f: _Facts, k: int, pos: dict, labels: dict, looped: set[int]
) -> Region | str | None:
    """The code guarded by `if (i < n)` after instrs[k] (`i = ctaid.x*ntid.x + tid.x`) as a
    Region, why it is not one, or None (no such guard)."""
    instrs = f.instrs
    ins = instrs[k]
    if ins.opcode != "mad" or id(ins) in looped or len(ins.dests) != 1:
        return None
    i = ins.dests[0]
    if not _is_global_id(f, f.only_def(i)):
        return None
    kb = next((j for j in range(k + 1, len(instrs)) if instrs[j].opcode == "bra"), None)
    guard = _guard_at(instrs, kb, i) if kb is not None else None
    if guard is None or guard[1] not in labels:
        return None
    n, exit_label = guard
    bra = instrs[kb]
    if _statements_between(fn, pos[id(ins)] + 1, pos[id(bra)]) is None:
        return None
    if labels[exit_label] < pos[id(bra)]:
        return None
    seg = _statements_between(fn, pos[id(bra)] + 1, labels[exit_label])
    if seg is None:
        return f"the code guarded by `i < n` (up to {exit_label}) is not straight-line"
    if any(id(s) in looped for s in seg):
        return None
    return Region("guard", exit_label, seg, i, n, None, exit_label, bra, start=bra)


def find_regions(fn: Function, f: _Facts) -> tuple[list[Region], list[str]]:
    """Candidate loops / guarded bodies, and why the near-misses are not candidates."""
    regions: list[Region] = []
    why: list[str] = []

    def take(found: Region | str | None) -> None:
        if isinstance(found, Region):
            regions.append(found)
        elif isinstance(found, str):
            why.append(found)

    pos = {id(s): k for k, s in enumerate(fn.body)}
    ipos = {id(s): k for k, s in enumerate(f.instrs)}
    labels = fn.labels()
    for name, li in labels.items():
        take(_loop_region(fn, f, name, li, pos, ipos))
    looped = {id(ins) for r in regions for ins in r.body + r.control}
    for k in range(len(f.instrs)):
        take(_guard_region(fn, f, k, pos, labels, looped))
    return regions, why


def _body_defs(r: Region) -> dict[str, int] | str:
    """Register -> the body index defining it; why not when the body loads a parameter or
    defines a register twice (or the index)."""
    bdefs: dict[str, int] = {}
    for k, ins in enumerate(r.body):
        if ins.opcode == "ld" and ins.space == ".param":
            return "loads a parameter inside the body"
        for d in ins.dests:
            if d in bdefs or d == r.i:
                return f"defines {d} twice"
            bdefs[d] = k
    return bdefs


def _carried(r: Region, bdefs: dict[str, int]) -> str | None:
    """Why not, when an element reads a register the body defines at or after the read."""
    for k, ins in enumerate(r.body):
        for reg in ins.registers_read():
            if reg in bdefs and bdefs[reg] >= k:
                return (
                    f"carries {reg} from one element to the next (an accumulation or "
                    "recurrence: regrouping elements would change it)"
                )
    return None


def _live_out(f: _Facts, bdefs: dict[str, int], bset: set[int]) -> str | None:
    """Why not, when a register the body defines is read outside it."""
    for reg in bdefs:
        for u in f.uses.get(reg, []):
            if id(u) not in bset:
                return f"{reg}, computed per element, is used after it"
    return None


def _index_escapes(f: _Facts, r: Region, bset: set[int]) -> str | None:
    """Why not, when the index is read by more than the guard / loop control and the body."""
    ctrl = {id(x) for x in r.control}
    for u in f.uses.get(r.i, []):
        if id(u) in ctrl or id(u) in bset:
            continue
        if (
            u.opcode == "setp"
            and u.modifiers[:2] == (".ge", ".s32")
            and [o.strip() for o in u.operands[1:]] == [r.i, r.n]
        ):
            continue  # the entry guard
        return f"the index {r.i} is used outside the element code ({u.mnemonic})"
    return None


def _offset_role(r: Region, ins: Instruction, offsets: dict[str, int]) -> tuple | str:
    """`off = i*e` (64-bit) of an instruction reading the index."""
    ops = [o.strip() for o in ins.operands]
    if ins.guard:
        return f"the index {r.i} feeds a predicated {ins.mnemonic}"
    if ins.mnemonic == "mul.wide.s32" and ops[1] == r.i and ops[2].isdigit():
        offsets[ops[0]] = int(ops[2])
    elif ins.mnemonic == "cvt.s64.s32" and ops[1] == r.i:
        offsets[ops[0]] = 1
    else:
        return f"the index {r.i} feeds {ins.mnemonic}, not only element addresses"
    return ("off", ops[0], offsets[ops[0]])


def _addr_role(
    f: _Facts, ins: Instruction, offs: list[str], offsets: dict[str, int], addrs: dict
) -> tuple | str:
    """`addr = base + off` of an instruction reading an element offset, base a pointer
    parameter."""
    ops = [o.strip() for o in ins.operands]
    if ins.mnemonic != "add.s64" or ins.guard or len(offs) != 1:
        return f"the element offset {offs[0]} feeds {ins.mnemonic}, not a base + offset"
    base = ops[2] if ops[1] == offs[0] else ops[1]
    param = _param_of(f, base)
    if param is None:
        return (
            f"the address base {base} is not a kernel pointer parameter (its alignment is unknown)"
        )
    addrs[ops[0]] = (param, base, offsets[offs[0]])
    return ("addr", ops[0], base, offsets[offs[0]])


def _access_role(f: _Facts, ins: Instruction, a: str, addrs: dict) -> tuple | str:
    """`ld/st.global [addr]` of one element, of an instruction reading an element address."""
    adr = ins.address()
    if (
        ins.opcode not in ("ld", "st")
        or ins.space != ".global"
        or ins.guard
        or adr is None
        or adr.base != a
        or adr.offset != 0
        or ins.vector_width != 1
        or any(m not in _LD_MODS and m != ins.type for m in ins.modifiers)
    ):
        return f"the element address {a} feeds {ins.mnemonic} (a plain ld/st.global)"
    e = addrs[a][2]
    if ins.type is None or type_bytes(ins.type) != e:
        return f"{ins.mnemonic} accesses {ins.type} but the index is scaled by {e}"
    data = ins.operands[0 if ins.opcode == "ld" else 1].strip()
    if not f.is_register(data):
        return f"{ins.mnemonic} moves an immediate, not a register"
    return (ins.opcode, a, e, data)


def _copy_role(f: _Facts, ins: Instruction) -> tuple | str:
    """An instruction copied per element: a shared integer atomic add or arithmetic on
    registers."""
    if ins.opcode in ("atom", "red"):
        ok = (
            ins.space == ".shared"
            and ".add" in ins.modifiers
            and ins.type in (".u32", ".s32", ".u64")
            and not ins.guard
            and not (ins.opcode == "atom" and f.uses.get(ins.dests[0]))
        )
        if not ok:
            return f"has {ins.mnemonic} (only shared integer atomic adds commute)"
        return ("copy",)
    if ins.opcode not in _PURE:
        return (
            f"has {ins.mnemonic} (only arithmetic, element loads/stores and shared "
            "integer atomic adds may be regrouped)"
        )
    for tok in _TOKEN.findall(" ".join(ins.operands)):
        if not f.is_register(tok):
            return f"reads {tok}, which differs between the threads elements move between"
    return ("copy",)


def _roles(f: _Facts, r: Region) -> tuple[dict[int, tuple], dict] | str:
    """(body index -> role, element address -> (param, base, e)), or why not: the index feeds
    only `base + i*e` addresses of plain global element accesses."""
    roles: dict[int, tuple] = {}
    offsets: dict[str, int] = {}  # reg = i*e (64-bit)
    addrs: dict[str, tuple[str, str, int]] = {}  # reg -> (param, base reg, e)
    for k, ins in enumerate(r.body):
        reads = ins.registers_read()
        offs = [x for x in reads if x in offsets]
        used_addr = [x for x in reads if x in addrs]
        if r.i in reads:
            role = _offset_role(r, ins, offsets)
        elif offs:
            role = _addr_role(f, ins, offs, offsets, addrs)
        elif used_addr:
            role = _access_role(f, ins, used_addr[0], addrs)
        else:
            role = _copy_role(f, ins)
        if isinstance(role, str):
            return role
        roles[k] = role
    return roles, addrs


def _thread_dependent(
    r: Region, roles: dict[int, tuple], bdefs: dict[str, int], uniform: set[str]
) -> str | None:
    """Why not, when the body reads a register from outside it that is not the same in every
    thread, or the stride or bound is not."""
    for k, ins in enumerate(r.body):
        if roles[k][0] in ("off",):
            continue
        for reg in ins.registers_read():
            if reg in bdefs or reg == r.i or reg in uniform:
                continue
            return f"reads {reg}, which differs between threads (elements change threads)"
    if r.kind == "loop" and r.stride not in uniform:
        return f"the stride {r.stride} is not uniform"
    if r.n not in uniform:
        return f"the bound {r.n} is not uniform"
    return None


def _other_memory(f: _Facts, bset: set[int]) -> str | None:
    """Why a storing body may not be regrouped: the kernel accesses memory outside it."""
    for ins in f.instrs:
        if id(ins) in bset:
            continue
        if ins.opcode in _MEMORY and ins.space not in (".param", ".shared", ".local", ".const"):
            return (
                f"the kernel also has {ins.mnemonic} outside it (elements change threads, so "
                "ordering against it is not kept)"
            )
    return None


def _unsafe_load(
    r: Region, roles: dict[int, tuple], addrs: dict, stored: set[str], ctx: TransformContext
) -> str | None:
    """Why not, when a load reads an array that may be written: neither read-only nor the
    stored array at the same element."""
    for k in roles:
        op = roles[k][0]
        if op != "ld":
            continue
        param, _, e = addrs[roles[k][1]]
        if param in stored:
            same = [
                roles[j]
                for j in roles
                if roles[j][0] == "st" and addrs[roles[j][1]][0] == param and roles[j][2] == e
            ]
            if same:
                continue
        if param not in ctx.read_only and ".nc" not in r.body[k].modifiers:
            return (
                f"loads {param}, which is not read-only (spec.read_only or ld.global.nc) and may "
                "alias the stored array"
            )
    return None


def _vector_width(accesses: list[tuple], addrs: dict, ctx: TransformContext) -> int | str:
    """As wide as 16 bytes allows, within every array's contract alignment; or why not."""
    esz = {addrs[a[1]][2] for a in accesses}
    params = {addrs[a[1]][0] for a in accesses}
    width = 16 // max(esz)
    while width >= 2:
        aligned = all(ctx.align_of(p) >= width * e for p, _, e in addrs.values())
        words = all(width * e >= 4 for e in esz if e < 4)
        if aligned and words:
            break
        width //= 2
    if width < 2:
        worst = min(params, key=ctx.align_of)
        return (
            f"pointer {worst} alignment {ctx.align_of(worst)} (spec.alignment) is below a "
            f"2-element vector of {max(esz)}-byte elements"
        )
    return width


def _narrow_unsupported(f: _Facts, r: Region, roles: dict[int, tuple], opcode: str) -> str | None:
    """Why not, when a widened access of sub-word elements cannot be packed into words."""
    for k in roles:
        op = roles[k][0]
        if op not in ("ld", "st") or op != opcode:
            continue
        e, data = roles[k][2], roles[k][3]
        if e >= 4:
            continue
        bits = type_bytes(f.reg_type(data) or ".b64")
        if op == "st" and e != 2:
            return "stores bytes (packing them into words is not supported)"
        if e == 2 and bits != 2:
            return f"{data} is not a 16-bit register"
        if e == 1 and bits not in (2, 4):
            return f"{data} is not a 16- or 32-bit register"
        if e == 1 and r.body[k].type not in (".u8", ".s8", ".b8"):
            return f"{r.body[k].mnemonic} is not a byte load"
    return None


def plan(fn: Function, f: _Facts, r: Region, ctx: TransformContext, opcode: str) -> Plan:
    """Check every legality condition; the Plan says how each body instruction is rewritten."""
    where = f"{'loop' if r.kind == 'loop' else 'guarded element code'} {r.name}"

    def no(msg: str) -> NotApplicable:
        return NotApplicable(f"{where}: {msg}")

    def check(why: str | None) -> None:
        if why:
            raise no(why)

    bset = {id(x) for x in r.body}
    bdefs = _body_defs(r)
    if isinstance(bdefs, str):
        raise no(bdefs)
    check(_carried(r, bdefs))
    check(_live_out(f, bdefs, bset))
    # the index: read only by the guard / loop control and `base + i*e` address arithmetic
    check(_index_escapes(f, r, bset))
    found = _roles(f, r)
    if isinstance(found, str):
        raise no(found)
    roles, addrs = found
    # registers from outside the body must be the same in every thread
    uniform = f.uniform(allow_ctaid=r.block_stride)
    check(_reached_by_all(fn, f, r, uniform))
    check(_thread_dependent(r, roles, bdefs, uniform))
    # memory: the only global accesses of the kernel are these; loads read-only or own element
    accesses = [roles[k] for k in roles if roles[k][0] in ("ld", "st")]
    atomics = [r.body[k] for k in roles if r.body[k].opcode in ("atom", "red")]
    if atomics:
        bad = _shared_sums_unproven(fn, f, r, atomics)
        if bad:
            raise no(f"has shared atomic adds, but {bad}")
    if any(a[0] == "st" for a in accesses):
        check(_other_memory(f, bset))
    stored = {addrs[a][0] for (op, a, _, _) in accesses if op == "st"}
    if len(stored) > 1:
        raise no(f"stores to {len(stored)} arrays ({', '.join(sorted(stored))}) that may alias")
    check(_unsafe_load(r, roles, addrs, stored, ctx))
    if not any(a[0] == opcode for a in accesses):
        raise no(f"has no element-indexed {opcode}.global to widen")
    width = _vector_width(accesses, addrs, ctx)
    if isinstance(width, str):
        raise no(width)
    check(_narrow_unsupported(f, r, roles, opcode))
    return Plan(r, width, roles)


def _reached_by_all(fn: Function, f: _Facts, r: Region, uniform: set[str]) -> str | None:
    """Every thread that passes the entry guard runs the region once, whatever its index:
    no branch or return before it depends on the thread and leaves past it, and nothing
    after it branches back (the region is not inside another loop)."""
    pos = {id(s): k for k, s in enumerate(fn.body)}
    labels = fn.labels()
    start, end = pos[id(r.start)], labels[r.exit_label]
    for ins in fn.instructions():
        k = pos[id(ins)]
        if ins.opcode not in ("bra", "brx", "ret", "exit", "trap") or start <= k <= end:
            continue  # not control flow, or the guard, the loop and the region's own code
        target = labels.get(ins.operands[0].strip()) if ins.opcode == "bra" else None
        if ins.opcode == "brx":
            return "an indirect branch is in the kernel"
        if k > end:
            if ins.opcode == "bra" and (target is None or target <= end):
                return "a branch after it leads back before it (it sits in another loop)"
            continue
        if ins.opcode == "bra" and target is not None and target < start:
            continue  # reconverges before the region
        pred = ins.guard.lstrip("@!") if ins.guard else None
        if pred is not None and pred not in uniform:
            return f"{ins.mnemonic} before it depends on the thread ({pred}) and skips it"
    return None


def _shared_sums_unproven(
    fn: Function, f: _Facts, r: Region, atomics: list[Instruction]
) -> str | None:
    """Why moving elements between blocks may change the result of the body's shared atomic
    adds, or None. Moving an element moves its `+v` from one block's shared array to another's;
    that is invisible when the arrays are only ever summed into global memory: after a barrier
    each shared value is read at a block-independent address and only atomically added to a
    block-independent global address (or skipped when zero), so sum over blocks of each shared
    word, hence every global word, is unchanged (integer addition commutes, modulo 2^k)."""
    width = {type_bytes(a.type) for a in atomics if a.type}
    body = fn.body
    pos = {id(s): k for k, s in enumerate(body)}
    start, end = pos[id(r.start)], fn.labels()[r.exit_label]
    inside = {id(x) for x in r.body}

    def next_effect(seq) -> Instruction | None:
        for s in seq:
            if isinstance(s, Label):
                return None
            if (
                isinstance(s, Instruction)
                and s.opcode not in _PURE
                and not (s.opcode == "ld" and s.space == ".param")
            ):
                return s
        return None

    after = next_effect(body[end + 1 :])
    before = next_effect(reversed(body[:start]))
    for where, ins in (("after", after), ("before", before)):
        if ins is None or ins.opcode not in ("bar", "barrier") or ins.guard:
            return f"no barrier right {where} the loop"
    blockfree = f.uniform(allow_ctaid=False, allow_tid=True)
    zero_tests = {
        d
        for x in f.instrs
        if x.opcode == "ld" and x.space == ".shared"
        for u in f.uses.get(x.dests[0] if x.dests else "", [])
        if u.opcode == "setp"
        for d in u.dests
    }
    for k in range(end + 1, len(body)):
        x = body[k]
        if isinstance(x, Instruction) and x.guard and x.opcode in ("bra", "ret", "exit"):
            pred = x.guard.lstrip("@!")
            if pred not in blockfree and pred not in zero_tests:
                return f"{x.mnemonic} after the loop depends on the block ({pred})"
    for k, s in enumerate(body):
        if not isinstance(s, Instruction) or id(s) in inside:
            continue
        if s.opcode in _MEMORY and s.space is None:
            return f"{s.mnemonic} (a generic address) may reach the shared bins"
        if s.space != ".shared":
            continue
        if start <= k <= end:
            return f"{s.mnemonic} lies between the entry guard and the loop"
        if s.opcode == "st" and k < start:
            continue  # initialisation: the same in whichever blocks the elements go to
        if s.opcode != "ld" or k < start or len(s.dests) != 1:
            return f"shared memory is also accessed by {s.mnemonic}"
        if any(x not in blockfree for x in s.registers_read()):
            return f"{s.mnemonic} reads shared memory at a block-dependent address"
        if type_bytes(s.type or ".b64") not in width:
            return f"{s.mnemonic} reads another width than the atomics add"
        why = _only_summed(fn, f, s.dests[0], blockfree, pos, type_bytes(s.type or ".b64"))
        if why:
            return why
    return None


def _only_summed(
    fn: Function, f: _Facts, val: str, blockfree: set[str], pos: dict, width: int
) -> str | None:
    """None when every use of `val` adds it atomically to global memory at a block-independent
    address (result unused), or is `setp.eq p, val, 0` whose only use skips such adds."""
    for u in f.uses.get(val, []):
        ops = [o.strip() for o in u.operands]
        if u.opcode in ("atom", "red") and u.space == ".global" and ".add" in u.modifiers:
            value = ops[2] if u.opcode == "atom" else ops[1]
            adr = u.address()
            if (
                value != val
                or u.guard
                or (u.opcode == "atom" and f.uses.get(u.dests[0]))
                or u.type not in (".u32", ".s32", ".u64")
                or type_bytes(u.type) != width
                or adr is None
                or any(x not in blockfree for x in u.registers_read() if x != val)
            ):
                return f"{u.mnemonic} does not add the shared value at a block-free address"
            continue
        if u.opcode == "setp" and u.modifiers[0] in (".eq", ".ne") and ops[1:] == [val, "0"]:
            pred = u.dests[0]
            for b in f.uses.get(pred, []):
                skip_if = "@" if u.modifiers[0] == ".eq" else "@!"
                if b.opcode != "bra" or b.guard != skip_if + pred:
                    return f"{pred} (shared value is zero) is used by {b.mnemonic}"
                lo, hi = pos[id(b)], fn.labels().get(b.operands[0].strip(), -1)
                if hi < lo:
                    return "the zero test branches backwards"
                skipped = fn.body[lo + 1 : hi]
                inside = {id(x) for x in skipped}
                for s in skipped:
                    if isinstance(s, Label):
                        return "the code skipped on zero has a label"
                    for d in s.dests if isinstance(s, Instruction) else ():
                        if any(id(x) not in inside for x in f.uses.get(d, [])):
                            return f"{d}, set only when the shared value is non-zero, is used later"
                    if (
                        isinstance(s, Instruction)
                        and s.opcode not in _PURE
                        and not (s.opcode in ("atom", "red") and val in s.registers_read())
                    ):
                        return f"the code skipped on zero has {s.mnemonic}"
            continue
        return f"the shared value {val} feeds {u.mnemonic}, not only a global atomic add"
    return None


def _param_of(f: _Facts, base: str) -> str | None:
    """The pointer parameter `base` is: `cvta.to.global.u64 base, P` with `ld.param.u64 P`."""
    d = f.only_def(base)
    if d is None or d.mnemonic != "cvta.to.global.u64" or d.guard:
        return None
    p = f.only_def(d.operands[1].strip())
    if p is None or p.mnemonic not in ("ld.param.u64", "ld.param.b64") or p.guard:
        return None
    adr = p.address()
    if adr is None or adr.offset != 0 or adr.base not in f.params:
        return None
    return adr.base


class _Regs:
    """Fresh registers, declared at the end."""

    def __init__(self, f: _Facts, tag: str):
        self.f, self.tag = f, tag
        self.count: dict[str, int] = {}

    def new(self, rtype: str) -> str:
        key = rtype.strip(".").translate(str.maketrans("0123456789", "abcdefghij"))
        n = self.count.get(rtype, 0)
        self.count[rtype] = n + 1
        return f"%{self.tag}{key}{n}"

    def decls(self) -> list[str]:
        out = []
        for rtype, n in sorted(self.count.items()):
            key = rtype.strip(".").translate(str.maketrans("0123456789", "abcdefghij"))
            out.append(f".reg {rtype} \t%{self.tag}{key}<{n}>;")
        return out


def _with_mods(ins: Instruction, mods: list[str]) -> str:
    return ins.opcode + "".join(mods)


def _braced(regs: list[str]) -> str:
    """One register, or a `{a, b, ...}` vector of them."""
    return regs[0] if len(regs) == 1 else "{" + ", ".join(regs) + "}"


def _vector_mnemonic(ins: Instruction, w: int, e: int) -> str:
    """`ins` as one access of w e-byte elements: `.v{w}` of its type, or for elements under
    4 bytes the same bytes as (a vector of) .b32 words."""
    mods = list(ins.modifiers)
    ti = mods.index(ins.type)
    if e >= 4:
        mods.insert(ti, f".v{w}")
    else:
        nw = w * e // 4
        mods[ti] = ".b32"
        if nw > 1:
            mods.insert(ti, f".v{nw}")
    return _with_mods(ins, mods)


def _vector_load(
    ins: Instruction, a: str, e: int, dl: list[str], dt: str, regs: _Regs, opcode: str
) -> list[str]:
    """The w loads of `ins` at address a into dl: one vector load when widening loads (words
    unpacked for elements under 4 bytes), else w scalar loads."""
    w = len(dl)
    if opcode != "ld":
        return [f"{ins.mnemonic} \t{dl[c]}, [{a}+{c * e}];" for c in range(w)]
    if e >= 4:
        return [f"{_vector_mnemonic(ins, w, e)} \t{_braced(dl)}, [{a}];"]
    wl = [regs.new(".b32") for _ in range(w * e // 4)]
    out = [f"{_vector_mnemonic(ins, w, e)} \t{_braced(wl)}, [{a}];"]
    per = 4 // e
    for j, word in enumerate(wl):
        parts = dl[j * per : (j + 1) * per]
        if e == 2:
            out.append(f"mov.b32 \t{{{', '.join(parts)}}}, {word};")
            continue
        bfe = "bfe.s32" if ins.type == ".s8" else "bfe.u32"
        for b, dst1 in enumerate(parts):
            t = regs.new(".b32")
            out.append(f"{bfe} \t{t}, {word}, {8 * b}, 8;")
            cv = "cvt.u16.u32" if type_bytes(dt) == 2 else "mov.b32"
            out.append(f"{cv} \t{dst1}, {t};")
    return out


def _vector_store(
    ins: Instruction, a: str, e: int, vl: list[str], regs: _Regs, opcode: str
) -> list[str]:
    """The w stores of vl by `ins` at address a: one vector store when widening stores
    (16-bit pairs packed into words), else w scalar stores."""
    w = len(vl)
    if opcode != "st":
        return [f"{ins.mnemonic} \t[{a}+{c * e}], {vl[c]};" for c in range(w)]
    if e >= 4:
        return [f"{_vector_mnemonic(ins, w, e)} \t[{a}], {_braced(vl)};"]
    wl = [regs.new(".b32") for _ in range(w * e // 4)]
    out = [f"mov.b32 \t{word}, {{{vl[2 * j]}, {vl[2 * j + 1]}}};" for j, word in enumerate(wl)]
    out.append(f"{_vector_mnemonic(ins, w, e)} \t[{a}], {_braced(wl)};")
    return out


def _vector_body(p: Plan, f: _Facts, regs: _Regs, g: str, opcode: str) -> list[str]:
    r, w = p.region, p.width
    ren: list[dict[str, str]] = [{} for _ in range(w)]
    voff: dict[str, str] = {}
    vaddr: dict[str, str] = {}
    out: list[str] = []

    def sub(text: str, k: int) -> str:
        return _TOKEN.sub(lambda m: ren[k].get(m.group(0), m.group(0)), text)

    for k, ins in enumerate(r.body):
        role = p.roles[k]
        if role[0] == "off":
            voff[role[1]] = regs.new(".b64")
            out.append(f"mul.wide.s32 \t{voff[role[1]]}, {g}, {w * role[2]};")
        elif role[0] == "addr":
            vaddr[role[1]] = regs.new(".b64")
            off = next(x for x in ins.registers_read() if x in voff)
            out.append(f"add.s64 \t{vaddr[role[1]]}, {role[2]}, {voff[off]};")
        elif role[0] == "ld":
            d = role[3]
            dt = f.reg_type(d) or ".b32"
            for c in range(w):
                ren[c][d] = regs.new(dt)
            dl = [ren[c][d] for c in range(w)]
            out += _vector_load(ins, vaddr[role[1]], role[2], dl, dt, regs, opcode)
        elif role[0] == "st":
            vl = [ren[c].get(role[3], role[3]) for c in range(w)]
            out += _vector_store(ins, vaddr[role[1]], role[2], vl, regs, opcode)
        else:
            varying = any(x == r.i or any(x in m for m in ren) for x in ins.registers_read())
            varying = varying or ins.opcode in ("atom", "red")
            if not varying:
                out.append(ins.render())
                continue
            for c in range(w):
                for d in ins.dests:
                    ren[c][d] = regs.new(f.reg_type(d) or ".b32")
                ops = tuple(sub(o, c) for o in ins.operands)
                guard = sub(ins.guard, c) if ins.guard else None
                out.append(ins.with_(operands=ops, guard=guard).render())
    return out


def _no_tail(f: _Facts, r: Region, ctx: TransformContext, w: int) -> bool:
    """The contract proves the element count is a multiple of w: no scalar tail. The count is
    n (a scalar parameter with spec.divisibility), or for guarded code min(n, threads), where
    every launch block's x extent must divide by w too."""
    d = f.only_def(r.n)
    if d is None or d.opcode != "ld" or d.space != ".param" or d.guard:
        return False
    adr = d.address()
    if adr is None or adr.offset != 0 or ctx.divisor_of(adr.base) % w:
        return False
    if r.kind == "guard":
        return bool(ctx.blocks) and all(b[0] % w == 0 for b in ctx.blocks)
    return True


def _plans(
    fn: Function, f: _Facts, ctx: TransformContext, opcode: str
) -> tuple[list[Plan], list[str]]:
    """A Plan for every legal region, and why each other candidate is not legal."""
    regions, why = find_regions(fn, f)
    plans: list[Plan] = []
    for r in regions:
        try:
            plans.append(plan(fn, f, r, ctx, opcode))
        except NotApplicable as exc:
            why.append(str(exc))
    return plans, why


def _fresh_tag(module: Module, fn: Function) -> str:
    """A prefix no register or label of the module starts with."""
    tag = "cv"
    while any(d.name.startswith(f"%{tag}") for d in fn.reg_decls()) or f"$L__{tag}" in module.text:
        tag += "x"
    return tag


def _guard_bound(r: Region, regs: _Regs) -> tuple[list[str], str]:
    """Code computing min(n, ntid.x*nctaid.x), the element count of guarded code, and its
    register."""
    a, b, t64, n64, m64, bound = (
        regs.new(".b32"),
        regs.new(".b32"),
        regs.new(".b64"),
        regs.new(".b64"),
        regs.new(".b64"),
        regs.new(".b32"),
    )
    lines = [
        f"mov.u32 \t{a}, %ntid.x;",
        f"mov.u32 \t{b}, %nctaid.x;",
        f"mul.wide.u32 \t{t64}, {a}, {b};",
        f"cvt.s64.s32 \t{n64}, {r.n};",
        f"min.s64 \t{m64}, {n64}, {t64};",
        f"cvt.u32.u64 \t{bound}, {m64};",
    ]
    return lines, bound


def _regrouped(
    p: Plan, f: _Facts, ctx: TransformContext, regs: _Regs, labels: str, opcode: str
) -> list[str]:
    """The vector groups then the scalar tail's start, inserted ahead of the region; labels
    is the prefix of its labels."""
    r, w = p.region, p.width
    lg = w.bit_length() - 1
    g, ng, e, q = regs.new(".b32"), regs.new(".b32"), regs.new(".b32"), regs.new(".pred")
    vec, tail = f"{labels}_vec", f"{labels}_tail"
    lines: list[str] = []
    if r.kind == "loop":
        bound, stride = r.n, r.stride
    else:
        lines, bound = _guard_bound(r, regs)
        stride = None
    lines += [
        f"shr.s32 \t{ng}, {bound}, {lg};",
        f"setp.ge.s32 \t{q}, {r.i}, {ng};",
        f"@{q} bra \t{tail};",
        f"mov.b32 \t{g}, {r.i};",
    ]
    if stride is not None:
        lines.append(f"{vec}:")
    lines += _vector_body(p, f, regs, g, opcode)
    if stride is not None:
        lines += [
            f"add.s32 \t{g}, {g}, {stride};",
            f"setp.lt.s32 \t{q}, {g}, {ng};",
            f"@{q} bra \t{vec};",
        ]
    if _no_tail(f, r, ctx, w):
        lines += [f"{tail}:", f"bra.uni \t{r.exit_label};"]
    else:
        lines += [
            f"{tail}:",
            f"shl.b32 \t{e}, {ng}, {lg};",
            f"add.s32 \t{r.i}, {r.i}, {e};",
            f"setp.ge.s32 \t{q}, {r.i}, {bound};",
            f"@{q} bra \t{r.exit_label};",
        ]
    return lines


def rewrite_loops(module: Module, fn: Function, ctx: TransformContext, opcode: str) -> str:
    """The PTX with every legal element loop regrouped, or NotApplicable naming why not."""
    f = _Facts(fn)
    plans, why = _plans(fn, f, ctx, opcode)
    if not plans:
        if not why:
            why.append(
                "no grid-stride loop or `i < n`-guarded element code indexed by the global "
                "thread index"
            )
        raise NotApplicable("; ".join(why))
    tag = _fresh_tag(module, fn)
    regs = _Regs(f, tag)
    ed = module.edit()
    for n, p in enumerate(plans):
        lines = _regrouped(p, f, ctx, regs, f"$L__{tag}{n}", opcode)
        if p.region.kind == "loop":
            ed.insert_before(p.region.anchor, lines, indent="\t")  # type: ignore[arg-type]
        else:
            ed.insert_after(p.region.anchor, lines, indent="\t")  # type: ignore[arg-type]
    last_reg = [s for s in fn.body if isinstance(s, Directive) and s.name == ".reg"]
    if not last_reg:
        raise NotApplicable("the kernel declares no registers")
    ed.insert_after(last_reg[-1], regs.decls(), indent="\t")
    return ed.text()
