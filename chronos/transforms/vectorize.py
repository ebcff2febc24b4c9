"""VEC / SMEM: merge contiguous, provably aligned scalar accesses into v2/v4 accesses.

A group is scalar loads (or stores) in one basic block with the same base register (same
definition), the same qualifiers and type, and offsets `o, o+e, ...`. It becomes one `.v4`
(or `.v2`) access only when (1) the congruence analysis over the pointer arithmetic plus the
kernel's alignment contract proves the first address is a multiple of the vector size —
a misaligned vector access faults, so "when unsure, don't" — and (2) the dependence analysis
shows the members may move to one place (loads to the earliest member, stores to the latest)
without crossing an aliasing access, a fence or a register dependence. Shared-memory variants
also raise the `.align` of the shared arrays they rely on to 16 (harmless, and needed for the
proof).
"""

from __future__ import annotations

import re
from collections import defaultdict

from chronos.ptx import Editor, Function, Instruction, Module, type_bytes
from chronos.ptx.parse import parse

from .alignment import PointerAnalysis, analyze, variables
from .base import NotApplicable, Transform, TransformContext
from .blockloop import rewrite_block_loops
from .deps import Effect, access_size, block_effects, conflict, is_plain_access
from .loopvec import rewrite_loops

_REG = re.compile(r"^%[\w$.]+$")
_ALIGN = re.compile(r"\.align\s+(\d+)")


def _candidate(instr: Instruction, opcode: str, space: str) -> bool:
    if instr.opcode != opcode or instr.space != space or instr.guard is not None:
        return False
    if instr.vector_width != 1 or not is_plain_access(instr) or len(instr.operands) != 2:
        return False
    if any(m.startswith(".L2::cache_hint") for m in instr.modifiers):
        return False
    t = instr.type
    if t is None or t in (".pred",):
        return False
    try:
        size = type_bytes(t)
    except ValueError:
        return False
    if size not in (4, 8):
        return False
    addr = instr.address()
    if addr is None:
        return False
    data = instr.operands[0] if opcode == "ld" else instr.operands[1]
    if not _REG.match(data.strip()):
        return False
    return not (opcode == "ld" and data.strip() == addr.base)


def _movable(effs: list[Effect], member: int, pos: int, skip: set[int], down: bool) -> bool:
    """May effs[member] move to index `pos` past everything in between (except `skip`)?"""
    lo, hi = (member + 1, pos + 1) if down else (pos, member)
    for x in range(lo, hi):
        if x in skip:
            continue
        a, b = (effs[member], effs[x]) if down else (effs[x], effs[member])
        if conflict(a, b):
            return False
    return True


