"""SCHED: reorder instructions inside fence-free runs of a basic block.

`reorder_cp` hoists the global loads of a global->shared copy run above its shared stores
(all loads in flight before the first store waits on one); `sink_st` sinks global stores
below the address arithmetic of an epilogue so the stores issue back to back. Both are a
stable list schedule over the dependence graph of `deps` (register dependences, aliasing
memory accesses, fences), so only orders that nothing can observe are produced; both are
idempotent because the schedule of an already-scheduled run is itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from chronos.ptx import Directive, Editor, Function, Instruction, Module, parse, parse_instruction

from .alignment import analyze
from .base import NotApplicable, Transform, TransformContext
from .deps import (
    PURE_OPCODES,
    Effect,
    block_effects,
    conflict,
    effects,
    is_global_load,
    segments,
)
from .predicate import if_convert


def list_schedule(seg: list[Effect], priority: Callable[[Effect], int]) -> list[Effect]:
    """Stable list schedule: among ready instructions take the lowest (priority, position)."""
    n = len(seg)
    preds = [0] * n
    succs: list[list[int]] = [[] for _ in range(n)]
    for j in range(n):
        for i in range(j):
            if conflict(seg[i], seg[j]):
                preds[j] += 1
                succs[i].append(j)
    ready = [i for i in range(n) if preds[i] == 0]
    out: list[Effect] = []
    while ready:
        best = min(ready, key=lambda i: (priority(seg[i]), i))
        ready.remove(best)
        out.append(seg[best])
        for j in succs[best]:
            preds[j] -= 1
            if preds[j] == 0:
                ready.append(j)
    assert len(out) == n
    return out


def _write_order(seg: list[Effect], order: list[Effect], ed: Editor) -> tuple[list[Effect], int]:
    """Rewrite the run `seg` in `order`: (the order, how many lines changed)."""
    changed = 0
    for old, new in zip(seg, order, strict=True):
        if old is not new:
            ed.replace(old.instr, new.instr.text)
            changed += 1
    return order, changed


class _Scheduler(Transform):
    exact = True
    group = "SCHED"

    def wants(self, seg: list[Effect]) -> bool:
        raise NotImplementedError

    def priority(self, e: Effect) -> int:
        raise NotImplementedError

    def _reschedule(self, seg: list[Effect], ed: Editor) -> tuple[list[Effect], int]:
        """Rewrite one run in list-schedule order: (the order, how many lines changed)."""
        return _write_order(seg, list_schedule(seg, self.priority), ed)

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        pa = analyze(module, fn, ctx)
        ed = module.edit()
        changed = 0
        for block in fn.basic_blocks():
            for seg in segments(block_effects(block, pa)):
                if len(seg) < 2 or not self.wants(seg):
                    continue
                changed += self._reschedule(seg, ed)[1]
        if not changed:
            raise NotApplicable(f"{self.name}: no run to reorder")
        return ed.text()


class ReorderCopy(_Scheduler):
    """Predicate bounds-checked load blocks, hoist global loads above the arithmetic and shared
    stores of their run, and above the loop's barrier.

    First the guarded blocks holding a global load are if-converted (`predicate.if_convert`),
    so the loads of a ragged copy or of an unrolled grid-stride loop share one block; then a
    list schedule puts every run's global loads first (all in flight before the first use).

    ptxas already hoists loads inside a block, but never across `bar.sync`. When the copy run
    opens a loop whose latch ends with `bar.sync` followed only by arithmetic and the back
    branch, the barrier moves from the latch to just before the run's first shared store:
    the next tile's global loads then issue before the CTA waits for the slowest warp. That
    is legal when the hoisted loads read only read-only buffers (no thread writes them before
    the barrier), nothing before the new barrier in the loop header touches shared memory,
    and nothing after the loop's exit touches shared memory (the last barrier is dropped).
    """

    name = "reorder_cp"
    summary = (
        "predicate bounds-checked load blocks; hoist global loads above arithmetic, shared "
        "stores and the loop barrier"
    )
    safety = (
        "list schedule over register and memory dependences; barrier motion only for "
        "read-only loads with no shared access between the old and the new barrier"
    )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        text = if_convert(module, fn, lambda b: any(is_global_load(x) for x in b))
        converted = text != module.text
        if converted:  # guarded loads are now predicated, in the block of their neighbours
            module = parse(text)
            fn = module.entry(fn.name)
        pa = analyze(module, fn, ctx)
        blocks = fn.basic_blocks()
        ed = module.edit()
        changed = 0
        moved = False
        touched: set[int] = set()
        for bi, block in enumerate(blocks):
            segs = segments(block_effects(block, pa))
            for si, seg in enumerate(segs):
                if len(seg) < 2 or not self.wants(seg):
                    continue
                order, n = self._reschedule(seg, ed)
                changed += n
                touched.add(bi)
                if moved or si != 0 or seg[0].index != 0:
                    continue
                latch_bar = _movable_latch_barrier(blocks, bi, order, ctx, pa)
                if latch_bar is not None:
                    first_store = next(i for i, e in enumerate(order) if e.mem_write)
                    ed.delete(latch_bar)
                    ed.insert_before(seg[first_store].instr, [latch_bar.text])
                    moved = True
                    changed += 1
        # one load per iteration: hoist the next iteration's load above this one's use
        why: list[str] = []
        taken: set[str] = set()
        decls: list[str] = []
        for bi, block in enumerate(blocks):
            last = block.instructions[-1] if block.instructions else None
            if bi in touched or last is None or last.opcode != "bra" or block.label is None:
                continue
            if last.operands[:1] != (block.label,):
                continue
            res = pipeline_loop(fn, blocks, bi, pa, taken, self.priority)
            if isinstance(res, str):
                why.append(f"loop {block.label}: {res}")
                continue
            lines, regs, dels = res
            ed.insert_before(dels[0], lines)
            for x in dels:
                ed.delete(x)
            ed.insert_after(dels[-1], [f"{_PIPE_EXIT}{bi}:"], indent="")
            decls += regs
            changed += 1
        if decls:
            last_reg = [s for s in fn.body if isinstance(s, Directive) and s.name == ".reg"][-1]
            ed.insert_after(last_reg, decls)
        if not changed and not converted:
            loops = f"; {'; '.join(why[:3])}" if why else ""
            raise NotApplicable(
                f"{self.name}: no global load to hoist (no bounds-checked load block to "
                f"predicate, no run with loads behind arithmetic or shared stores){loops}"
            )
        return ed.text()

    def wants(self, seg: list[Effect]) -> bool:
        loads = sum(1 for e in seg if is_global_load(e.instr))
        return loads >= 2 or (
            loads == 1 and any(e.instr.opcode == "st" and e.instr.space == ".shared" for e in seg)
        )

    def _reschedule(self, seg: list[Effect], ed: Editor) -> tuple[list[Effect], int]:
        """As the base, with the address arithmetic of the run's global loads ranked with the
        loads: a load behind its own index computation (`sub; mul.wide; add; ld`, the
        neighbour loads of a stencil) rises with it above the arithmetic that uses earlier
        loads, so all loads are in flight before the first use."""
        feeds = _load_slice(seg)
        order = list_schedule(seg, lambda e: 0 if id(e) in feeds else self.priority(e))
        return _write_order(seg, order, ed)

    def priority(self, e: Effect) -> int:
        if is_global_load(e.instr):
            return 0
        return 2 if e.mem_write else 1


def _load_slice(seg: list[Effect]) -> set[int]:
    """ids of the run's global loads and of the pure instructions whose results they need
    (through registers, inside the run)."""
    need: set[str] = set()
    out: set[int] = set()
    for e in reversed(seg):
        if is_global_load(e.instr):
            out.add(id(e))
            need |= e.reads
        elif e.writes & need and e.instr.opcode in PURE_OPCODES and not e.mem_read:
            out.add(id(e))
            need = (need - e.writes) | e.reads
    return out


class SinkStores(_Scheduler):
    name = "sink_st"
    summary = "sink global stores below independent arithmetic so they issue back to back"
    safety = "list schedule over register and memory dependences (aliasing via provenance)"

    def wants(self, seg: list[Effect]) -> bool:
        return sum(1 for e in seg if self._gst(e)) >= 2

    @staticmethod
    def _gst(e: Effect) -> bool:
        return e.mem_write and e.instr.space == ".global"

    def priority(self, e: Effect) -> int:
        return 1 if self._gst(e) else 0


TRANSFORMS = [ReorderCopy()]
SINK_ST = SinkStores()
"""Not in the catalogue: changed SASS on 13 of 136 kernels (docs/transforms.md)."""


def _touches_shared(ins: Instruction) -> bool:
    """Shared access, or a generic access that might be one (no state space given)."""
    if ins.opcode not in ("ld", "st", "atom", "red", "cp", "ldu", "ldmatrix", "stmatrix"):
        return False
    return ins.space in (".shared", None) and not (
        ins.opcode == "ld" and ins.space is None and ins.address() is None
    )


def _reachable(blocks: list, start: list[int], stop: int | None = None) -> set[int]:
    seen: set[int] = set()
    work = list(start)
    while work:
        b = work.pop()
        if b in seen or b == stop:
            continue
        seen.add(b)
        work.extend(blocks[b].successors)
    return seen


def _movable_latch_barrier(
    blocks: list, h: int, order: list[Effect], ctx: TransformContext, pa: object
) -> Instruction | None:
    """The latch's `bar.sync` that may move into loop header `h` before its first store."""
    loads = [e for e in order if is_global_load(e.instr)]
    first_store = next((i for i, e in enumerate(order) if e.mem_write), None)
    if first_store is None or not loads or not ctx.read_only:
        return None
    if any(is_global_load(e.instr) for e in order[first_store:]):
        return None
    if any(_touches_shared(e.instr) or e.fence for e in order[:first_store]):
        return None
    for e in loads:
        roots = pa.address(e.instr).roots  # type: ignore[attr-defined]
        if not roots or not roots <= ctx.read_only:
            return None
    preds = [i for i, b in enumerate(blocks) if h in b.successors]
    latches = [i for i in preds if i >= h]
    if len(preds) != 2 or len(latches) != 1:
        return None
    t = latches[0]
    tail = blocks[t].instructions
    bars = [i for i, ins in enumerate(tail) if ins.opcode in ("bar", "barrier")]
    if len(bars) != 1:
        return None
    bar = tail[bars[0]]
    if bar.guard is not None or bar.modifiers != (".sync",) or bar.operands != ("0",):
        return None
    last = tail[-1]
    if last.opcode != "bra" or last.operands[:1] != (blocks[h].label,):
        return None
    for ins in tail[bars[0] + 1 : -1]:
        if ins.opcode not in PURE_OPCODES or ".cc" in ins.modifiers:
            return None
    # every thread that enters the header reaches the latch: no exit inside the loop
    body = _reachable(blocks, [h], stop=t) | {t}
    for b in body:
        if any(i.opcode in ("ret", "exit", "trap", "brx", "call") for i in blocks[b].instructions):
            return None
    # after the loop nothing touches shared memory (its last barrier goes away)
    exits = [s for b in body for s in blocks[b].successors if s not in body]
    for b in _reachable(blocks, exits):
        if any(
            _touches_shared(i) or i.opcode in ("bar", "barrier") for i in blocks[b].instructions
        ):
            return None
    return bar


