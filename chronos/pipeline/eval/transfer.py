"""The generalization table of a LOKO/LOFO study (issue 27): does a learned policy beat running
search on a kernel it never saw?

Per held-out fold and pooled over every held-out kernel: the geometric-mean speed-up of BC's,
Q's (the action-value learner, agents/qvalue.py) and GRPO's single argmax rollout, guarded
(the best verified state the rollout measured, the input included, so never below 1x) and raw
(its final state), and of greedy search over BC's or Q's top-k transforms per step
(bc_guided, q_guided: a learned prior spending a search's budget; bcq_guided: over the union
of both learners' top-k), against greedy's on the
same kernels; the distinct states each measured
(what it costs on an empty store); and RF's, BC's and Q's first-action accuracy. Intervals are
95% percentile bootstraps over the held-out kernels (log speed-ups resampled with replacement,
`BOOT_RESAMPLES` draws, seed `BOOT_SEED`), so they say how much the figure depends on which
kernels were held out; a fold of one kernel has none.
Accuracies carry a 95% Wilson interval (chronos.fmt.rate).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from chronos.fmt import NA, rate

BOOT_RESAMPLES = 2000
BOOT_SEED = 0
CI_METHOD = (
    f"95% percentile bootstrap over held-out kernels ({BOOT_RESAMPLES} resamples, seed "
    f"{BOOT_SEED}) of the mean log speed-up"
)
# learners whose first-action accuracy the table shows
ACCURACY = ("rf", "bc", "q")
# (column, learner, key in the per-kernel rollout row)
SERIES = (
    ("greedy", "greedy", "improvement"),
    ("BC guarded", "bc", "guarded"),
    ("BC raw", "bc", "raw"),
    ("Q guarded", "q", "guarded"),
    ("Q raw", "q", "raw"),
    ("GRPO guarded", "grpo", "guarded"),
    ("GRPO raw", "grpo", "raw"),
    ("BC-guided top-k", "bc_guided", "guarded"),
    ("Q-guided top-k", "q_guided", "guarded"),
    ("BC+Q-guided top-k", "bcq_guided", "guarded"),
)


def geomean_ci(improvements: list[float]) -> dict[str, Any]:
    """Geometric-mean speed-up (base/final) of `improvements` (final/base - 1) with its 95%
    bootstrap interval over the kernels (None with fewer than two)."""
    logs = np.asarray([-math.log1p(i) for i in improvements], dtype=float)
    n = len(logs)
    if n == 0:
        return {"n": 0, "geomean": None, "lo": None, "hi": None}
    out: dict[str, Any] = {"n": n, "geomean": float(np.exp(logs.mean())), "lo": None, "hi": None}
    if n > 1:
        rng = np.random.default_rng(BOOT_SEED)
        means = logs[rng.integers(0, n, size=(BOOT_RESAMPLES, n))].mean(axis=1)
        lo, hi = np.percentile(means, [2.5, 97.5])
        out["lo"], out["hi"] = float(np.exp(lo)), float(np.exp(hi))
    return out


def _series(row: dict[str, Any], learner: str, key: str) -> dict[str, tuple[float, int]]:
    """kernel -> (improvement, measurements) of one learner's column in one fold."""
    if learner == "greedy":
        rows = row.get("greedy", {})
    else:
        rows = row.get(learner, {}).get("kernels", {})
    return {k: (float(v[key]), int(v.get("measurements", 0))) for k, v in rows.items()}


def _cell(vals: dict[str, tuple[float, int]], kernels: list[str]) -> dict[str, Any]:
    """Geomean and CI over the kernels that have a value, and their mean measurements."""
    present = [k for k in kernels if k in vals]
    out = geomean_ci([vals[k][0] for k in present])
    out["measurements"] = float(np.mean([vals[k][1] for k in present])) if present else None
    return out


def _accuracy(rows: list[dict[str, Any]], learner: str) -> dict[str, Any]:
    """First-action accuracy pooled over the folds' held-out first states."""
    cells = [r[learner] for r in rows if learner in r and r[learner].get("n_first")]
    n = sum(int(c["n_first"]) for c in cells)
    hits = sum(float(c["first_action_accuracy"]) * int(c["n_first"]) for c in cells)
    return {"value": hits / n if n else None, "n": n}


