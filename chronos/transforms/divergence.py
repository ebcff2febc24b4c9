"""Block-uniform registers: values that are the same in every thread of a block.

A greatest fixpoint (the usual divergence analysis): every register starts uniform and becomes
varying when one of its definitions reads a varying register, `%tid`/`%laneid`/... or memory
(other than `.param`, and shared memory as below), is predicated on a varying predicate, or,
for a register defined in several places, lies in the region a divergent branch controls (the
blocks reachable from its successors before their join, the branch block's nearest
post-dominator): threads on different sides see different definitions. A branch is divergent
when its predicate is varying. Loop counters of uniform loops (`for (s = ntid/2; s > 0; s >>=
1)`) stay uniform, which a single-definition rule cannot show.

A shared load at a uniform address is uniform when no thread can write shared memory between
the full-block barriers around it: from each barrier that can precede it (no barrier between),
every path the block's threads can take to the next barrier has no shared (or generic) write.
At a uniform branch all threads go the same way, so before the load only the directions that
lead to it are followed; at a divergent one, all. This assumes the CUDA `__syncthreads`
contract: every thread of the block reaches the same barriers.
"""

from __future__ import annotations

import re

from chronos.ptx import Function, Instruction

_TOKEN = re.compile(r"%[\w$.]+")
_UNIFORM_SPECIAL = ("%ntid.", "%nctaid.", "%ctaid.")
_WRITERS = frozenset("st atom red cp sust sured stmatrix wmma mbarrier call".split())
_VALUE = frozenset(
    "add sub mul mad mul24 mad24 sad div rem abs neg min max popc clz bfind fns brev bfe bfi "
    "prmt and or xor not cnot lop3 shf shl shr mov cvt cvta setp selp slct set fma rcp sqrt "
    "rsqrt sin cos lg2 ex2 tanh copysign testp".split()
)


def _is_barrier(ins: Instruction) -> bool:
    """An unpredicated full-block barrier (`bar.sync 0`, `barrier.sync 0`; no thread count)."""
    return (
        ins.opcode in ("bar", "barrier")
        and ins.guard is None
        and not ({".arrive", ".red", ".warp"} & set(ins.modifiers))
        and len(ins.operands) == 1
    )


def _writes_shared(ins: Instruction) -> bool:
    if ins.opcode not in _WRITERS:
        return False
    private = ins.space in (".global", ".local", ".param")
    return ins.opcode == "call" or not private or ".shared" in ins.mnemonic


class _Cfg:
    """Basic blocks, predecessors, and for each block the blocks strictly post-dominating it."""

    def __init__(self, fn: Function):
        self.blocks = fn.basic_blocks()
        n = len(self.blocks)
        self.succ = [b.successors for b in self.blocks]
        self.pred: list[list[int]] = [[] for _ in range(n)]
        for i, ss in enumerate(self.succ):
            for s in ss:
                self.pred[s].append(i)
        self.where = {
            id(x): (i, k) for i, b in enumerate(self.blocks) for k, x in enumerate(b.instructions)
        }
        full = set(range(n))
        pdom = [set(full) if ss else {i} for i, ss in enumerate(self.succ)]
        changed = True
        while changed:
            changed = False
            for i in reversed(range(n)):
                if not self.succ[i]:
                    continue
                new = {i} | set.intersection(*(pdom[s] for s in self.succ[i]))
                if new != pdom[i]:
                    pdom[i], changed = new, True
        self.strict_pdom = [p - {i} for i, p in enumerate(pdom)]

    def region(self, b: int) -> set[int]:
        """Blocks a branch ending block b controls: reachable from its successors before the
        join (any strict post-dominator of b)."""
        stop = self.strict_pdom[b]
        seen: set[int] = set()
        todo = [s for s in self.succ[b] if s not in stop]
        while todo:
            x = todo.pop()
            if x in seen:
                continue
            seen.add(x)
            todo += [s for s in self.succ[x] if s not in stop]
        return seen


def _branch_pred(ins: Instruction) -> str | None:
    return ins.guard.lstrip("@!") if ins.opcode == "bra" and ins.guard else None