# --- across unrolled iterations ----------------------------------------------------------------

_PIPE_REG = "%chr_pl"
_PIPE_EXIT = "$L__chr_pipe"


class _Hoisted:
    """Pointer facts for a run holding new instructions: the hoisted load has its original's
    (same address expression, renamed registers); everything else asks the analysis."""

    def __init__(self, pa: object, load: Instruction, original: Instruction):
        self.pa, self.load, self.original = pa, load, original

    def address(self, instr: Instruction) -> object:
        return self.pa.address(self.original if instr is self.load else instr)  # type: ignore[attr-defined]


def pipeline_loop(
    fn: Function, blocks: list, bi: int, pa: object, taken: set[str], priority: Callable
) -> tuple[list[str], list[str], list[Instruction]] | str:
    """Unroll the one-block loop `bi` by two and hoist the second iteration's global load (and
    its address arithmetic, renamed into fresh registers) above the first iteration's uses.

    The hoisted load is predicated on the loop's continue condition (the back branch's guard,
    read after the first iteration computed it), so it runs exactly when the second iteration
    does; the second copy then takes its value with a `mov`. The first copy and the hoisted
    code form one straight run scheduled by `list_schedule` over `deps`, so the load moves
    only above instructions it provably commutes with: no fence (barrier, atomic, volatile or
    ordered access) may be in the body, and stores it passes must not alias it.

    Returns (lines replacing the body, register declarations, the body's instructions to
    delete) or the unmet condition.
    """
    loop = _pipeline_body(fn, blocks[bi], pa)
    if isinstance(loop, str):
        return loop
    back, body = loop
    loads = [i for i, x in enumerate(body) if is_global_load(x)]
    if len(loads) != 1:
        return "no global load in the body" if not loads else "loads already share the body"
    li = loads[0]
    load = body[li]
    if load.guard is not None or load.vector_width != 1 or len(load.dests) != 1:
        return "the load is predicated or a vector"
    types = {n: d.type for d in fn.reg_decls() for n in d.names()}
    sl = _address_slice(body[:li], load)
    if isinstance(sl, str):
        return sl
    lifted = _hoist_next_load(sl, load, back, types, taken)
    if isinstance(lifted, str):
        return lifted
    hoisted, rename, decls = lifted
    info = _Hoisted(pa, hoisted[-1], load)
    run = effects([*body, *hoisted], info)  # type: ignore[arg-type]
    feeds = _load_slice(run)
    order = list_schedule(run, lambda e: 0 if id(e) in feeds else priority(e))
    pos = {id(e.instr): i for i, e in enumerate(order)}
    dest = load.dests[0]
    uses = [x for x in body[li + 1 :] if dest in x.registers_read()]
    if not uses or all(pos[id(x)] < pos[id(hoisted[-1])] for x in uses):
        return "the next load cannot rise above this iteration's use"
    g = back.guard
    neg = "@" + g[2:] if g.startswith("@!") else "@!" + g[1:]
    label = f"{_PIPE_EXIT}{bi}"
    lines = [e.instr.text if any(e.instr is x for x in body) else e.instr.render() for e in order]
    lines.append(back.with_(guard=neg, operands=(label,)).render())
    mov = f"mov{types[dest]} \t{dest}, {rename[dest]};"
    lines += [mov if x is load else x.text for x in body]
    lines.append(back.text)
    return lines, decls, [*body, back]


