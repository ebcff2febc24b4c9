"""Does knowing what a transform does to the PTX make the action-value learner transfer?
(issue 27: the families a held-out fold loses)

    python benchmarks/action_effects.py --kernels all --store S     # LOFO on the whole corpus
    python benchmarks/action_effects.py --group kernel              # leave one kernel out
    python benchmarks/action_effects.py --smoke                     # 2 CI kernels (CI)

Q (agents/qvalue.py) regresses a child's measured gain on (the state's observation, the
action's one-hot): the action enters as a name only, so what Q learnt of `vec_ld` in one family
says nothing of what `vec_ld` does to a kernel of another. Each variant here adds, per (state,
action), what the transform does to the kernel, computed by applying it without measuring:

- `effects`: the static features (the `ptx` and `hints` groups) of the child minus the state's:
  loads merged, widths changed, hints added, instructions removed;
- `relief`: those, plus a roofline estimate of the gain: the state's bound shares (`memory`
  group) with the LSU bound cut by the share of memory instructions the transform removes and
  the issue bound by the share of instructions, -log(new largest bound / old largest bound).

Greedy measured every legal child of every state it visited, so every variant is scored on
greedy's trace and nothing new is measured. Per held-out state where some child gains more
than the step cost: the share of the best child's log-gain that Q's top k (`loko.guided_k`)
contains, which is what a guided search over Q would have found at that state; on the first
states and on all of greedy's states. Folds, learner settings and seed are those of
`python -m chronos.eval +exp=lofo`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from _common import add_study_args, smoke_defaults, study_context, write_study
from sklearn.model_selection import LeaveOneGroupOut

from agents.bc import BCData, feature_keep
from agents.qvalue import QConfig, QModel, q_regressor, q_targets
from chronos.features import FEATURE_NAMES, extract, group_mask
from chronos.features.extract import BOUNDS
from chronos.fmt import backend_label
from chronos.measure.costmodel import MODEL_VERSION
from chronos.pipeline.eval.loko import group_of
from chronos.pipeline.stages import Context, stage_greedy

OUT = Path("outputs/action_effects")
STATIC = group_mask(["ptx", "hints"])
"""The features a transform's effect is read from: computable from the PTX alone."""
STATIC_NAMES = [n for n, keep in zip(FEATURE_NAMES, STATIC, strict=True) if keep]
VARIANTS = ("Q", "Q + effects", "Q + effects + relief")
MEMORY_FRACS = ("global_load_frac", "global_store_frac", "shared_load_frac", "shared_store_frac")


def static_effects(ctx: Context, data: BCData) -> tuple[np.ndarray, np.ndarray]:
    """(S, D): each row's static features (N, n_static), and per legal transform the child's
    minus the state's (N, n_actions, n_static; 0 where illegal or a no-op). Each kernel's
    states are rebuilt by replaying greedy's moves through the MDP (store hits)."""
    by_id = {s.id: s for s in ctx.specs}
    mdp, stop = ctx.mdp, data.mask.shape[1] - 1
    S = np.zeros((len(data), int(STATIC.sum())), np.float32)
    D = np.zeros((len(data), data.mask.shape[1], S.shape[1]), np.float32)
    for kid in dict.fromkeys(str(k) for k in data.kernel):
        rows = np.flatnonzero(data.kernel == kid)
        spec = by_id[kid]
        state = mdp.initial(spec)
        for r in rows[np.argsort(data.step[rows])]:
            if not np.array_equal(mdp.mask(state), data.mask[r]):
                raise RuntimeError(f"{kid} step {data.step[r]}: the replayed state differs")
            S[r] = extract(state.ptx, entry=spec.entry)[STATIC]
            for a in np.flatnonzero(data.mask[r][:stop]):
                child, changed, _ = mdp.apply(state, int(a))
                if changed and child != state.ptx:
                    D[r, a] = extract(child, entry=spec.entry)[STATIC] - S[r]
            if data.action[r] != stop:
                state = mdp.step(state, int(data.action[r])).state
    return S, D


def relief(obs: np.ndarray, static: np.ndarray, effect: np.ndarray) -> np.ndarray:
    """(M,) roofline gain estimate of each (state, transform): the largest bound before over the
    largest after, with LSU and issue work cut by the static share the transform removes."""

    def counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        col = {n: x[:, i] for i, n in enumerate(STATIC_NAMES)}
        n = np.expm1(col["log_instructions"])
        return n, n * sum(col[f] for f in MEMORY_FRACS)

    (ni, nm), (ci, cm) = counts(static), counts(static + effect)
    cut_lsu = np.where(nm > 0, 1 - cm / np.maximum(nm, 1e-9), 0.0)
    cut_issue = np.where(ni > 0, 1 - ci / np.maximum(ni, 1e-9), 0.0)
    share = {b: np.clip(obs[:, FEATURE_NAMES.index(f"{b}_share")], 0, None) for b in BOUNDS}
    old = np.max(np.stack(list(share.values())), 0)
    share["lsu"], share["issue"] = share["lsu"] * (1 - cut_lsu), share["issue"] * (1 - cut_issue)
    new = np.max(np.stack(list(share.values())), 0)
    return np.where(old > 0, np.log(np.maximum(old, 1e-9) / np.maximum(new, 1e-9)), 0.0)