def merge_accesses(
    module: Module,
    fn: Function,
    pa: PointerAnalysis,
    opcode: str,
    space: str,
) -> tuple[list[tuple[list[Instruction], Instruction]], set[str]]:
    """The merges to make: (members in offset order, the vector instruction), and the roots
    (memory symbols / params) of the merged addresses."""
    merges: list[tuple[list[Instruction], Instruction]] = []
    roots: set[str] = set()
    for block in fn.basic_blocks():
        effs = block_effects(block, pa)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, e in enumerate(effs):
            ins = e.instr
            if not _candidate(ins, opcode, space) or e.access is None:
                continue
            key = (e.access.base, e.access.version, ins.modifiers)
            groups[key].append(i)
        for key in sorted(groups, key=lambda k: groups[k][0]):
            idxs = groups[key]
            by_off: dict[int, int] = {}
            dup = set()
            for i in idxs:
                off = effs[i].access.offset  # type: ignore[union-attr]
                if off in by_off:
                    dup.add(off)
                by_off[off] = i
            if dup:
                continue  # the same address twice: leave the whole group alone
            esize = type_bytes(effs[idxs[0]].instr.type)  # type: ignore[arg-type]
            used: set[int] = set()
            for off in sorted(by_off):
                if by_off[off] in used:
                    continue
                for k in (4, 2):
                    if k * esize > 16:
                        continue
                    offs = [off + j * esize for j in range(k)]
                    if not all(o in by_off and by_off[o] not in used for o in offs):
                        continue
                    first = effs[by_off[off]].instr
                    if pa.alignment(first) < k * esize:
                        continue
                    members = [by_off[o] for o in offs]
                    data = [
                        effs[m].instr.operands[0 if opcode == "ld" else 1].strip() for m in members
                    ]
                    if len(set(data)) != k:
                        continue
                    if opcode == "ld" and any(
                        d in effs[m].instr.registers_read() for d in data for m in members
                    ):
                        continue
                    pos = max(members) if opcode == "st" else min(members)
                    skip = set(members)
                    if not all(_movable(effs, m, pos, skip, opcode == "st") for m in members):
                        continue
                    vec = "{" + ", ".join(data) + "}"
                    mods = list(first.modifiers)
                    mods.insert(mods.index(first.type), f".v{k}")  # type: ignore[arg-type]
                    addr_op = first.operands[1 if opcode == "ld" else 0]
                    ops = (vec, addr_op) if opcode == "ld" else (addr_op, vec)
                    new = first.with_(modifiers=tuple(mods), operands=ops)
                    at = effs[pos].instr
                    merges.append(([effs[m].instr for m in members] + [at], new))
                    used.update(members)
                    r = pa.address(first).roots
                    if r:
                        roots |= set(r)
                    break
    return merges, roots


class Vectorize(Transform):
    """vec_ld (global and shared loads), vec_st (global stores); vec_sts / vec_lds are kept
    out of the catalogue (see below) but work the same way."""

    exact = True

    def __init__(
        self, name: str, opcode: str, spaces: str | tuple[str, ...], group: str, summary: str
    ):
        self.name, self.opcode, self.group = name, opcode, group
        self.spaces = (spaces,) if isinstance(spaces, str) else tuple(spaces)
        self.summary = summary
        self.safety = "alignment proven by the congruence analysis + the alignment contract"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        loop_text: str | None = None
        loop_why = ""
        if ".global" in self.spaces:
            try:
                loop_text = rewrite_loops(module, fn, ctx, self.opcode)
            except NotApplicable as exc:
                loop_why = str(exc)
                try:
                    loop_text = rewrite_block_loops(module, fn, ctx, self.opcode)
                except NotApplicable as block_exc:
                    loop_why = _loop_reasons(loop_why, str(block_exc))
        if loop_text is not None:
            module = parse(loop_text)
            fn = module.entry(ctx.entry)
        raise_align: dict[str, int] = {}
        if ".shared" in self.spaces:
            for name, var in variables(module, fn).items():
                if var.space == ".shared" and not var.extern and var.align < 16:
                    raise_align[name] = 16
        pa = analyze(module, fn, ctx, raise_align or None)
        merges: list[tuple[list[Instruction], Instruction]] = []
        roots: set[str] = set()
        for space in self.spaces:
            m, r = merge_accesses(module, fn, pa, self.opcode, space)
            merges += m
            if space == ".shared":
                roots |= r
        if not merges:
            if loop_text is not None:
                return loop_text
            why = _why_not(fn, pa, self.opcode, self.spaces)
            if loop_why:
                why += f"; loops: {loop_why}"
            raise NotApplicable(f"{self.name}: {why}")
        return self._merge(module, fn, merges, roots, raise_align)

    def _merge(
        self,
        module: Module,
        fn: Function,
        merges: list[tuple[list[Instruction], Instruction]],
        roots: set[str],
        raise_align: dict[str, int],
    ) -> str:
        ed = module.edit()
        for group, new in merges:
            *members, at = group
            for m in members:
                if m is at:
                    ed.replace(m, new.render())
                else:
                    ed.delete(m)
        raise_shared_alignment(ed, module, fn, roots & set(raise_align))
        return ed.text()


