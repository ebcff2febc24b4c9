"""ILP: split a loop-carried reduction into two independent accumulators.

`acc = acc (+) x_i` in a loop is one dependent chain: every link waits for the previous one
(4 cycles of FADD latency each on sm_80), which ptxas must keep because float addition is not
associative. Alternating the chain's links between `acc` and a second register `acc2`
(initialised to the operation's identity) halves the chain, and every exit of the loop folds
`acc = acc (+) acc2; acc2 = identity` back.

Chains recognised, in a single-entry loop (a contiguous block range [h, t] with a back edge
t -> h and no entry other than h):

* the operation: float `add`/`fma` into the accumulator (f32 or f64, round-to-nearest,
  optionally `.ftz`), integer `add` (32/64-bit, no `.sat`/`.cc`), and `min`/`max` (float
  without `.NaN`/`.abs`, or integer); the identities are -0.0, 0, NaN (a NaN operand of
  min/max yields the other one) and the integer extremes;
* the shape: links in place (`add a, a, x`, spread over the loop's blocks), or threaded
  through single-use temporaries inside one block as nvcc's unrolled loops are
  (`fma t1, x, y, a; fma t2, u, v, t1; ...; fma a, p, q, t3`): the temporaries are dropped
  and every link becomes an in-place link of `a` or of `acc2`;
* one link per iteration (a plain grid-stride or dot-product loop): a loop that is one block
  ending in its conditional back branch is unrolled by two, the first copy leaving through a
  new exit label when the loop condition fails, the second copy advancing `acc2`; any trip
  count, odd or even, runs every original iteration in order.

Legality from the PTX alone: the accumulator (and every temporary) is written and read in the
loop only by its chain, links are unguarded, temporaries are read once in the whole function,
so intermediate values are unobservable and `acc (+) acc2` at an exit is the whole
reduction. acc2 holds the identity everywhere outside the loop (set at entry, reset at every
exit), so the fold on paths that skip the loop is a no-op.

Exactness: integer add (mod 2^n) and min/max (a total order, -0 < +0, NaN as identity) are
associative and commutative, so splitting them is bit-exact and is offered even when the
spec's tolerance is 0. Float sums reassociate: any summation order of n terms is within
(n-1) * u * sum|x_i| of the exact sum to first order (u = 2^-24 for f32, 2^-53 for f64), so
the split and the sequential sum differ by at most about 2 (n-1) * u * sum|x_i|; such chains
are split only when spec.tolerance > 0 (the class stays `exact = False`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from chronos.ptx import BasicBlock, Directive, Function, Instruction, Module

from .base import NotApplicable, Transform, TransformContext, TransformResult

_PREFIX = "%chr_acc"
_ENOUGH = 4
"""A loop with this many independent chains (a register tile: gemm) has ILP enough."""
_EXIT = "$L__chr_acc"

_FLOAT = (".f32", ".f64")
_INT = (".s32", ".u32", ".s64", ".u64")
_REG_TYPE = {".f32": ".f32", ".f64": ".f64", ".s32": ".b32", ".u32": ".b32"}
_REG_TYPE |= {".s64": ".b64", ".u64": ".b64"}


@dataclass(frozen=True)
class Link:
    """One link of a chain: `dest = op(chain input, other operands)`."""

    ins: Instruction
    op: str  # "fsum", "isum", "max", "min"
    type: str
    dest: str
    chain: int  # index of the chain-input operand in ins.operands


def _link(ins: Instruction) -> Link | None:
    """The chain link an instruction could be, if it is one (unguarded, exact form)."""
    if ins.guard is not None or len(ins.operands) < 3:
        return None
    ops = [o.strip() for o in ins.operands]
    d, srcs = ops[0], ops[1:]
    if not d.startswith("%"):
        return None
    t = ins.type
    mods = set(ins.modifiers) - {t}
    if ins.opcode == "fma" and t in _FLOAT and len(srcs) == 3 and mods <= {".rn", ".ftz"}:
        if ".rn" in mods and (t == ".f32" or ".ftz" not in mods):
            c = srcs[2]
            if c.startswith("%") and c not in srcs[:2]:
                return Link(ins, "fsum", t, d, 3)
        return None
    if len(srcs) != 2 or srcs[0] == srcs[1]:
        return None
    if ins.opcode == "add" and t in _FLOAT and mods <= {".rn", ".ftz"}:
        if t == ".f64" and ".ftz" in mods:
            return None
        op = "fsum"
    elif ins.opcode == "add" and t in _INT and not mods:
        op = "isum"
    elif ins.opcode in ("max", "min") and t in _FLOAT and mods <= {".ftz"}:
        if t == ".f64" and mods:
            return None
        op = ins.opcode
    elif ins.opcode in ("max", "min") and t in _INT and not mods:
        op = ins.opcode
    else:
        return None
    return Link(ins, op, t, d, 0)  # chain input chosen per accumulator (either source)


def _identity(op: str, t: str) -> str:
    if op == "fsum":
        return "0f80000000" if t == ".f32" else "0d8000000000000000"  # -0.0
    if op == "isum":
        return "0"
    if t in _FLOAT:  # a NaN operand of min/max yields the other one
        return "0f7FFFFFFF" if t == ".f32" else "0d7FFFFFFFFFFFFFFF"
    bits = 32 if t.endswith("32") else 64
    signed = t.startswith(".s")
    if op == "max":
        v = 1 << (bits - 1) if signed else 0
    else:
        v = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return hex(v)


def _is_exact(op: str) -> bool:
    return op != "fsum"


def _mov(reg: str, op: str, t: str) -> str:
    mt = t if t in _FLOAT else _REG_TYPE[t]
    return f"mov{mt} \t{reg}, {_identity(op, t)};"


def _fold(a: str, b: str, link: Link) -> str:
    if link.op == "fsum":
        ftz = ".ftz" if ".ftz" in link.ins.modifiers else ""
        return f"add{ftz}{link.type} \t{a}, {a}, {b};"
    if link.op == "isum":
        return f"add{link.type} \t{a}, {a}, {b};"
    return f"{link.ins.mnemonic} \t{a}, {a}, {b};"


def _in_place(link: Link, src: str, reg: str) -> str:
    """The link rewritten to advance `reg` in place (its chain input `src` -> reg)."""
    ops = [o.strip() for o in link.ins.operands]
    ops[0] = reg
    idx = link.chain if link.op == "fsum" and link.ins.opcode == "fma" else ops.index(src, 1)
    ops[idx] = reg
    return link.ins.with_(operands=tuple(ops)).render()


def loops(blocks: list[BasicBlock]) -> list[tuple[int, int]]:
    """(header, latch) of single-entry loops laid out as contiguous block ranges."""
    out = []
    for t, b in enumerate(blocks):
        for h in b.successors:
            if h > t:
                continue
            body = range(h, t + 1)
            entered = any(
                s in body and s != h
                for k, blk in enumerate(blocks)
                if k not in body
                for s in blk.successors
            )
            if not entered:
                out.append((h, t))
    return out


@dataclass
class _Plan:
    acc: str
    links: list[tuple[Link, str]]  # (link, its chain input register)
    unroll: bool
    h: int
    t: int
    exits: list[int]


def _reads(fn_ins: list[Instruction]) -> dict[str, int]:
    n: dict[str, int] = defaultdict(int)
    for ins in fn_ins:
        for r in ins.registers_read():
            n[r] += 1
    return n


def _writes(fn_ins: list[Instruction]) -> dict[str, int]:
    n: dict[str, int] = defaultdict(int)
    for ins in fn_ins:
        for r in ins.dests:
            n[r] += 1
    return n


def _carried(body: list[Instruction]) -> list[str]:
    """Registers a link writes that the loop reads before writing them: loop-carried values."""
    dests = {lk.dest for lk in map(_link, body) if lk is not None}
    seen: set[str] = set()
    out: list[str] = []
    for ins in body:
        for r in ins.registers_read():
            if r not in seen and r in dests and r not in out:
                out.append(r)
        seen.update(ins.registers_read())
        seen.update(ins.dests)
    return out


def _integer(acc: str, body: list[Instruction]) -> bool:
    """Is `acc` advanced by integer adds (an index or pointer, when it fails the chain test)?"""
    return any(lk.dest == acc and lk.op == "isum" for lk in map(_link, body) if lk is not None)


def _counter(lk: Link) -> bool:
    """An integer link whose other operand is a constant (a loop counter, not a reduction)."""
    other = [o.strip() for i, o in enumerate(lk.ins.operands[1:], 1) if o.strip() != lk.dest]
    return all(not o.startswith("%") for o in other)


def _chain(
    acc: str, blocks: list[BasicBlock], h: int, t: int, freads: dict[str, int]
) -> tuple[list[tuple[Link, str]] | None, str]:
    """The links of `acc`'s chain in loop [h, t], or None and the unmet condition."""
    links: list[tuple[Link, str]] = []
    kinds: set[tuple[str, str]] = set()
    for bi in range(h, t + 1):
        cur = acc
        temps: list[str] = []
        for ins in blocks[bi].instructions:
            if ins.opcode == "call":  # its return registers are not listed as dests
                return None, "the loop calls a function"
            lk = _link(ins)
            srcs = [o.strip() for o in ins.operands[1:]]
            fed = lk is not None and (
                srcs[lk.chain - 1] == cur
                if lk.chain
                else srcs.count(cur) == 1 and ins.registers_read().count(cur) == 1
            )
            if lk is not None and fed and ins.registers_read().count(cur) == 1:
                if lk.dest != acc and (lk.dest in temps or freads.get(lk.dest, 0) != 1):
                    return None, f"partial {lk.dest} of {acc} is read outside its chain"
                links.append((lk, cur))
                kinds.add((lk.op, lk.type))
                cur = lk.dest
                if cur != acc:
                    temps.append(cur)
                continue
            if cur in ins.registers_read() or acc in ins.registers_read():
                return None, f"{acc} is read in the loop outside its chain ({ins.mnemonic})"
            if acc in ins.dests or cur in ins.dests:
                return None, f"{acc} is written in the loop outside its chain ({ins.mnemonic})"
        if cur != acc:
            return None, f"{acc}'s chain ends in a partial {cur} at a block end"
    if not links:
        return None, f"{acc} is not advanced in the loop"
    if len(kinds) != 1:
        return None, f"{acc} mixes operations {sorted(kinds)}"
    return links, ""


