"""LDCACHE / STCACHE / PREFETCH-size: cache qualifiers on global loads and stores.

These change only where data is cached, never values, so they are bit-exact. `.nc` (the
read-only path) is only legal on buffers nobody writes during the launch, which the spec's
`read_only` contract and the provenance analysis establish; the others are always legal.

nvcc emits `ld.global.nc` for every `const T* __restrict__` read, so the other load hints
also apply to `.nc` loads, in the PTX ISA's `ld.global{.cop}.nc{.level::eviction_priority}`
form: `.cs.nc`, `.nc.L1::no_allocate` and `.nc.L1::evict_last` keep the read-only path and
change its policy (ptxas 13.0: LDG.E.EF/.NA/.EL.CONSTANT). `.cg.nc` assembles to the same
LDG.E.CONSTANT as `.nc`, so `ld_cg` instead leaves the read-only path for an L2-only load
(LDG.E.STRONG.GPU), which is what it asks for and always legal.
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
    on_nc = False
    """Whether the qualifier also applies to a read-only-path (`.nc`) load."""

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        return (
            _plain_global(instr, self.opcode)
            and cache_op(instr) is None
            and (self.on_nc or ".nc" not in instr.modifiers)
        )

    def qualified(self, instr: Instruction) -> Instruction:
        """The access with the qualifier in its grammatical place (an eviction priority goes
        after `.nc`, as in `ld.global.nc.L1::evict_last`)."""
        mods = instr.modifiers
        if ".nc" in mods and self.mod.startswith(".L1::"):
            at = mods.index(".nc") + 1
            return instr.with_(modifiers=(*mods[:at], self.mod, *mods[at:]))
        return with_modifier(instr, self.mod, self.where)

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        ed = module.edit()
        n = 0
        for instr in fn.instructions():
            if self.eligible(instr, module, fn, ctx):
                ed.replace(instr, self.qualified(instr).render())
                n += 1
        if not n:
            raise NotApplicable(f"{self.name}: {self.why_not(module, fn, ctx)}")
        return ed.text()

    def why_not(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        """Why no access qualifies, in words a user can act on."""
        kind = f"{self.opcode}.global"
        accesses = [
            i for i in fn.instructions() if i.opcode == self.opcode and i.space == ".global"
        ]
        if not accesses:
            other = "atomics" if any(i.opcode in ("atom", "red") for i in fn.instructions()) else ""
            return f"no {kind} in the kernel" + (f" (it writes through {other})" if other else "")
        plain = [i for i in accesses if _plain_global(i, self.opcode)]
        if not plain:
            return f"every {kind} is volatile or ordered"
        quals = sorted(
            {q for i in plain for q in i.modifiers if q.startswith((".L1::", ".L2::"))}
            | {c for i in plain if (c := cache_op(i))}
            | ({".nc"} if any(".nc" in i.modifiers for i in plain) else set())
        )
        return f"every {kind} already carries a qualifier ({', '.join(quals) or 'none'})"


def _read_only_reason(module: Module, fn: Function, ctx: TransformContext) -> str:
    """Why no load qualifies for a read-only path: the contract or the provenance."""
    if not ctx.read_only:
        return "spec.read_only is empty (no buffer is declared unwritten by the launch)"
    pa = analyze(module, fn, ctx)
    loads = [i for i in fn.instructions() if _plain_global(i, "ld")]
    if not loads:
        return "no plain ld.global in the kernel"
    roots: set[str] = set()
    unknown = 0
    for i in loads:
        r = pa.address(i).roots
        if r is None:
            unknown += 1
        else:
            roots |= set(r)
    ro = ", ".join(sorted(ctx.read_only))
    if unknown == len(loads):
        return (
            f"no load's address provably derives from a read-only pointer parameter "
            f"({ro}): provenance unknown for all {unknown}"
        )
    return (
        f"loads read {', '.join(sorted(roots - ctx.read_only)) or 'nothing'} besides "
        f"the read-only {ro} (spec.read_only), or already carry a cache qualifier"
    )


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

    def why_not(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        return _read_only_reason(module, fn, ctx)


class LdCg(_Qualify):
    name = "ld_cg"
    group = "LDCACHE"
    exclusive = True
    mod = ".cg"
    on_nc = True
    summary = "cache global loads in L2 only (.cg), bypassing L1"

    def qualified(self, instr: Instruction) -> Instruction:
        """`.cg` in place of `.nc` too: ptxas ignores `.cg` on the read-only path."""
        plain = instr.with_(modifiers=tuple(m for m in instr.modifiers if m != ".nc"))
        return with_modifier(plain, self.mod, self.where)


class LdCs(_Qualify):
    name = "ld_cs"
    group = "LDCACHE"
    exclusive = True
    mod = ".cs"
    on_nc = True
    summary = "streaming global loads (.cs, evict first)"


class LdEvictLast(_Qualify):
    name = "ld_evict_last"
    group = "LDCACHE"
    exclusive = True
    mod = ".L1::evict_last"
    on_nc = True
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

    def why_not(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        return _read_only_reason(module, fn, ctx)


class LdNoAllocate(_Qualify):
    """Streaming reads that must not displace L1 lines others reuse (`.L1::no_allocate`)."""

    name = "ld_na"
    group = "LDCACHE"
    exclusive = True
    mod = ".L1::no_allocate"
    on_nc = True
    min_sm = 70
    summary = "global loads that do not allocate in L1 (.L1::no_allocate)"
    safety = "an allocation hint, no value change; the .cop form excludes it, hence LDCACHE"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        return super().eligible(instr, module, fn, ctx) and not any(
            m.startswith(".L1::") for m in instr.modifiers
        )


class StCs(_Qualify):
    name = "st_cs"
    group = "STCACHE"
    exclusive = True
    opcode = "st"
    mod = ".cs"
    summary = "streaming global stores (.cs, evict first)"


class LdL2Prefetch(_Qualify):
    """`.L2::<size>B`: how much L2 fetches from DRAM around each global load's sector."""

    group = "PREFETCH"
    exclusive = True
    where = "before_vec"
    min_sm = 75

    def __init__(self, size: int):
        self.size = size
        self.mod = f".L2::{size}B"
        self.name = f"ld_l2_{size}B"
        self.summary = f"ask L2 to fetch {size}-byte blocks on global loads (.L2::{size}B)"

    def eligible(
        self, instr: Instruction, module: Module, fn: Function, ctx: TransformContext
    ) -> bool:
        return _plain_global(instr, "ld") and not any(
            m.startswith(".L2::") for m in instr.modifiers
        )


LDCACHE = [LdNc(), LdCg(), LdCs(), LdEvictLast(), LdNoAllocate()]
STCACHE = [StCs()]
"""`st_cg` left the catalogue for `vec_st` (docs/transforms.md): on sm_80 stores are
write-through to L2 already, and `st_cs` keeps the store-hint slot."""
