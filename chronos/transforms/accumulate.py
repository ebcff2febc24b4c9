"""ILP: split a loop's floating-point accumulation chain into two independent chains.

`acc += x_i` in a loop is one dependent chain: every add waits for the previous one (4 cycles
of FADD latency each on sm_80), which ptxas must keep because float addition is not
associative. Alternating the chain's adds between `acc` and a second register `acc2`
(initialised to -0.0, the exact additive identity) halves the chain, and every exit of the
loop folds `acc += acc2; acc2 = -0.0` back. Reassociation changes rounding, so the action is
of the rounding-changing class and masked when spec.tolerance is zero (the reduce family's
dyadic inputs make it exact there anyway).

Legality from the PTX alone: the loop is a contiguous block range [h, t] with a back edge
t -> h and no entry other than h; inside it the accumulator is written only by unguarded
`add.f32 a, a, x` / `add.f32 a, x, a` / `fma.rn.f32 a, x, y, a` (x, y != a) and read only by
those, so its intermediate values are unobservable. acc2 is -0.0 everywhere outside the loop
(set at entry, reset at every exit), so the fold at an exit block other paths also reach adds
-0.0 there: a no-op.
"""

from __future__ import annotations

from collections import defaultdict

from chronos.ptx import BasicBlock, Directive, Function, Instruction, Module

from .base import NotApplicable, Transform, TransformContext

_NEG_ZERO = "0f80000000"
_PREFIX = "%chr_acc"


_ADD_FORMS = frozenset({(".f32",), (".rn", ".f32"), (".ftz", ".f32"), (".rn", ".ftz", ".f32")})
_FMA_FORMS = frozenset({(".rn", ".f32"), (".rn", ".ftz", ".f32")})


def _chain_role(ins: Instruction) -> str | None:
    """The accumulator an instruction advances (`a` in `add.f32 a, a, x`), if it is one."""
    if ins.guard is not None or len(ins.operands) < 3:
        return None
    d, *srcs = (o.strip() for o in ins.operands)
    if ins.opcode == "add" and ins.modifiers in _ADD_FORMS and len(srcs) == 2:
        return d if srcs.count(d) == 1 else None
    if ins.opcode == "fma" and ins.modifiers in _FMA_FORMS and len(srcs) == 3:
        return d if srcs[2] == d and d not in srcs[:2] else None
    return None


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


class SplitAccumulator(Transform):
    name = "split_acc"
    group = "ILP"
    exact = False
    summary = "split loop accumulation chains (acc += x) into two interleaved chains"
    safety = (
        "accumulator written and read only by its chain inside a single-entry loop; "
        "rounding-changing (reassociation), only when spec.tolerance > 0"
    )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        blocks = fn.basic_blocks()
        plans = []
        claimed: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for h, t in sorted(loops(blocks), key=lambda ht: ht[1] - ht[0]):
            body = [ins for b in blocks[h : t + 1] for ins in b.instructions]
            chains: dict[str, list[Instruction]] = defaultdict(list)
            for ins in body:
                a = _chain_role(ins)
                if a is not None:
                    chains[a].append(ins)
            exits = sorted({s for b in blocks[h : t + 1] for s in b.successors if not h <= s <= t})
            if not exits or any(not blocks[s].instructions for s in exits):
                continue
            for a, members in chains.items():
                if len(members) < 2 or any(h <= t2 and h2 <= t for h2, t2 in claimed[a]):
                    continue  # an enclosing or enclosed loop already splits this chain
                ids = {id(m) for m in members}
                reads = sum(
                    1 for ins in body for r in ins.registers_read() if r == a and id(ins) not in ids
                )
                writes = sum(1 for ins in body if a in ins.dests and id(ins) not in ids)
                if reads or writes or any(m.registers_read().count(a) != 1 for m in members):
                    continue
                claimed[a].append((h, t))
                plans.append((a, members, [blocks[s].instructions[0] for s in exits]))
        if not plans:
            raise NotApplicable(
                f"{self.name}: no loop with an f32 add/fma chain whose accumulator is "
                "private to the chain"
            )
        regs = fn.reg_decls()
        names = {n for d in regs for n in d.names()}
        if any(n.startswith(_PREFIX) for n in names):
            raise NotApplicable(f"{self.name}: already split")
        ed = module.edit()
        last_reg = [s for s in fn.body if isinstance(s, Directive) and s.name == ".reg"][-1]
        ed.insert_after(last_reg, [f".reg .f32 \t{_PREFIX}<{len(plans)}>;"])
        first = fn.instructions()[0]
        init = [f"mov.f32 \t{_PREFIX}{k}, {_NEG_ZERO};" for k in range(len(plans))]
        ed.insert_before(first, init)
        folds: dict[int, tuple[Instruction, list[str]]] = {}
        for k, (a, members, exit_heads) in enumerate(plans):
            b = f"{_PREFIX}{k}"
            for m in members[1::2]:
                ops = [b if o.strip() == a else o for o in m.operands]
                ed.replace(m, m.with_(operands=tuple(ops)).render())
            for head in exit_heads:
                key = head.span.start
                folds.setdefault(key, (head, []))[1].extend(
                    [f"add.f32 \t{a}, {a}, {b};", f"mov.f32 \t{b}, {_NEG_ZERO};"]
                )
        for head, lines in folds.values():
            ed.insert_before(head, lines)
        return ed.text()


TRANSFORMS = [SplitAccumulator()]
