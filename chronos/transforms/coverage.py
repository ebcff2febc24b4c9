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


def coverage(specs: list[Any], arch: str = "sm_80", progress: bool = False) -> list[Row]:
    """One Row per transform over `specs` (ptxas runs in parallel and is cached)."""
    return measure(specs, arch, progress).rows


@dataclass
class Coverage:
    """The rows, and per action the ids of the kernels whose SASS it changes."""

    rows: list[Row]
    changed: list[set[str]]
    families: dict[str, str]


def measure(specs: list[Any], arch: str = "sm_80", progress: bool = False) -> Coverage:
    """Rows plus the per-kernel SASS-change matrix (what the per-family table reads)."""
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
    changed: list[set[str]] = []
    for i, (t, per) in enumerate(zip(CATALOGUE, results, strict=True)):
        app = ptx = sass = rej = 0
        hit: set[str] = set()
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
            if a0.text_sha256[e] != a1.text_sha256[e]:
                sass += 1
                hit.add(s.id)
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
        changed.append(hit)
    return Coverage(rows, changed, {s.id: s.family for s in specs})


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


@dataclass(frozen=True)
class FamilyRow:
    """Per family: kernels, actions changing SASS on some variant, mean per kernel."""

    family: str
    kernels: int
    live_actions: tuple[str, ...]
    mean_per_kernel: float


def per_family(cov: Coverage) -> list[FamilyRow]:
    """How many actions change SASS on some kernel of each family, and on an average one."""
    out = []
    for fam in sorted(set(cov.families.values())):
        ids = {k for k, f in cov.families.items() if f == fam}
        live = tuple(r.name for r, hit in zip(cov.rows, cov.changed, strict=True) if hit & ids)
        per_kernel = [sum(k in hit for hit in cov.changed) for k in ids]
        out.append(FamilyRow(fam, len(ids), live, _mean(per_kernel)))
    return out


def format_families(cov: Coverage, arch: str, exclude: tuple[str, ...] = ("gemm_tile",)) -> str:
    """The per-family table: a row per family, a column per action (kernels it changes)."""
    fams = per_family(cov)
    names = [r.name for r in cov.rows]
    head = f"{'family':<11} {'kern':>4} {'live':>4} {'mean':>5}  " + " ".join(
        f"{i:>2}" for i in range(len(names))
    )
    lines = [f"SASS-changing actions per family, {arch} (cell: kernels changed)", head]
    lines.append("-" * len(head))
    for f in fams:
        ids = {k for k, fam in cov.families.items() if fam == f.family}
        cells = " ".join(f"{len(hit & ids):>2}" for hit in cov.changed)
        lines.append(
            f"{f.family:<11} {f.kernels:>4} {len(f.live_actions):>4} {f.mean_per_kernel:>5.1f}  "
            + cells
        )
    rest = [k for k, fam in cov.families.items() if fam not in exclude]
    if rest:
        mean = _mean([sum(k in hit for hit in cov.changed) for k in rest])
        lines.append(
            f"mean SASS-changing actions per kernel outside {', '.join(exclude)}: "
            f"{mean:.2f} over {len(rest)} kernels"
        )
    lines.append("actions: " + ", ".join(f"{i} {n}" for i, n in enumerate(names)))
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


STRUCTURAL = ("vec_ld", "vec_st", "cp_async", "split_acc", "reorder_cp")
"""The transforms that restructure code (issue 31); the rest set hints, bounds or rounding."""


def why_not(specs: list[Any], names: tuple[str, ...] = STRUCTURAL) -> str:
    """Per transform in `names`: the kernels it applies to, and for every other kernel one line
    naming the unmet condition (the transform's own NotApplicable reason)."""
    lines = []
    for name in names:
        i = action_id(name)
        applies, reasons = [], []
        for spec in specs:
            res = apply_action(spec, spec.ptx(), i)
            if res.changed:
                applies.append(spec.id)
            else:
                reasons.append(f"  {spec.id:<40} {res.reason}")
        lines.append(f"{name}: applies to {len(applies)} of {len(specs)}: {', '.join(applies)}")
        lines += reasons
    return "\n".join(lines) + "\n"


def info(spec: Any) -> str:
    """Every action's verdict on the kernel at its initial state: applies, or why not."""
    base = spec.ptx()
    lines = [f"# {spec.id} ({spec.family}), {spec.target}"]
    for i, t in enumerate(CATALOGUE):
        res = apply_action(spec, base, i)
        verdict = "applies" if res.changed else "masked "
        kind = "exact" if t.exact else "rounding"
        lines.append(f"{i:>2} {t.name:<15} {t.group:<8} {kind:<8} {verdict}  {res.reason}")
    return "\n".join(lines) + "\n"