class SplitAccumulator(Transform):
    name = "split_acc"
    group = "ILP"
    exact = False
    summary = "split loop-carried reductions (sum, dot product, min/max) into two chains"
    safety = (
        "accumulator and its partials written and read only by the chain inside a "
        "single-entry loop; float sums only when spec.tolerance > 0 (reassociation), "
        "integer sums and min/max always (exact)"
    )

    def run(self, module: Module, ctx: TransformContext) -> TransformResult:
        if any(ctx.tolerance):
            return super().run(module, ctx)
        # bit-exact contract: only the exact chains (integer sums, min/max) may be split
        try:
            fn = module.entry(ctx.entry)
        except (KeyError, ValueError) as exc:
            return TransformResult(module.text, False, f"no entry: {exc}")
        try:
            text = self._rewrite(module, fn, exact_only=True)
        except NotApplicable as exc:
            return TransformResult(
                module.text,
                False,
                f"{self.name}: changes rounding but spec.tolerance is 0 (the kernel must stay "
                f"bit-exact) and {str(exc).removeprefix(self.name + ': ')}",
            )
        return TransformResult(text, True, f"{self.name}: {self.summary}")

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        return self._rewrite(module, fn, exact_only=False)

    def _plans(self, fn: Function, exact_only: bool) -> tuple[list[_Plan], list[str]]:
        blocks = fn.basic_blocks()
        fins = fn.instructions()
        freads = _reads(fins)
        plans: list[_Plan] = []
        why: list[str] = []
        claimed: dict[str, list[tuple[int, int]]] = defaultdict(list)
        found = loops(blocks)
        if not found:
            return [], ["no single-entry loop"]
        if any(0 in b.successors for b in blocks):
            return [], ["the entry block is a branch target (no place to initialise)"]
        for h, t in sorted(found, key=lambda ht: ht[1] - ht[0]):
            where = f"loop {blocks[h].label or h}"
            body = [ins for b in blocks[h : t + 1] for ins in b.instructions]
            cands = _carried(body)
            if not cands:
                why.append(f"{where}: no add/fma/min/max accumulating into a loop-carried register")
                continue
            exits = sorted({s for b in blocks[h : t + 1] for s in b.successors if not h <= s <= t})
            if not exits or any(not blocks[s].instructions for s in exits):
                why.append(f"{where}: no exit block to fold the partials in")
                continue
            here: list[_Plan] = []
            loop_why: list[str] = []
            for acc in cands:
                if any(h <= t2 and h2 <= t for h2, t2 in claimed[acc]):
                    continue  # an enclosing or enclosed loop already splits this chain
                links, reason = _chain(acc, blocks, h, t, freads)
                if links is None:
                    if not _integer(acc, body):  # integer registers read in the loop are
                        loop_why.append(f"{where}: {reason}")  # indices, not reductions
                    continue
                if links[0][0].op == "isum" and all(_counter(lk) for lk, _ in links):
                    continue  # a trip counter, not a reduction
                op = links[0][0].op
                if exact_only and not _is_exact(op):
                    loop_why.append(
                        f"{where}: {acc} is a float sum (reassociation changes rounding)"
                    )
                    continue
                unroll = len(links) == 1
                if unroll:
                    cond = self._unrollable(fn, blocks, h, t)
                    if cond:
                        loop_why.append(f"{where}: one link of {acc} per iteration and {cond}")
                        continue
                claimed[acc].append((h, t))
                here.append(_Plan(acc, links, unroll, h, t, exits))
            if not here and not loop_why:
                loop_why.append(f"{where}: no accumulator read only by its chain (only indices)")
            why.extend(loop_why)
            if len(here) >= _ENOUGH:
                why.append(
                    f"{where}: {len(here)} independent accumulators already (enough ILP; "
                    "splitting would only add registers)"
                )
                for p in here:
                    claimed[p.acc].remove((h, t))
                continue
            if any(not p.unroll for p in here) and any(p.unroll for p in here):
                for p in here:
                    if p.unroll:
                        why.append(f"{where}: {p.acc} left whole (another chain is split in place)")
                        claimed[p.acc].remove((h, t))
                here = [p for p in here if not p.unroll]
            plans.extend(here)
        return plans, why

    @staticmethod
    def _unrollable(fn: Function, blocks: list[BasicBlock], h: int, t: int) -> str:
        """Why a one-link loop cannot be unrolled by two ('' when it can)."""
        if h != t:
            return "the loop body is more than one block (not unrolled)"
        last = blocks[t].instructions[-1]
        if last.opcode != "bra" or last.guard is None or last.operands[:1] != (blocks[h].label,):
            return "the loop does not end in a conditional back branch"
        if t + 1 >= len(blocks):
            return "the loop has no fall-through exit"
        if any(i.opcode in ("bar", "barrier") for i in blocks[t].instructions):
            return "the loop body has a barrier (not unrolled)"
        start = fn.labels()[blocks[h].label]
        for st in fn.body[start:]:
            if st is last:
                break
            if isinstance(st, Directive) and st.name == ".pragma" and "nounroll" in st.text:
                return 'the loop carries .pragma "nounroll"'
        return ""

    def _rewrite(self, module: Module, fn: Function, exact_only: bool) -> str:
        plans, why = self._plans(fn, exact_only)
        if not plans:
            uniq = list(dict.fromkeys(why)) or ["no loop-carried accumulation"]
            more = f" (+{len(uniq) - 3} more)" if len(uniq) > 3 else ""
            reason = "; ".join(uniq[:3]) + more
            raise NotApplicable(f"{self.name}: {reason}")
        names = {n for d in fn.reg_decls() for n in d.names()}
        if any(n.startswith(_PREFIX) for n in names):
            raise NotApplicable(f"{self.name}: already split")
        blocks = fn.basic_blocks()
        ed = module.edit()
        last_reg = [s for s in fn.body if isinstance(s, Directive) and s.name == ".reg"][-1]
        decls, init = [], []
        for k, p in enumerate(plans):
            lk = p.links[0][0]
            decls.append(f".reg {_REG_TYPE[lk.type]} \t{_PREFIX}{k};")
            init.append(_mov(f"{_PREFIX}{k}", lk.op, lk.type))
        ed.insert_after(last_reg, decls)
        ed.insert_before(fn.instructions()[0], init)
        folds: dict[int, tuple[Instruction, list[str]]] = {}
        unrolled: dict[int, dict[int, str]] = {}
        for k, p in enumerate(plans):
            a, b = p.acc, f"{_PREFIX}{k}"
            lk0 = p.links[0][0]
            if p.unroll:
                if p.h not in unrolled:
                    unrolled[p.h] = {}
                unrolled[p.h][id(p.links[0][0].ins)] = _in_place(p.links[0][0], p.links[0][1], b)
            else:
                for i, (lk, src) in enumerate(p.links):
                    reg = b if i % 2 else a
                    if reg == a and lk.dest == a and src == a:
                        continue  # already an in-place link of a
                    ed.replace(lk.ins, _in_place(lk, src, reg))
            for s in p.exits:
                head = blocks[s].instructions[0]
                folds.setdefault(head.span.start, (head, []))[1].extend(
                    [_fold(a, b, lk0), _mov(b, lk0.op, lk0.type)]
                )
        for h, renamed in unrolled.items():
            blk = blocks[h].instructions
            back = blk[-1]
            g = back.guard or ""
            neg = "@" + g[2:] if g.startswith("@!") else "@!" + g[1:]
            label = f"{_EXIT}{h}_exit"
            copy = [renamed.get(id(ins), ins.render()) for ins in blk[:-1]]
            exit_bra = back.with_(guard=neg, operands=(label,)).render()
            ed.insert_before(back, [exit_bra, *copy])
            ed.insert_after(back, [f"{label}:"], indent="")
        for head, lines in folds.values():
            ed.insert_before(head, lines)
        return ed.text()


TRANSFORMS = [SplitAccumulator()]
