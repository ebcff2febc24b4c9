"""Can a learned critic make a policy's own first move safe on kernels it never saw? (issue 27,
item 2: raw, unguarded, no held-out kernel more than 2% slower)

    python benchmarks/stop_safety.py                         # LOFO, the default 20 kernels
    python benchmarks/stop_safety.py --kernels all --out safety/
    python benchmarks/stop_safety.py --group kernel          # leave one kernel out
    python benchmarks/stop_safety.py --smoke                 # 2 CI kernels (CI)

Greedy measured every legal child of every state it visited, so the first move of every
kernel has a measured outcome for every action: this study needs no rollout and measures
nothing new. Per fold (leave one family out, or one kernel), BC's MLP and Q
(agents/qvalue.py) are trained on the other kernels exactly as `python -m chronos.eval
+exp=lofo` trains them. On each held-out kernel's first state BC proposes its argmax; a gate
lets the move through only if Q's predicted gain for it exceeds a threshold, and stops
otherwise. For each gate (none; Q > 0; Q > the step cost) and for Q's own argmax, the table
counts first moves that measured more than 2% slower (harmful), moves that measured a gain
above the step cost (good) and how many of those the gate kept, and the share of the summed
first-move log-gain of BC's proposals that survives. A gate that removes the harm but keeps
little of the gain shows the trade-off the policies' own stops face out of distribution.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_study_args, smoke_defaults, study_context, write_study
from sklearn.model_selection import LeaveOneGroupOut

from agents.bc import BCData, mlp_predict, train_mlp
from agents.qvalue import q_predict, q_targets, train_q
from chronos.fmt import backend_label
from chronos.measure.costmodel import MODEL_VERSION
from chronos.pipeline.eval.loko import group_of
from chronos.pipeline.stages import Context, stage_greedy

OUT = Path("outputs/stop_safety")
HARM = -0.02
"""A first move is harmful when its measured log speed-up is below this (2% slower)."""


def first_moves(ctx: Context, data: BCData, group: str) -> list[dict[str, Any]]:
    """Per held-out kernel: BC's first move, its measured gain, Q's prediction for it, Q's own
    argmax and that one's measured gain."""
    by_id = {s.id: s for s in ctx.specs}
    groups = np.asarray([group_of(by_id[str(k)], group) for k in data.kernel], dtype=str)
    target = q_targets(data, ctx.cfg.q.invalid_gain)
    stop = data.mask.shape[1] - 1
    rows: list[dict[str, Any]] = []
    for tr, te in LeaveOneGroupOut().split(data.obs, data.action, groups=groups):
        train_d = data.subset(tr)
        first = te[data.step[te] == 0]
        if len(first) == 0:
            continue
        mlp = train_mlp(train_d, ctx.cfg.bc, ctx.cfg.seed)
        q = train_q(train_d, ctx.cfg.q, ctx.cfg.seed, ctx.cfg.bc.feature_groups)
        obs, mask = data.obs[first], data.mask[first]
        bc = mlp_predict(mlp, obs, mask)
        pred = q.predict_gains(obs, mask)
        own = q_predict(q, obs, mask, ctx.cfg.q.stop_threshold)
        for j, i in enumerate(first):

            def measured(a: int, i: int = int(i)) -> float:
                return 0.0 if a == stop else float(np.nan_to_num(target[i, a], nan=0.0))

            rows.append(
                {
                    "kernel": str(data.kernel[i]),
                    "fold": str(groups[i]),
                    "bc_action": int(bc[j]),
                    "bc_gain": measured(int(bc[j])),
                    "q_pred": float(pred[j, bc[j]]) if bc[j] != stop else 0.0,
                    "q_action": int(own[j]),
                    "q_gain": measured(int(own[j])),
                    "best_gain": max(0.0, float(np.nanmax(target[i, :stop], initial=0.0))),
                }
            )
    return rows


def tabulate(rows: list[dict[str, Any]], step_cost: float) -> list[dict[str, Any]]:
    """One line per policy: BC ungated, BC gated by Q at 0 and at the step cost, Q alone."""
    bc_gain = np.array([r["bc_gain"] for r in rows])
    q_pred = np.array([r["q_pred"] for r in rows])
    total = float(bc_gain[bc_gain > 0].sum())
    best = float(sum(r["best_gain"] for r in rows))
    out = []
    policies = {
        "BC (no gate)": bc_gain,
        "BC, Q > 0": np.where(q_pred > 0, bc_gain, 0.0),
        f"BC, Q > step cost ({step_cost})": np.where(q_pred > step_cost, bc_gain, 0.0),
        "Q alone (argmax)": np.array([r["q_gain"] for r in rows]),
    }
    good_bc = bc_gain > step_cost
    for name, g in policies.items():
        kept = g[good_bc] > step_cost if name.startswith("BC") else None
        out.append(
            {
                "policy": name,
                "kernels": len(rows),
                "harmful": int(np.sum(g < HARM)),
                "good_kept": None if kept is None else f"{int(kept.sum())} of {int(good_bc.sum())}",
                "gain_share_of_bc": float(g[g > 0].sum() / total) if total > 0 else None,
                "gain_share_of_best": float(g.sum() / best) if best > 0 else None,
                "net_log_gain": float(g.sum()),
            }
        )
    return out


def markdown(table: list[dict[str, Any]], label: str, unit: str) -> list[str]:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.0%}"

    lines = [
        f"First move on each held-out kernel (per {unit} fold; {label}): measured outcome of the "
        f"move each policy makes. Harmful: more than {-HARM:.0%} slower. Good kept: of BC's "
        "proposals that gain more than the step cost, how many the gate lets through. Gain "
        "share: positive first-move log-gain kept, over BC's ungated; over the best first move "
        "(net, harm included).",
        "",
        "| policy | kernels | harmful | good kept | gain share of BC's | net share of best |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table:
        lines.append(
            f"| {r['policy']} | {r['kernels']} | {r['harmful']} | {r['good_kept'] or 'n/a'} | "
            f"{pct(r['gain_share_of_bc'])} | {pct(r['gain_share_of_best'])} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_args(p, OUT)
    p.add_argument("--smoke", action="store_true", help="2 CI kernels, leave one kernel out (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        smoke_defaults(args, OUT, "stop_safety")
    ctx = study_context(args)
    try:
        data, _ = stage_greedy(ctx)
        rows = first_moves(ctx, data, args.group)
    finally:
        ctx.mdp.backend.close()
    table = tabulate(rows, ctx.mdp.step_cost)
    label = backend_label(ctx.backend, ctx.device)
    lines = [f"# Stop safety of the first move ({label}, cost model {MODEL_VERSION})", ""]
    lines += markdown(table, label, args.group)
    lines += ["", f"git {ctx.provenance.get('git_revision')}, {len(ctx.specs)} kernels"]
    payload = {"backend": label, "group": args.group, "table": table, "kernels": rows}
    write_study(args.out, "safety", lines, payload)


if __name__ == "__main__":
    main()
