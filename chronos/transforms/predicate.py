"""If-conversion: turn a bounds-check branch around a short block into predicated instructions.

nvcc guards every ragged access with `@%p bra SKIP; <address arithmetic; ld/st> SKIP:`, so
each guarded load sits alone in its basic block and nothing may be scheduled across it. The
block's instructions guarded by the branch's negated predicate compute exactly what the
branch did: when the guard is false they execute, when it is true every one is a no-op (a
predicated-off load does not access memory, a predicated-off write keeps the old register).
Only blocks of pure arithmetic and plain loads/stores qualify (no barrier, shuffle, vote or
anything whose execution by a non-participating thread matters), that do not write the
predicate, entered only from the branch (no label) and falling through to its target. A
target label nothing else branches to is dropped, so a chain of guarded copies becomes one
basic block, which is what `reorder_cp`, `cp_async` and `prefetch_l2` then work on.
"""

from __future__ import annotations

from collections.abc import Callable

from chronos.ptx import Function, Instruction, Label, Module

from .deps import PURE_OPCODES, is_plain_access

MAX_BLOCK = 16
"""Longest block converted (nvcc's bounds-checked bodies are 1-10 instructions)."""

_CONTROL = frozenset({"bra", "ret", "exit", "trap", "brx", "call"})


def _predicable(ins: Instruction) -> bool:
    if ins.guard is not None or ".cc" in ins.modifiers:
        return False
    if ins.opcode in PURE_OPCODES:
        return True
    return ins.opcode in ("ld", "st") and is_plain_access(ins) and ins.address() is not None


def _negate(guard: str) -> str:
    return guard.replace("@!", "@") if guard.startswith("@!") else guard.replace("@", "@!", 1)


def if_convert(module: Module, fn: Function, want: Callable[[list[Instruction]], bool]) -> str:
    """The text with every qualifying guarded block for which `want(block)` holds predicated
    (the input text when there is none)."""
    blocks = fn.basic_blocks()
    ed = module.edit()
    targets: dict[str, int] = {}
    for ins in fn.instructions():
        if ins.opcode == "bra" and ins.operands:
            targets[ins.operands[0]] = targets.get(ins.operands[0], 0) + 1
    labels = {s.name: s for s in fn.body if isinstance(s, Label)}
    n = 0
    for i in range(len(blocks) - 2):
        br = blocks[i].instructions[-1] if blocks[i].instructions else None
        if br is None or br.opcode != "bra" or br.guard is None or not br.operands:
            continue
        body, after = blocks[i + 1], blocks[i + 2]
        target = br.operands[0]
        if body.label is not None or after.label != target or not body.instructions:
            continue
        instrs = body.instructions
        pred = br.guard.lstrip("@!")
        if len(instrs) > MAX_BLOCK or instrs[-1].opcode in _CONTROL:
            continue
        if not all(_predicable(x) for x in instrs) or any(pred in x.dests for x in instrs):
            continue
        if not want(instrs):
            continue
        guard = _negate(br.guard)
        ed.delete(br)
        for x in instrs:
            ed.replace(x, x.with_(guard=guard).render())
        targets[target] -= 1
        if targets[target] == 0:
            ed.delete(labels[target])
        n += 1
    return ed.text() if n else module.text


def holds_global_access(instrs: list[Instruction]) -> bool:
    return any(x.opcode in ("ld", "st") and x.space == ".global" for x in instrs)