def _before_load(cfg: _Cfg, bi: int, k: int) -> tuple[set[int], list[tuple[int, int]]] | None:
    """(blocks from which the load at (bi, k) is reached with no barrier in between, the
    positions just after the barriers that can precede it); None when a path from the kernel's
    entry reaches it with no barrier."""
    reach: set[int] = {bi}
    starts: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    todo = [(bi, k)]
    while todo:
        b, end = todo.pop()
        if (b, end) in seen:
            continue
        seen.add((b, end))
        reach.add(b)
        ins = cfg.blocks[b].instructions
        last = max((j for j in range(end) if _is_barrier(ins[j])), default=None)
        if last is not None:
            starts.append((b, last + 1))
            continue
        if b == 0:
            return None
        todo += [(p, len(cfg.blocks[p].instructions)) for p in cfg.pred[b]]
    return reach, starts


def _window_clean(cfg: _Cfg, bi: int, k: int, divergent: set[int]) -> bool:
    """No thread writes shared memory between the barriers around the load at (bi, k)."""
    before = _before_load(cfg, bi, k)
    if before is None:
        return False
    reach, firsts = before
    # free: past the load or past a divergent branch, where every path is followed
    todo = [(b, j, False) for b, j in firsts]
    seen: set[tuple[int, int, bool]] = set()
    while todo:
        b, j, free = todo.pop()
        if (b, j, free) in seen:
            continue
        seen.add((b, j, free))
        ins = cfg.blocks[b].instructions
        stopped = False
        for jj in range(j, len(ins)):
            free = free or (b == bi and jj == k)
            if _is_barrier(ins[jj]):
                stopped = True
                break
            if _writes_shared(ins[jj]):
                return False
        if stopped:
            continue
        follow = cfg.succ[b]
        if b in divergent:
            free = True
        elif not free:
            follow = [s for s in follow if s in reach]
        todo += [(s, 0, free) for s in follow]
    return True


def block_uniform(fn: Function) -> set[str]:
    """Registers whose value is the same in every thread of a block wherever it is read."""
    cfg = _Cfg(fn)
    instrs = [x for b in cfg.blocks for x in b.instructions]
    ndefs: dict[str, int] = {}
    for x in instrs:
        for d in x.dests:
            ndefs[d] = ndefs.get(d, 0) + 1
    registers = set(ndefs)
    varying: set[str] = set()
    divergent: set[int] = set()
    changed = True
    while changed:
        changed = False
        controlled: set[int] = set()
        for b in divergent:
            controlled |= cfg.region(b)
        for x in instrs:
            if not x.dests or all(d in varying for d in x.dests):
                continue
            if _varies(x, varying, registers, cfg, divergent, controlled, ndefs):
                varying.update(x.dests)
                changed = True
        for i, blk in enumerate(cfg.blocks):
            last = blk.instructions[-1] if blk.instructions else None
            pred = _branch_pred(last) if last is not None else None
            if pred is not None and pred in varying and i not in divergent:
                divergent.add(i)
                changed = True
    return {r for r in ndefs if r not in varying}


def _varies(
    x: Instruction,
    varying: set[str],
    registers: set[str],
    cfg: _Cfg,
    divergent: set[int],
    controlled: set[int],
    ndefs: dict[str, int],
) -> bool:
    """Whether x's result may differ between the threads of a block."""
    bi, k = cfg.where[id(x)]
    if any(ndefs.get(d, 0) > 1 for d in x.dests) and bi in controlled:
        return True
    if x.guard and x.guard.lstrip("@!") in varying:
        return True
    reads = _TOKEN.findall(" ".join(x.srcs))
    for tok in reads:
        if tok in registers:
            if tok in varying:
                return True
        elif not tok.startswith(_UNIFORM_SPECIAL) and tok.startswith("%"):
            return True
    if x.opcode == "ld":
        if x.space == ".param":
            return False
        return not (x.space == ".shared" and _window_clean(cfg, bi, k, divergent))
    return x.opcode not in _VALUE
