"""PREFETCH: L2 prefetch hints (one exclusive group with `ld_l2_256B` from cache.py).

`prefetch_l2` issues `prefetch.global.L2` for every global row (base register) a block
loads from, as soon as the row's address exists, so the DRAM requests start before the
loads that need them are reached. A prefetch never faults and changes no value; it only
touches addresses the kernel loads anyway.
"""

from __future__ import annotations

from chronos.ptx import Address, Function, Instruction, Module

from .alignment import analyze
from .base import NotApplicable, Transform, TransformContext
from .deps import block_effects, is_global_load, is_plain_access


class PrefetchL2(Transform):
    name = "prefetch_l2"
    group = "PREFETCH"
    exclusive = True
    summary = "prefetch.global.L2 each loaded global row right after its address is computed"
    safety = "prefetch is a hint: no fault, no value change; only addresses loaded anyway"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        if any(i.opcode in ("prefetch", "prefetchu") for i in fn.instructions()):
            raise NotApplicable(f"{self.name}: kernel already prefetches")
        pa = analyze(module, fn, ctx)
        ed = module.edit()
        n = 0
        for block in fn.basic_blocks():
            effs = block_effects(block, pa)
            seen: set[tuple[str, int]] = set()
            for i, e in enumerate(effs):
                ins = e.instr
                if not (is_global_load(ins) and is_plain_access(ins) and e.access is not None):
                    continue
                key = (e.access.base, e.access.version)
                if key in seen or not key[0].startswith("%"):
                    continue
                seen.add(key)
                # lowest offset loaded from this definition of the base register
                offs = [
                    x.access.offset
                    for x in effs
                    if x.access is not None
                    and is_global_load(x.instr)
                    and (x.access.base, x.access.version) == key
                ]
                addr = _render_addr(e.access.base, min(offs))
                if ins.guard is None:
                    line = f"prefetch.global.L2 \t{addr};"
                    defn = _definition_before(effs, i, e.access.base)
                else:
                    # a bounds-checked load: prefetch only what it would load, under its own
                    # predicate, once both the address and the predicate exist
                    line = f"{ins.guard} prefetch.global.L2 \t{addr};"
                    defn = _latest_definition(effs, i, [e.access.base, ins.guard.lstrip("@!")])
                if defn is None:
                    ed.insert_before(ins, [line])
                else:
                    ed.insert_after(defn, [line])
                n += 1
        if not n:
            raise NotApplicable(f"{self.name}: no global loads")
        return ed.text()


def _render_addr(base: str, off: int) -> str:
    """nvcc's spelling: `[%rd1]`, `[%rd1+8]`, `[%rd1+-4]` (ptxas rejects `[%rd1-4]`)."""
    return Address(base, off).render()


def _latest_definition(effs: list, i: int, regs: list[str]) -> Instruction | None:
    """The last instruction before index i defining any of `regs` when it is unguarded (after
    it all of them hold their values at i); None when there is none or it is guarded."""
    for j in range(i - 1, -1, -1):
        if set(regs) & effs[j].writes:
            ins = effs[j].instr
            return ins if ins.guard is None else None
    return None


def _definition_before(effs: list, i: int, reg: str) -> Instruction | None:
    """The unguarded instruction defining `reg` last before index i in this block, if any."""
    for j in range(i - 1, -1, -1):
        if reg in effs[j].writes:
            ins = effs[j].instr
            return ins if ins.guard is None else None
    return None


TRANSFORMS = [PrefetchL2()]
