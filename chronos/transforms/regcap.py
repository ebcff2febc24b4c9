"""REGCAP: `.maxnreg N` register caps (one exclusive group).

A cap trades registers for occupancy (and spills when too tight); ptxas also re-schedules
under a cap, which is why even a loose cap changes SASS on the corpus.
"""

from __future__ import annotations

from chronos.ptx import Function, Module

from .base import NotApplicable, Transform, TransformContext, entry_directive_lines


class MaxNReg(Transform):
    """Add `.maxnreg N` to the entry; refused when the kernel already has a register cap."""

    group = "REGCAP"
    exclusive = True
    exact = True

    def __init__(self, n: int):
        self.n = n
        self.name = f"maxnreg_{n}"
        self.summary = f"cap registers per thread at {n} (.maxnreg {n})"
        self.safety = "directive only; semantics unchanged (ptxas spills if needed)"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        if ".maxnreg" in fn.directives:
            raise NotApplicable(
                f"{self.name}: already capped at .maxnreg {fn.directives['.maxnreg']}"
            )
        if ".minnctapersm" in fn.directives:
            raise NotApplicable(f"{self.name}: .minnctapersm already bounds registers")
        return entry_directive_lines(module, fn, [f".maxnreg {self.n}"])


TRANSFORMS = [MaxNReg(32), MaxNReg(64), MaxNReg(128)]
"""`maxnreg_255` left the catalogue: 255 is ptxas's own limit, and the slot went to
`ld_l2_128B`, which changes SASS on every family (docs/transforms.md)."""