def _pipeline_body(fn: Function, blk, pa: object) -> tuple[Instruction, list[Instruction]] | str:
    """(the back branch, the body) of a labelled one-block loop without `.pragma "nounroll"`
    or a fence in its body; else the unmet condition."""
    if not blk.instructions or blk.label is None:
        return "not a labelled block"
    back = blk.instructions[-1]
    if back.opcode != "bra" or back.guard is None or back.operands[:1] != (blk.label,):
        return "not a one-block loop"
    body = blk.instructions[:-1]
    start = fn.labels()[blk.label]
    for st in fn.body[start:]:
        if st is back:
            break
        if isinstance(st, Directive) and st.name == ".pragma" and "nounroll" in st.text:
            return 'the loop carries .pragma "nounroll"'
    effs = effects(body, pa)  # type: ignore[arg-type]
    fence = next((e.instr for e in effs if e.fence), None)
    if fence is not None:
        return f"the load may not cross {fence.mnemonic} (a fence) in the body"
    return back, body


def _address_slice(before: list[Instruction], load: Instruction) -> list[Instruction] | str:
    """The load's address arithmetic: the pure, unguarded instructions of `before` its
    address needs, through registers, in order; else the unmet condition."""
    need = set(load.registers_read())
    sl: list[Instruction] = []
    for x in reversed(before):
        if set(x.dests) & need:
            if x.opcode not in PURE_OPCODES or ".cc" in x.modifiers or x.guard is not None:
                return f"the address depends on {x.mnemonic}"
            sl.append(x)
            need = (need - set(x.dests)) | set(x.registers_read())
    sl.reverse()
    return sl


