"""LAUNCH: launch-bound directives from the kernel's exact block shape (one exclusive group).

Telling ptxas the block shape lets it size register allocation for it (`.maxntid`), and
`.reqntid` additionally lets it fold `%ntid` and specialise; `.minnctapersm 2` asks for two
resident CTAs per SM. All need the block the kernel is always launched with (from the spec).
"""

from __future__ import annotations

from chronos.ptx import Function, Module

from .base import NotApplicable, Transform, TransformContext, entry_directive_lines

_LAUNCH_DIRECTIVES = (".maxntid", ".reqntid", ".minnctapersm", ".maxnreg")


def _block(ctx: TransformContext) -> str:
    if not ctx.block:
        raise NotApplicable("launch bounds need the kernel's block shape in the context")
    return ", ".join(str(b) for b in ctx.block)


class MinNCtaPerSM(Transform):
    name = "minnctapersm_2"
    group = "LAUNCH"
    exclusive = True
    summary = "declare .maxntid (block shape) and .minnctapersm 2"
    safety = "directives only; the spec's block shape is the only launch shape"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        present = [d for d in _LAUNCH_DIRECTIVES if d in fn.directives]
        if present:
            raise NotApplicable(f"{self.name}: entry already has {', '.join(present)}")
        return entry_directive_lines(module, fn, [f".maxntid {_block(ctx)}", ".minnctapersm 2"])


class ReqNTid(Transform):
    name = "reqntid"
    group = "LAUNCH"
    exclusive = True
    summary = "declare the exact block shape (.reqntid)"
    safety = "directive only; launching with another block shape would fail, the spec forbids it"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        present = [d for d in (".maxntid", ".reqntid", ".minnctapersm") if d in fn.directives]
        if present:
            raise NotApplicable(f"{self.name}: entry already has {', '.join(present)}")
        return entry_directive_lines(module, fn, [f".reqntid {_block(ctx)}"])


TRANSFORMS = [MinNCtaPerSM(), ReqNTid()]
