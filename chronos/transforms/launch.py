"""LAUNCH: launch-bound directives from the kernel's exact block shape (one exclusive group).

Telling ptxas the block shape lets it size register allocation for it. `.reqntid` also makes
a launch of any other shape fail, so inside the kernel `%ntid` is that shape: `reqntid` folds
each `mov %r, %ntid.d` into the constant (ptxas 13.0 does not do it from the directive alone;
its SASS was unchanged on the kernels we tried), and ptxas can then specialise, e.g. unroll a
`for (s = blockDim.x / 2; s > 0; s >>= 1)` tree. `occupancy_75` asks for enough resident CTAs
to fill 75% of the SM's warp slots (`.maxntid` + `.minnctapersm N`), which ptxas turns into a
register budget. Both need the block the kernel is always launched with (from the spec).

Why not the SPEC's `minnctapersm_2`: on a 64-thread gemm_tile block, two CTAs per SM leave
ptxas a 255-register budget, and its SASS equals `maxnreg_255`'s on all 64 kernels (measured,
sm_90). Half occupancy equals `maxnreg_64` on all 64; 75% gives a ~40-register budget that no
REGCAP member produces (distinct SASS on 61 of 64 kernels).
"""

from __future__ import annotations

import math

from chronos.arch import arch_profile
from chronos.ptx import Function, Module

from .base import NotApplicable, Transform, TransformContext, entry_directive_lines

_LAUNCH_DIRECTIVES = (".maxntid", ".reqntid", ".minnctapersm", ".maxnreg")


def _block(ctx: TransformContext) -> str:
    if not ctx.block:
        raise NotApplicable("launch bounds need the kernel's block shape in the context")
    others = [b for b in ctx.blocks if tuple(b) != tuple(ctx.block)]
    if others:
        # Every problem is launched (the "small" one in the emulator, "full" on the GPU): a
        # bound written for one block shape makes the driver refuse the other launch.
        raise NotApplicable(
            f"launch bounds: the spec's problems launch blocks {ctx.block} and "
            f"{', '.join(map(str, others))}; no one shape holds for all"
        )
    return ", ".join(str(b) for b in ctx.block)


def ctas_for_occupancy(threads_per_block: int, arch: str, occupancy: float) -> int:
    """Resident CTAs per SM that fill `occupancy` of the SM's warp slots (capped by its CTA
    limit); 0 when one CTA alone already exceeds that share."""
    prof = arch_profile(arch)
    warps = math.ceil(threads_per_block / 32)
    return min(int(prof.max_warps_per_sm * occupancy) // warps, prof.max_blocks_per_sm)


class Occupancy(Transform):
    """`.maxntid <block>` + `.minnctapersm N`, N chosen for an occupancy target on ctx.arch."""

    group = "LAUNCH"
    exclusive = True
    occupancy = 0.75
    safety = "directives only; the spec's block shape is the only launch shape"

    def __init__(self, occupancy: float = 0.75) -> None:
        self.occupancy = occupancy
        self.name = f"occupancy_{round(occupancy * 100)}"
        self.summary = (
            f"declare .maxntid (block shape) and the .minnctapersm that gives "
            f"{occupancy:.0%} occupancy (a register budget for ptxas)"
        )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        present = [d for d in _LAUNCH_DIRECTIVES if d in fn.directives]
        if present:
            raise NotApplicable(f"{self.name}: entry already has {', '.join(present)}")
        block = _block(ctx)
        assert ctx.block is not None
        n = ctas_for_occupancy(math.prod(ctx.block), ctx.arch, self.occupancy)
        if n < 2:
            raise NotApplicable(
                f"{self.name}: a block of {math.prod(ctx.block)} threads leaves no CTA count "
                f"to ask for on {ctx.arch}"
            )
        return entry_directive_lines(module, fn, [f".maxntid {block}", f".minnctapersm {n}"])


class ReqNTid(Transform):
    name = "reqntid"
    group = "LAUNCH"
    exclusive = True
    summary = "declare the exact block shape (.reqntid) and fold %ntid into it"
    safety = (
        "refused unless every problem of the spec launches this block; .reqntid makes any "
        "other launch fail, so %ntid equals the declared shape"
    )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        present = [d for d in (".maxntid", ".reqntid", ".minnctapersm") if d in fn.directives]
        if present:
            raise NotApplicable(f"{self.name}: entry already has {', '.join(present)}")
        shape = _block(ctx)
        assert ctx.block is not None
        size = dict(zip(("%ntid.x", "%ntid.y", "%ntid.z"), (*ctx.block, 1, 1), strict=False))
        ed = module.edit()
        for instr in fn.instructions():
            if instr.opcode == "mov" and len(instr.operands) == 2 and instr.operands[1] in size:
                folded = (instr.operands[0], str(size[instr.operands[1]]))
                ed.replace(instr, instr.with_(operands=folded).render())
        return entry_directive_lines(module, fn, [f".reqntid {shape}"], ed)


TRANSFORMS = [Occupancy(0.75), ReqNTid()]