def rows(
    variant: str, base: QModel, data: BCData, S: np.ndarray, D: np.ndarray, r: np.ndarray,
    a: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Regressor inputs of (row r, action a) pairs under `variant`: Q's own (`base.rows`),
    then the variant's columns."""
    parts = [base.rows(data.obs[r], a)]
    if variant != "Q":
        parts.append(D[r, a])
    if variant == "Q + effects + relief":
        parts.append(relief(data.obs[r], S[r], D[r, a])[:, None].astype(np.float32))
    return np.concatenate(parts, axis=1)


def captured(
    target: np.ndarray, mask: np.ndarray, pred: np.ndarray, k: int, step_cost: float
) -> tuple[float, float, int]:
    """(best log-gain inside the top k, best log-gain, states counted) over the states where
    some legal child gains more than the step cost."""
    legal = mask[:, :-1]
    gain = np.where(legal, np.nan_to_num(target[:, :-1], nan=0.0), -np.inf)
    best = gain.max(1)
    keep = best > step_cost
    score = np.where(legal, pred, -np.inf)
    order = np.lexsort((np.arange(score.shape[1])[None].repeat(len(score), 0), -score), axis=1)
    top = np.take_along_axis(gain, order[:, :k], 1).max(1)
    return float(np.clip(top[keep], 0, None).sum()), float(best[keep].sum()), int(keep.sum())


def study(ctx: Context, data: BCData, group: str) -> dict[str, dict[str, Any]]:
    """Per held-out group and variant: top-k capture on first states and on all states."""
    S, D = static_effects(ctx, data)
    by_id = {s.id: s for s in ctx.specs}
    groups = np.asarray([group_of(by_id[str(k)], group) for k in data.kernel], dtype=str)
    q: QConfig = ctx.cfg.q
    target = q_targets(data, q.invalid_gain)
    keep = feature_keep(data, ctx.cfg.bc.feature_groups)
    n_actions = data.mask.shape[1]
    k, step_cost = ctx.cfg.loko.guided_k, ctx.mdp.step_cost
    out: dict[str, dict[str, Any]] = {}
    for tr, te in LeaveOneGroupOut().split(data.obs, groups=groups):
        name = str(groups[te[0]])
        r, a = np.nonzero(~np.isnan(target[tr]))
        r = tr[r]
        hr, ha = np.nonzero(data.mask[te][:, :-1])
        first = data.step[te] == 0
        out[name] = {}
        for variant in VARIANTS:
            model = QModel(q_regressor(q, ctx.cfg.seed), keep, n_actions, n_actions - 1)
            model.reg.fit(rows(variant, model, data, S, D, r, a), target[r, a])
            pred = np.full((len(te), n_actions - 1), -np.inf)
            pred[hr, ha] = model.reg.predict(rows(variant, model, data, S, D, te[hr], ha))
            cells = {}
            for scope, sel in (("first", first), ("all", np.ones_like(first))):
                got, best, n = captured(
                    target[te][sel], data.mask[te][sel], pred[sel], k, step_cost
                )
                cells[scope] = {"captured": got, "best": best, "states": n}
            out[name][variant] = cells
        print(f"{name}: " + ", ".join(
            f"{v} {_share(out[name][v]['first'])}" for v in VARIANTS
        ), flush=True)  # fmt: skip
    return out


def _share(cell: dict[str, Any]) -> str:
    return "n/a" if cell["best"] <= 0 else f"{cell['captured'] / cell['best']:.0%}"


def markdown(res: dict[str, dict[str, Any]], k: int, label: str, unit: str) -> list[str]:
    lines = [
        f"Share of the best child's log-gain inside Q's top {k} (per {unit} fold; {label}; "
        "first states / all of greedy's states where a child gains more than the step cost; "
        "n: first states counted).",
        "",
        "| held out | n | " + " | ".join(VARIANTS) + " |",
        "|---|---:|" + "---:|" * len(VARIANTS),
    ]
    for name, row in res.items():
        n = row[VARIANTS[0]]["first"]["states"]
        cells = [f"{_share(row[v]['first'])} / {_share(row[v]['all'])}" for v in VARIANTS]
        lines.append(f"| {name} | {n} | " + " | ".join(cells) + " |")
    pooled = []
    for v in VARIANTS:
        shares = [
            row[v]["first"]["captured"] / row[v]["first"]["best"]
            for row in res.values()
            if row[v]["first"]["best"] > 0
        ]
        pooled.append(f"{np.mean(shares):.0%} (min {min(shares):.0%})" if shares else "n/a")
    lines.append("| **mean over folds** (first) | | " + " | ".join(pooled) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_study_args(p, OUT)
    p.add_argument("--smoke", action="store_true", help="2 CI kernels, leave one kernel out (CI)")
    args = p.parse_args(argv)
    if args.smoke:
        smoke_defaults(args, OUT, "action_effects")
    ctx = study_context(args)
    try:
        data, _ = stage_greedy(ctx)
        res = study(ctx, data, args.group)
    finally:
        ctx.mdp.backend.close()
    label = backend_label(ctx.backend, ctx.device)
    k = ctx.cfg.loko.guided_k
    lines = [f"# Action effects for Q ({label}, cost model {MODEL_VERSION})", ""]
    lines += markdown(res, k, label, args.group)
    lines += ["", f"git {ctx.provenance.get('git_revision')}, {len(ctx.specs)} kernels"]
    write_study(
        args.out, "effects", lines, {"backend": label, "group": args.group, "k": k, "folds": res}
    )


if __name__ == "__main__":
    main()
