"""Which feature groups make a learned policy transfer: the feature ablation of issue 27 item 3.

    python benchmarks/feature_ablation.py                          # LOFO, the default 20 kernels
    python benchmarks/feature_ablation.py --kernels all --out ablation/
    python benchmarks/feature_ablation.py --group kernel           # leave one kernel out
    python benchmarks/feature_ablation.py --smoke                  # 2 CI kernels (CI)

The observation's features come in four groups (`chronos.features.FEATURE_GROUPS`): `ptx`
(the static PTX), `hints` (what the kernel already carries), `sass` (ptxas's registers and
spills, the SASS mix per warp) and `memory` (occupancy, DRAM bytes per FLOP, coalescing,
reuse, hit rates, bound shares, from the cost model's report of the trace). For each feature
set the learners (`--learners`, default RF and BC) are trained with the other groups' columns
zeroed (`bc.feature_groups`) leave-one-family-out (`--group family`) or leave-one-kernel-out,
exactly as `python -m chronos.eval +exp=lofo` trains them, and scored on the held-out
kernels: first-action accuracy and accuracy over every greedy decision (pooled, with n), and
with `--rollouts` each policy's single argmax rollout (guarded and raw geometric-mean
speed-up, the worst raw kernel; this measures new states, so it is the slow part). Greedy's
data set is computed once; every rollout goes through the measurement store.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import add_study_args, smoke_defaults, study_context, write_study

from chronos.features import FEATURE_GROUPS
from chronos.fmt import backend_label, rate
from chronos.measure.costmodel import MODEL_VERSION
from chronos.pipeline.eval.loko import loko
from chronos.pipeline.eval.transfer import geomean_ci
from chronos.pipeline.stages import stage_greedy

OUT = Path("outputs/feature_ablation")


def feature_sets() -> dict[str, list[str]]:
    """Every group, every group but one, the static groups alone, the trace groups alone."""
    sets = {"all": list(FEATURE_GROUPS)}
    sets |= {f"all - {g}": [h for h in FEATURE_GROUPS if h != g] for g in FEATURE_GROUPS}
    sets["ptx + hints (static)"] = ["ptx", "hints"]
    sets["sass + memory (trace)"] = ["sass", "memory"]
    return sets


def score(res: dict[str, Any], learner: str) -> dict[str, Any]:
    """Pooled accuracies and held-out speed-ups of one learner over every fold."""
    rows = [r[learner] for r in res["per_fold"].values() if learner in r]
    n_first = sum(int(r["n_first"]) for r in rows)
    n = sum(int(r["n"]) for r in rows)
    out: dict[str, Any] = {
        "first_action": {
            "value": sum(r["first_action_accuracy"] * r["n_first"] for r in rows) / n_first
            if n_first
            else None,
            "n": n_first,
        },
        "accuracy": {
            "value": sum(r["accuracy"] * r["n"] for r in rows) / n if n else None,
            "n": n,
        },
    }
    kernels = {k: v for r in rows for k, v in r.get("kernels", {}).items()}
    if kernels:
        out["guarded"] = geomean_ci([v["guarded"] for v in kernels.values()])
        out["raw"] = geomean_ci([v["raw"] for v in kernels.values()])
        worst = max(kernels, key=lambda k: kernels[k]["raw"])
        out["worst_raw"] = {"kernel": worst, "speedup": 1.0 / (1.0 + kernels[worst]["raw"])}
        out["measurements"] = sum(v["measurements"] for v in kernels.values()) / len(kernels)
    return out


def _x(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("geomean") is None:
        return "n/a"
    ci = f" [{cell['lo']:.2f}-{cell['hi']:.2f}]" if cell.get("lo") is not None else ""
    return f"{cell['geomean']:.3f}x{ci}"


def markdown(results: dict[str, dict[str, Any]], learners: list[str], unit: str) -> list[str]:
    rolled = [lr for lr in learners if any("guarded" in by[lr] for by in results.values())]
    head = ["feature groups"]
    head += [f"{lr.upper()} first action" for lr in learners]
    head += [f"{lr.upper()} all decisions" for lr in learners]
    for lr in rolled:
        head += [f"{lr.upper()} guarded", f"{lr.upper()} raw", f"{lr.upper()} worst raw"]
    lines = [
        f"Held-out per {unit} fold, pooled over every fold. Accuracy: share of held-out "
        "greedy decisions the learner's masked argmax matches (n states); speed-ups: geometric "
        "mean over held-out kernels of one argmax rollout, guarded (best verified state it "
        "measured) and raw (its final state), 95% bootstrap CI.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for name, by in results.items():
        cells = [name]
        cells += [
            rate(by[lr]["first_action"]["value"], by[lr]["first_action"]["n"]) for lr in learners
        ]
        cells += [rate(by[lr]["accuracy"]["value"], by[lr]["accuracy"]["n"]) for lr in learners]
        for lr in rolled:
            w = by[lr].get("worst_raw")
            worst = f"{w['speedup']:.3f}x {w['kernel']}" if w else "n/a"
            cells += [_x(by[lr].get("guarded")), _x(by[lr].get("raw")), worst]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_args(p, OUT)
    p.add_argument("--learners", default="rf,bc", help="comma-separated loko learners")
    p.add_argument("--sets", default=None, help="comma-separated names of feature_sets()")
    p.add_argument("--rollouts", action="store_true", help="also roll the policies out")
    p.add_argument("--smoke", action="store_true", help="2 CI kernels, two feature sets (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        smoke_defaults(args, OUT, "ablation")
        args.rollouts, args.sets = True, args.sets or "all,ptx + hints (static)"
    learners = [s for s in args.learners.split(",") if s]
    sets = feature_sets()
    if args.sets:
        names = [s.strip() for s in args.sets.split(",")]
        unknown = [s for s in names if s not in sets]
        if unknown:
            p.error(f"unknown feature set(s) {unknown}; known: {list(sets)}")
        sets = {s: sets[s] for s in names}
    ctx = study_context(args)
    results: dict[str, dict[str, Any]] = {}
    try:
        data, _ = stage_greedy(ctx)
        for name, groups in sets.items():
            bc = replace(ctx.cfg.bc, feature_groups=groups)
            run = replace(ctx, cfg=replace(ctx.cfg, bc=bc))
            res = loko(run, data, learners, args.group, rollouts=args.rollouts)
            results[name] = {lr: score(res, lr) for lr in learners}
            print(f"{name}: " + ", ".join(
                f"{lr} first action {results[name][lr]['first_action']['value']:.3f}"
                for lr in learners
                if results[name][lr]["first_action"]["value"] is not None
            ), flush=True)  # fmt: skip
    finally:
        ctx.mdp.backend.close()
    label = backend_label(ctx.backend, ctx.device)
    lines = [f"# Feature ablation ({label}, cost model {MODEL_VERSION})", ""]
    lines += markdown(results, learners, args.group)
    lines += ["", f"git {ctx.provenance.get('git_revision')}, {len(ctx.specs)} kernels"]
    payload = {"backend": label, "group": args.group, "sets": sets, "results": results}
    write_study(args.out, "ablation", lines, payload)


if __name__ == "__main__":
    main()