def _hoist_next_load(
    sl: list[Instruction], load: Instruction, back: Instruction, types: dict, taken: set[str]
) -> tuple[list[Instruction], dict[str, str], list[str]] | str:
    """The next iteration's address arithmetic and load (guarded by the back branch's guard)
    in fresh registers: (the instructions, the renaming, their declarations); else the
    unmet condition."""
    rename: dict[str, str] = {}
    decls: list[str] = []

    def fresh(reg: str) -> str | None:
        if reg not in types:
            return None
        name = f"{_PIPE_REG}{len(taken)}"
        taken.add(name)
        rename[reg] = name
        decls.append(f".reg {types[reg]} \t{name};")
        return name

    def sub(op: str) -> str:
        return re.sub(r"%[\w$.]+", lambda m: rename.get(m.group(0), m.group(0)), op)

    hoisted: list[Instruction] = []
    for x in [*sl, load]:
        ops = [sub(o) for o in x.operands[1:]]
        dests = []
        for d in x.dests:
            new = fresh(d)
            if new is None:
                return f"no declared type for {d}"
            dests.append(new)
        guard = back.guard if x is load else None
        dest_op = dests[0] if len(dests) == 1 else sub(x.operands[0])
        text = x.with_(guard=guard, operands=(dest_op, *ops)).render()
        hoisted.append(parse_instruction(text))
    return hoisted, rename, decls