def _block(rows: list[dict[str, Any]], kernels: list[str]) -> dict[str, Any]:
    """One table row: every series over `kernels` of `rows`, and RF/BC/Q first-action accuracy."""
    merged: dict[str, dict[str, tuple[float, int]]] = {}
    for col, learner, key in SERIES:
        merged[col] = {}
        for r in rows:
            merged[col].update(_series(r, learner, key))
    out: dict[str, Any] = {"kernels": len(kernels)}
    out["speedup"] = {col: _cell(merged[col], kernels) for col, _, _ in SERIES if merged[col]}
    out["first_action_accuracy"] = {lr: _accuracy(rows, lr) for lr in ACCURACY}
    return out


def transfer_table(loko: dict[str, Any]) -> dict[str, Any]:
    """Per fold and pooled: speed-ups with CIs, measurements and first-action accuracies."""
    folds = loko.get("per_fold", {})
    per_fold = {name: _block([row], list(row.get("kernels", []))) for name, row in folds.items()}
    every = [k for row in folds.values() for k in row.get("kernels", [])]
    return {
        "group": loko.get("group", "kernel"),
        "ci": CI_METHOD,
        "headline": "guarded",
        "per_fold": per_fold,
        "pooled": _block(list(folds.values()), every),
    }


def _fmt(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("geomean") is None:
        return NA
    ci = f" [{cell['lo']:.2f}-{cell['hi']:.2f}]" if cell.get("lo") is not None else ""
    meas = f", {cell['measurements']:.0f} meas." if cell.get("measurements") is not None else ""
    return f"{cell['geomean']:.2f}x{ci}{meas}"


def _md_row(name: str, block: dict[str, Any]) -> str:
    cols = [_fmt(block["speedup"].get(col)) for col, _, _ in SERIES]
    acc = block["first_action_accuracy"]
    accs = [rate(acc[lr]["value"], acc[lr]["n"]) for lr in ACCURACY]
    return f"| {name} | {block['kernels']} | " + " | ".join(cols + accs) + " |"


def transfer_markdown(table: dict[str, Any], label: str) -> list[str]:
    """The table as markdown lines, with what the numbers mean."""
    unit = table["group"]
    lines = [
        f"Held-out speed-up per {unit} fold and pooled ({label}): geometric mean over the "
        f"held-out kernels, base/final cycles, with the {table['ci']} in brackets, and the "
        "mean distinct states measured per kernel (greedy's search included). **Guarded** "
        "(the headline) is the best verified state a policy's single argmax rollout measured, "
        "the untransformed kernel included, so never below 1.00x; **raw** is the rollout's "
        "final state. **BC-guided** and **Q-guided top-k** are greedy search that measures only "
        "the k transforms the BC policy (or Q) ranks highest at each step (`loko.guided_k`); "
        "**BC+Q-guided** measures the union of both learners' top k. "
        "First-action accuracy: share of held-out kernels whose argmax first "
        "action is greedy's (95% Wilson interval).",
        "",
        f"| held-out {unit} | n kernels | "
        + " | ".join(c for c, _, _ in SERIES)
        + " | RF first action | BC first action | Q first action |",
        "|---|---:|" + "---:|" * (len(SERIES) + len(ACCURACY)),
    ]
    lines += [_md_row(name, b) for name, b in sorted(table["per_fold"].items())]
    lines.append(_md_row("**pooled**", table["pooled"]))
    return lines


def write_transfer(loko: dict[str, Any], out_dir: Path, label: str) -> dict[str, Any]:
    """transfer.json and transfer.md in `out_dir`; prints the markdown table."""
    table = transfer_table(loko)
    table["backend"] = label
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "transfer.json").write_text(json.dumps(table, indent=2))
    lines = transfer_markdown(table, label)
    (out_dir / "transfer.md").write_text("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines) + "\n", flush=True)
    return table
