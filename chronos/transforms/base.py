"""What every transform shares: the kernel's contract as a context, the result type, the base class.

A transform is a pure function of (PTX, context): it never reads the GPU, the clock or global
state, so the same input gives the same output on every machine, which is what lets the
measurement store key on the PTX hash and lets episodes be replayed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from chronos.ptx import Editor, Function, Instruction, Module


class NotApplicable(Exception):
    """Raised by `Transform.rewrite` when its precondition fails; the message is the reason."""


class TransformResult(NamedTuple):
    """`ptx` is the input unchanged when `changed` is False; `reason` says why either way."""

    ptx: str
    changed: bool
    reason: str


def _frozen(items: Mapping[str, int] | None) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((str(k), int(v)) for k, v in (items or {}).items()))


@dataclass(frozen=True)
class TransformContext:
    """The kernel facts transforms may rely on, from its KernelSpec (or written by hand in tests).

    `alignment`: pointer parameter -> guaranteed byte alignment; `divisibility`: scalar parameter
    -> a guaranteed divisor of its value; `read_only`: pointer parameters whose buffer nobody
    writes during the launch; `block`: the exact launch block shape; `blocks`: the block shapes
    of every problem of the spec (launch bounds must hold for all); `arch`: the target SM.
    Mappings are stored as sorted tuples so that a context is hashable (analyses cache on it).
    """

    entry: str | None = None
    alignment: tuple[tuple[str, int], ...] = ()
    divisibility: tuple[tuple[str, int], ...] = ()
    read_only: frozenset[str] = frozenset()
    block: tuple[int, int, int] | None = None
    arch: str = "sm_80"
    blocks: tuple[tuple[int, int, int], ...] = ()
    tolerance: tuple[float, float] = (0.0, 0.0)
    extra: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    @classmethod
    def make(
        cls,
        entry: str | None = None,
        alignment: Mapping[str, int] | None = None,
        divisibility: Mapping[str, int] | None = None,
        read_only: frozenset[str] | set[str] | tuple[str, ...] = frozenset(),
        block: tuple[int, int, int] | None = None,
        arch: str = "sm_80",
        blocks: Sequence[Sequence[int]] = (),
        tolerance: tuple[float, float] = (0.0, 0.0),
    ) -> TransformContext:
        """Build from plain mappings (the convenient form for hand-written PTX in tests)."""
        return cls(
            blocks=tuple(sorted({tuple(int(b) for b in blk) for blk in blocks})),  # type: ignore[misc]
            entry=entry,
            alignment=_frozen(alignment),
            divisibility=_frozen(divisibility),
            read_only=frozenset(read_only),
            block=tuple(int(b) for b in block) if block else None,  # type: ignore[arg-type]
            arch=arch,
            tolerance=(float(tolerance[0]), float(tolerance[1])),
        )

    @classmethod
    def from_spec(cls, spec: Any, arch: str | None = None) -> TransformContext:
        """The contract of a `kernels.KernelSpec`; `arch` defaults to the spec's PTX target."""
        ro_buffers = set(spec.read_only or ())
        read_only = {p.name for p in spec.params if p.kind == "buffer" and p.buffer in ro_buffers}
        return cls.make(
            entry=spec.entry,
            alignment=spec.alignment,
            divisibility=spec.divisibility,
            read_only=read_only,
            block=tuple(spec.problem("full").block),
            arch=arch or spec.target,
            blocks=[tuple(p.block) for p in spec.problems.values()],
            tolerance=(spec.tolerance.rtol, spec.tolerance.atol),
        )

    def align_of(self, param: str) -> int:
        return dict(self.alignment).get(param, 1)

    def divisor_of(self, param: str) -> int:
        return dict(self.divisibility).get(param, 1)

    @property
    def sm(self) -> int:
        """The SM number of `arch` (80 for "sm_80", 90 for "sm_90a")."""
        m = re.match(r"sm_(\d+)", self.arch)
        return int(m.group(1)) if m else 0


class Transform:
    """One action. Subclasses set the class attributes and implement `rewrite`.

    `rewrite` returns the new PTX text or raises NotApplicable with a reason; returning the
    input text unchanged also counts as not applicable. Transforms must be deterministic,
    semantics-preserving (up to rounding when `exact` is False) and idempotent.
    """

    name: str = ""
    group: str = ""
    exclusive: bool = False
    exact: bool = True
    summary: str = ""
    safety: str = ""
    min_sm: int = 0

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        raise NotImplementedError

    def run(self, module: Module, ctx: TransformContext) -> TransformResult:
        """Apply to the context's entry; never raises for an inapplicable transform."""
        if ctx.sm < self.min_sm:
            return TransformResult(
                module.text, False, f"{self.name}: needs sm_{self.min_sm}+, target is {ctx.arch}"
            )
        if not self.exact and not any(ctx.tolerance):
            return TransformResult(
                module.text,
                False,
                f"{self.name}: changes rounding but spec.tolerance is 0 (the kernel must stay "
                "bit-exact)",
            )
        try:
            fn = module.entry(ctx.entry)
        except (KeyError, ValueError) as exc:
            return TransformResult(module.text, False, f"no entry: {exc}")
        try:
            text = self.rewrite(module, fn, ctx)
        except NotApplicable as exc:
            return TransformResult(module.text, False, str(exc))
        if text == module.text:
            return TransformResult(module.text, False, f"{self.name}: nothing to change")
        return TransformResult(text, True, f"{self.name}: {self.summary}")

    def applicable(self, module: Module, ctx: TransformContext) -> bool:
        """The precondition: would `run` change the PTX?"""
        return self.run(module, ctx).changed

    def __repr__(self) -> str:
        kind = "exact" if self.exact else "rounding"
        star = "*" if self.exclusive else ""
        return f"<{type(self).__name__} {self.name} [{self.group}{star}, {kind}]>"


# --- small editing helpers shared by the transform families -----------------------------------

_VEC_MODS = (".v2", ".v4", ".v8")
_COPS = (".ca", ".cg", ".cs", ".lu", ".cv", ".wb", ".wt")


def cache_op(instr: Instruction) -> str | None:
    """The cache operator of a load/store (`.cg` in `ld.global.cg.f32`), if any."""
    for mod in instr.modifiers:
        if mod in _COPS:
            return mod
    return None


def with_modifier(instr: Instruction, mod: str, where: str) -> Instruction:
    """Insert `mod` after the state space (`where="after_space"`) or before the vector/type
    modifiers (`where="before_vec"`), the two places PTX's ld/st grammar puts qualifiers."""
    mods = list(instr.modifiers)
    if where == "after_space":
        idx = next((i + 1 for i, m in enumerate(mods) if m == instr.space), len(mods))
    else:
        idx = next((i for i, m in enumerate(mods) if m in _VEC_MODS or m == instr.type), len(mods))
    mods.insert(idx, mod)
    return instr.with_(modifiers=tuple(mods))


def entry_directive_lines(
    module: Module, fn: Function, lines: list[str], ed: Editor | None = None
) -> str:
    """Insert performance directives (`.maxnreg`, `.reqntid`, ...) between `)` and `{`, with
    the other edits already made in `ed`, if given."""
    ed = ed if ed is not None else module.edit()
    return ed.insert_before(fn.open_brace, lines, indent="").text()


def instructions_of(fn: Function) -> list[Instruction]:
    return list(fn.instructions())
