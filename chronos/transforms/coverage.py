"""The action-coverage report: what each transform does to every corpus kernel.

Per transform: on how many kernels it is applicable, changes the PTX, changes the SASS
(`.text` hash of the cubin), and the mean change in registers and SASS instructions over
the kernels where it applies. A transform that changes no SASS anywhere is a defect, and so
is one that duplicates another: on every kernel where it applies, the other applies too and
gives the same SASS (the action is then a second name for the same kernel).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from chronos.assemble import PtxasError, assemble_many

from .catalogue import CATALOGUE, action_id, apply_action


@dataclass
class Row:
    name: str
    group: str
    exact: bool
    kernels: int
    applicable: int
    changes_ptx: int
    changes_sass: int
    rejected: int
    d_regs: float
    d_sass: float
    duplicates: tuple[str, ...] = ()


def coverage(specs: list[Any], arch: str = "sm_90", progress: bool = False) -> list[Row]:
    """One Row per transform over `specs` (ptxas runs in parallel and is cached)."""
    base_ptx = [s.ptx() for s in specs]
    results = [
        [apply_action(s, p, i) for s, p in zip(specs, base_ptx, strict=True)]
        for i in range(len(CATALOGUE))
    ]
    texts = list(base_ptx)
    for per in results:
        texts += [r.ptx for r in per if r.changed]
    label = f"ptxas {arch}" if progress else None
    asm = dict(zip(texts, assemble_many(texts, arch=arch, progress=label), strict=True))
    sass_of = [
        {
            s.id: asm[r.ptx].text_sha256[s.entry]
            for s, r in zip(specs, per, strict=True)
            if r.changed and not isinstance(asm[r.ptx], PtxasError)
        }
        for per in results
    ]
    rows = []
    for i, (t, per) in enumerate(zip(CATALOGUE, results, strict=True)):
        app = ptx = sass = rej = 0
        dr: list[int] = []
        ds: list[int] = []
        for s, p, r in zip(specs, base_ptx, per, strict=True):
            if not r.changed:
                continue
            app += 1
            ptx += 1
            a0, a1 = asm[p], asm[r.ptx]
            if isinstance(a1, PtxasError) or isinstance(a0, PtxasError):
                rej += 1
                continue
            e = s.entry
            sass += a0.text_sha256[e] != a1.text_sha256[e]
            dr.append(a1.resources[e].registers - a0.resources[e].registers)
            ds.append(a1.sass_instructions[e] - a0.sass_instructions[e])
        dups = tuple(
            CATALOGUE[j].name
            for j in range(len(CATALOGUE))
            if j != i and _duplicates(sass_of[i], sass_of[j])
        )
        rows.append(
            Row(
                t.name,
                t.group,
                t.exact,
                len(specs),
                app,
                ptx,
                sass,
                rej,
                _mean(dr),
                _mean(ds),
                dups,
            )  # fmt: skip
        )
    return rows


def _duplicates(mine: dict[str, str], other: dict[str, str]) -> bool:
    """Does `other` give the same SASS as `mine` on every kernel where `mine` applies?"""
    return bool(mine) and all(other.get(k) == h for k, h in mine.items())


def _mean(xs: list[int]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def format_table(rows: list[Row], arch: str) -> str:
    head = (
        f"{'id':>2} {'transform':<15} {'group':<8} {'exact':<5} {'applic.':>7} "
        f"{'chg PTX':>7} {'chg SASS':>8} {'rejected':>8} {'Δregs':>7} {'ΔSASS':>8}  same SASS as"
    )
    lines = [
        f"action coverage over {rows[0].kernels if rows else 0} kernels, {arch}",
        head,
        "-" * len(head),
    ]
    for i, r in enumerate(rows):
        lines.append(
            f"{i:>2} {r.name:<15} {r.group:<8} {'yes' if r.exact else 'no':<5} "
            f"{r.applicable:>7} {r.changes_ptx:>7} {r.changes_sass:>8} {r.rejected:>8} "
            f"{r.d_regs:>+7.1f} {r.d_sass:>+8.1f}  {', '.join(r.duplicates) or '-'}"
        )
    return "\n".join(lines)


def show(spec: Any, action: int | str, context: int = 3) -> str:
    """A unified diff of the kernel's PTX before and after one action, with the reason."""
    a = action_id(action)
    base = spec.ptx()
    res = apply_action(spec, base, a)
    diff = difflib.unified_diff(
        base.splitlines(keepends=True),
        res.ptx.splitlines(keepends=True),
        fromfile=f"{spec.id}.ptx",
        tofile=f"{spec.id}.{CATALOGUE[a].name if a < len(CATALOGUE) else 'stop'}.ptx",
        n=context,
    )
    return f"# {res.reason}\n" + "".join(diff)