def _loop_reasons(element: str, block: str) -> str:
    """loopvec's reasons without those on loops blockloop recognized as block-stride loops (its
    reason is the one that applies to them), then blockloop's."""
    named = set(re.findall(r"block-stride loop (\S+):", block))
    kept = [
        r
        for r in element.split("; ")
        if not any(r.startswith((f"loop {n} ", f"loop {n}:")) for n in named)
    ]
    return "; ".join([*kept, block])


def _why_not(fn: Function, pa: PointerAnalysis, opcode: str, spaces: tuple[str, ...]) -> str:
    """The first precondition that failed, in words a user can act on."""
    scalars = [i for i in fn.instructions() if i.opcode == opcode and i.space in spaces]
    if not scalars:
        return f"no {opcode}{'/'.join(spaces)} in the kernel"
    if all(i.vector_width > 1 for i in scalars):
        return f"every {opcode}{'/'.join(spaces)} is already a vector access"
    for block in fn.basic_blocks():
        effs = block_effects(block, pa)
        by_base: dict[tuple, list[Effect]] = defaultdict(list)
        for e in effs:
            sp = e.instr.space or ""
            if sp in spaces and _candidate(e.instr, opcode, sp) and e.access is not None:
                by_base[(e.access.base, e.access.version)].append(e)
        for (base, _), group in by_base.items():
            offs = sorted(e.access.offset for e in group)  # type: ignore[union-attr]
            size = access_size(group[0].instr)
            if any(b - a == size for a, b in zip(offs, offs[1:], strict=False)):
                first = min(group, key=lambda e: e.access.offset)  # type: ignore[union-attr]
                align = pa.alignment(first.instr)
                roots = sorted(pa.address(first.instr).roots or ())
                if align >= 2 * size:
                    return (
                        f"adjacent accesses off {base} cannot move together (a fence, an "
                        "aliasing access or a register dependence lies between them)"
                    )
                contract = ", ".join(
                    f"{r} alignment {pa.ctx.align_of(r)}" for r in roots if r in pa.params
                )
                return (
                    f"pointer {contract or 'of unknown origin'} (spec.alignment): adjacent "
                    f"accesses off {base} start only {align}-byte aligned < {2 * size} for "
                    "a v2 (the index arithmetic or spec.divisibility fixes no more low bits)"
                )
    guarded = sum(1 for i in scalars if i.guard is not None)
    return (
        f"no two accesses of one thread are adjacent ({len(scalars)} scalar, {guarded} "
        "predicated): threads access consecutive addresses (coalesced), not each a run"
    )


def raise_shared_alignment(ed: Editor, module: Module, fn: Function, names: set[str]) -> None:
    """Declare the named shared arrays `.align 16` (what the analysis assumed of them)."""
    decls = variables(module, fn)
    for name in sorted(names):
        stmt = decls[name].statement
        text = stmt.text
        if _ALIGN.search(text):
            text = _ALIGN.sub(".align 16", text, count=1)
        else:
            text = text.replace(".shared", ".shared .align 16", 1)
        ed.replace(stmt, text)


VEC_LD = Vectorize(
    "vec_ld",
    "ld",
    (".global", ".shared"),
    "VEC",
    "merge contiguous aligned global and shared loads (v2/v4), shared arrays .align 16",
)
VEC_ST = Vectorize(
    "vec_st", "st", ".global", "VEC", "merge contiguous aligned global stores (v2/v4)"
)
TRANSFORMS = [VEC_LD, VEC_ST]
VEC_LDS = Vectorize(
    "vec_lds",
    "ld",
    ".shared",
    "SMEM",
    "merge contiguous aligned shared loads (v2/v4), shared arrays .align 16",
)
VEC_STS = Vectorize(
    "vec_sts",
    "st",
    ".shared",
    "SMEM",
    "merge contiguous aligned shared stores (v2/v4), shared arrays .align 16",
)
"""Not in the catalogue: `vec_sts` changed no SASS on gemm_tile (ptxas already vectorizes
shared stores whose layout it can see); `vec_lds` is part of `vec_ld` (docs/transforms.md,
"Replacements"). Kept for other kernel families and for tests."""
