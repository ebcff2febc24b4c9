"""LDCACHE / STCACHE / PREFETCH-size: cache qualifiers on global loads and stores.

These change only where data is cached, never values, so they are bit-exact. `.nc` (the
read-only path) is only legal on buffers nobody writes during the launch, which the spec's
`read_only` contract and the provenance analysis establish; the others are always legal.
"""

from __future__ import annotations

from chronos.ptx import Function, Instruction, Module

from .alignment import analyze
from .base import NotApplicable, Transform, TransformContext, cache_op, with_modifier
from .deps import is_plain_access


def _plain_global(instr: Instruction, opcode: str) -> bool:
    return instr.opcode == opcode and instr.space == ".global" and is_plain_access(instr)


class _Qualify(Transform):
    """Add one qualifier to every eligible global access; subclasses say which are eligible."""

    opcode = "ld"
    mod = ""
    where = "after_space"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        return (
            _plain_global(instr, self.opcode)
            and cache_op(instr) is None
            and ".nc" not in instr.modifiers
        )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        ed = module.edit()
        n = 0
        for instr in fn.instructions():
            if self.eligible(instr, module, fn, ctx):
                ed.replace(instr, with_modifier(instr, self.mod, self.where).render())
                n += 1
        if not n:
            raise NotApplicable(f"{self.name}: no eligible {self.opcode}.global")
        return ed.text()


class LdNc(_Qualify):
    name = "ld_nc"
    group = "LDCACHE"
    exclusive = True
    mod = ".nc"
    summary = "load read-only buffers through the non-coherent (texture) path"
    safety = "only loads whose address provably derives from read-only pointer parameters"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        if not super().eligible(instr, module, fn, ctx) or not ctx.read_only:
            return False
        roots = analyze(module, fn, ctx).address(instr).roots
        return bool(roots) and roots <= ctx.read_only  # type: ignore[operator]


class LdCg(_Qualify):
    name = "ld_cg"
    group = "LDCACHE"
    exclusive = True
    mod = ".cg"
    summary = "cache global loads in L2 only (.cg), bypassing L1"


class LdCs(_Qualify):
    name = "ld_cs"
    group = "LDCACHE"
    exclusive = True
    mod = ".cs"
    summary = "streaming global loads (.cs, evict first)"


class LdEvictLast(_Qualify):
    name = "ld_evict_last"
    group = "LDCACHE"
    exclusive = True
    mod = ".L1::evict_last"
    min_sm = 70
    summary = "keep loads of read-only buffers in L1 longer (.L1::evict_last)"
    safety = "an eviction-priority hint; the .cop form excludes it, hence LDCACHE"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        if not super().eligible(instr, module, fn, ctx):
            return False
        if any(m.startswith(".L1::") for m in instr.modifiers):
            return False
        roots = analyze(module, fn, ctx).address(instr).roots
        return bool(roots) and roots <= ctx.read_only  # type: ignore[operator]


class StCs(_Qualify):
    name = "st_cs"
    group = "STCACHE"
    exclusive = True
    opcode = "st"
    mod = ".cs"
    summary = "streaming global stores (.cs, evict first)"


class StCg(_Qualify):
    name = "st_cg"
    group = "STCACHE"
    exclusive = True
    opcode = "st"
    mod = ".cg"
    summary = "global stores cached in L2 only (.cg)"


class LdL2Prefetch256(_Qualify):
    name = "ld_l2_256B"
    group = "PREFETCH"
    exclusive = True
    mod = ".L2::256B"
    where = "before_vec"
    min_sm = 75
    summary = "ask L2 to fetch 256-byte sectors on global loads (.L2::256B)"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        return _plain_global(instr, "ld") and not any(
            m.startswith(".L2::") for m in instr.modifiers
        )


LDCACHE = [LdNc(), LdCg(), LdCs(), LdEvictLast()]
STCACHE = [StCs(), StCg()]
