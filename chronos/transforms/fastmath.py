"""MATH: nvcc's `--use_fast_math` at the PTX level, for kernels whose spec tolerates rounding.

`fast_math` flushes f32 subnormals (`.ftz` on f32 add/sub/mul/fma/min/max/abs/neg/setp and
the SFU approximations, what `-ftz=true` emits) and replaces IEEE-rounded f32 division,
reciprocal and square root by their approximations (`div.rn`/`div.full` -> `div.approx`,
`rcp.rn` -> `rcp.approx`, `sqrt.rn` -> `sqrt.approx`, what `-prec-div=false -prec-sqrt=false`
emit). The PTX ISA bounds the approximations at 2 ulp (`div.approx` for divisors in
[2^-126, 2^126]; it returns 0 for 2^126 < |b| < 2^128), 1 ulp (`rcp.approx`) and 2^-23
relative (`sqrt.approx`), and flushing only touches values below 2^-126. Rounding-changing,
so masked when spec.tolerance is zero; where the mask allows it, verification runs the
approximations pushed to those bounds (chronos.emulate.approx), so a kernel whose tolerance
is tighter, or whose divisors reach the zero range, fails verification: an invalid step.
Every corpus kernel it applies to verifies so (docs/transforms.md).
"""

from __future__ import annotations

from chronos.ptx import Function, Instruction, Module

from .base import NotApplicable, Transform, TransformContext

_FTZ_OPS = frozenset("add sub mul fma mad min max abs neg setp ex2 lg2 rsqrt sqrt rcp div".split())
_APPROX = {"div": (".rn", ".full"), "rcp": (".rn",), "sqrt": (".rn",)}
_ROUND = (".rn", ".rz", ".rm", ".rp")
_AFTER_FTZ = (".sat", ".NaN", ".xorsign", ".abs", ".f32")


def fast_form(instr: Instruction) -> Instruction | None:
    """The fast-math spelling of one f32 instruction, or None if it has none."""
    op, mods = instr.opcode, list(instr.modifiers)
    if op not in _FTZ_OPS or instr.type != ".f32" or ".f32" not in mods:
        return None
    if op == "mad" and not any(m in _ROUND for m in mods):
        return None  # mad.f32 without rounding is legacy; leave it
    if op in _APPROX and not (op == "sqrt" and ".approx" in mods):
        old = next((m for m in _APPROX[op] if m in mods), None)
        if old is not None:
            mods[mods.index(old)] = ".approx"
        elif op == "div" and ".approx" not in mods:
            return None
    if op in ("rcp", "sqrt", "rsqrt", "ex2", "lg2", "div") and ".approx" not in mods:
        return None  # a directed-rounding SFU op stays IEEE
    if ".ftz" not in mods:
        at = next(i for i, m in enumerate(mods) if m in _AFTER_FTZ)
        mods.insert(at, ".ftz")
    new = tuple(mods)
    return None if new == instr.modifiers else instr.with_(modifiers=new)


class FastMath(Transform):
    name = "fast_math"
    group = "MATH"
    exact = False
    summary = (
        "fast-math f32: .ftz (flush subnormals), div/rcp/sqrt -> .approx (nvcc --use_fast_math)"
    )
    safety = (
        "rounding-changing (<= 2 ulp, subnormals flushed; verified with the approximations "
        "at their bounds); only when spec.tolerance > 0"
    )

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        ed = module.edit()
        n = 0
        for ins in fn.instructions():
            new = fast_form(ins)
            if new is not None:
                ed.replace(ins, new.render())
                n += 1
        if not n:
            raise NotApplicable(f"{self.name}: no f32 arithmetic to flush or approximate")
        return ed.text()


TRANSFORMS = [FastMath()]
