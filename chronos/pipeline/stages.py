"""The pipeline's stages: greedy data set → BC → GRPO → eval, over one shared `Context`.

Each stage writes into the run dir and is skipped (or reloaded) when its output is already
there, so re-running the same command resumes an interrupted run. LOKO and the report
(chronos.pipeline.eval) are handed to the runner as `EvalStages`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents import checkpoint as ckpt
from agents.bc import BCData, BCResult, mlp_predict, run_bc
from agents.greedy import (
    dataset_arrays,
    dataset_key,
    improvement_table,
    load_dataset,
    run_greedy,
    save_dataset,
)
from agents.policy import PolicyMLP
from chronos.fmt import backend_label
from chronos.measure.backends.cached import backend_harness_version
from chronos.pipeline.config import TrainConfig, kernel_ids
from envs.mdp import TransformMDP

log = logging.getLogger("chronos.train")


@dataclass(frozen=True)
class EvalStages:
    """LOKO and the report (chronos.pipeline.eval), handed in by the entry points."""

    loko: Callable[[Any, BCData, list[str]], dict[str, Any]]
    run_loko: Callable[[Any, BCData], dict[str, Any]]
    write_report: Callable[[Path], Path]


@dataclass
class Context:
    """What the stages share: config, run dir, kernels, the MDP and its backend."""

    cfg: TrainConfig
    run_dir: Path
    specs: list[Any]
    mdp: TransformMDP
    provenance: dict[str, Any]
    times: dict[str, float] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        return str(self.provenance["backend"])

    @property
    def device(self) -> str:
        return str(self.provenance["device"])


def open_context(cfg: TrainConfig, run_dir: Path) -> Context:
    from chronos.measure import make_backend
    from chronos.measure.store import default_store_path
    from kernels import load

    run_dir.mkdir(parents=True, exist_ok=True)
    specs = [load(k) for k in kernel_ids(cfg.kernels)]
    store = cfg.backend.store
    if store == "default" or (store is None and cfg.backend.name == "replay"):
        store = str(default_store_path())
    elif store is not None:
        store = str(Path(store).expanduser().resolve())
    name, options = cfg.cluster.backend_args(cfg.backend)
    backend = make_backend(name, store=store, **options)
    reason = getattr(backend, "auto_reason", None)
    if reason:
        log.info("measurement backend %s", reason)
    mdp = TransformMDP(backend, cfg.env.max_steps, reward=cfg.env.make_reward())
    device = str(getattr(backend, "device", ""))
    prov = ckpt.provenance(
        config=asdict(cfg),
        specs=specs,
        backend=str(getattr(backend, "name", cfg.backend.name)),
        device=device,
        seed=cfg.seed,
    )
    prov["backend_reason"] = reason
    prov["store"] = store or "memory"
    prov["families"] = {s.id: s.family for s in specs}
    prov["config"]["backend"]["store"] = store
    (run_dir / "provenance.json").write_text(json.dumps(prov, indent=2, default=str))
    return Context(cfg, run_dir, specs, mdp, prov)


# -- stages ----------------------------------------------------------------------------------


def stage_greedy(ctx: Context) -> tuple[BCData, dict[str, Any]]:
    """Greedy data set: from its cache when present (keyed by backend, device, kernel PTX)."""
    g = ctx.cfg.greedy
    harness = backend_harness_version(ctx.mdp.backend)
    key = dataset_key(ctx.specs, ctx.backend, ctx.device, g.min_gain, harness)
    path = Path(g.dataset_dir).expanduser() / f"greedy-{ctx.backend}-{key}"
    local = ctx.run_dir / "greedy" / "greedy"
    if local.with_suffix(".json").exists() and not g.recompute:
        return load_dataset(local)
    if path.with_suffix(".json").exists() and not g.recompute:
        log.info("greedy data set from cache %s", path)
        data, summary = load_dataset(path)
    else:
        results = run_greedy(ctx.mdp, ctx.specs, g.min_gain, ctx.cfg.progress)
        meta = {
            "backend": ctx.backend,
            "device": ctx.device,
            "estimate": ctx.backend == "emulated",
            "min_gain": g.min_gain,
            "harness_version": harness,
            "key": key,
            "kernels": ctx.provenance["kernels"],
            "git_revision": ctx.provenance["git_revision"],
        }
        save_dataset(path, results, meta)
        data, summary = load_dataset(path)
    save_dataset_copy(data, summary, local)
    table = improvement_table(summary["kernels"])
    title = f"Greedy v2, cycles from {backend_label(ctx.backend, ctx.device)}"
    (ctx.run_dir / "greedy" / "improvement.md").write_text(f"# {title}\n\n{table}\n")
    print(f"\n{title}:\n{table}\n")
    return data, summary


def save_dataset_copy(data: BCData, summary: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path.with_suffix(".npz"), **dataset_arrays(data))
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2))


def stage_bc(ctx: Context, data: BCData) -> tuple[PolicyMLP, dict[str, float]]:
    """BC warm start (and RF baseline); reloaded from bc.pt when the run dir has it."""
    path = ctx.run_dir / "checkpoints" / "bc.pt"
    if ctx.cfg.resume != "false" and path.exists():
        payload = ckpt.load(path)
        return ckpt.load_policy(payload), payload["metrics"]
    res: BCResult = run_bc(data, ctx.cfg.bc, ctx.cfg.seed)
    ckpt.save(
        path,
        ckpt.policy_payload(
            res.policy,
            metrics=res.metrics,
            train_kernels=res.train_kernels,
            heldout_kernels=res.heldout_kernels,
            provenance=ctx.provenance,
        ),
    )
    (ctx.run_dir / "bc_metrics.json").write_text(json.dumps(res.metrics, indent=2))
    log.info("BC: %s", {k: round(v, 3) for k, v in res.metrics.items() if "accuracy" in k})
    return res.policy, res.metrics


def stage_grpo(
    ctx: Context, bc_policy: PolicyMLP, data: BCData, greedy: dict[str, Any]
) -> tuple[PolicyMLP, Any]:
    """GRPO from the BC policy; its self-imitation buffer starts from greedy's sequences."""
    from agents.grpo import train
    from agents.self_imitation import greedy_buffer
    from chronos.stores.trajectories import TrajectoryLog

    ids = [s.id for s in ctx.specs]
    buffer = greedy_buffer(ctx.cfg.grpo.self_imitation, ctx.mdp, data, greedy["kernels"], ids)
    policy = ckpt.load_policy(ckpt.policy_payload(bc_policy))
    ref = ckpt.load_policy(ckpt.policy_payload(bc_policy))
    with TrajectoryLog(ctx.run_dir / "trajectories.sqlite") as traj:
        return train(
            ctx.cfg.grpo,
            mdp=ctx.mdp,
            specs=ctx.specs,
            policy=policy,
            ref=ref,
            run_dir=ctx.run_dir,
            seed=ctx.cfg.seed,
            provenance=ctx.provenance,
            traj=traj,
            resume=ctx.cfg.resume != "false",
            progress=ctx.cfg.progress,
            tensorboard=ctx.cfg.tensorboard,
            stop_after_epoch=ctx.cfg.stop_after_epoch,
            buffer=buffer,
        )


def first_action_accuracy(policy: PolicyMLP, data: BCData, kernels: list[str] | None) -> float:
    """Share of kernels whose argmax first action is greedy's first action."""
    first = data.step == 0
    if kernels is not None:
        first &= np.isin(data.kernel, kernels)
    if not first.any():
        return float("nan")
    pred = mlp_predict(policy, data.obs[first], data.mask[first])
    return float((pred == data.action[first]).mean())


def stage_eval(
    ctx: Context,
    data: BCData,
    greedy: dict[str, Any],
    bc_policy: PolicyMLP,
    bc_metrics: dict[str, float],
    grpo_state: Any,
    evals: EvalStages,
) -> dict[str, Any]:
    """Final numbers for the success-criteria table, written to eval/summary.json."""
    from agents.grpo import evaluate
    from agents.self_imitation import TIE as RETURN_TIE
    from agents.self_imitation import greedy_returns

    best = ctx.run_dir / "checkpoints" / "best.pt"
    last = ctx.run_dir / "checkpoints" / "last.pt"
    src = best if best.exists() else last
    policy = ckpt.load_policy(src) if src.exists() else bc_policy
    ev = evaluate(ctx.mdp, ctx.specs, policy, epoch=-1)
    ev_bc = evaluate(ctx.mdp, ctx.specs, bc_policy, epoch=-1)
    gk = {k["kernel_id"]: k for k in greedy["kernels"]}
    min_gain = ctx.cfg.eval.novel_min_gain
    novel: dict[tuple[str, tuple[str, ...]], float] = {}
    found = dict(getattr(grpo_state, "best_found", {}) or {})
    candidates = [(e.kernel_id, tuple(e.actions), e.final_cycles) for e in ev.episodes]
    candidates += [(e.kernel_id, e.guarded_actions, e.guarded_cycles) for e in ev.episodes]
    candidates += [(k, tuple(v["actions"]), v["final_cycles"]) for k, v in found.items()]
    for kid, seq, cyc in candidates:
        g = gk.get(kid)
        if g and list(seq) != g["actions"] and cyc < g["final_cycles"] * (1 - min_gain):
            novel[(kid, seq)] = cyc / g["final_cycles"] - 1
    confirmed, rejected = confirm_fresh(ctx, novel, gk, min_gain)
    g_ret = greedy_returns(data, greedy["kernels"], ctx.mdp.reward)
    summary: dict[str, Any] = {
        "backend": ctx.backend,
        "device": ctx.device,
        "estimate": ctx.backend == "emulated",
        "n_kernels": len(ctx.specs),
        "checkpoint": str(src.name) if src.exists() else "bc",
        "greedy_mean_improvement": float(np.mean([k["improvement"] for k in greedy["kernels"]])),
        # The objective GRPO maximizes and the promotion gate compares: log speed-up (for the
        # default reward) less the step costs; a skipped sub-cost step is slower but better.
        "greedy_mean_return": float(np.mean(list(g_ret.values()))) if g_ret else None,
        "grpo_mean_return": ev.score,
        "grpo_lower_return": sorted(
            e.kernel_id
            for e in ev.episodes
            if e.kernel_id in g_ret and e.ret < g_ret[e.kernel_id] - RETURN_TIE
        ),
        # Headline: guarded (the best verified state the argmax rollout measured, the input
        # included: never slower than it); raw: the rollout's final state.
        "grpo_mean_improvement": ev.mean_guarded_improvement,
        "grpo_raw_mean_improvement": ev.mean_improvement,
        "bc_mean_improvement": ev_bc.mean_guarded_improvement,
        "bc_raw_mean_improvement": ev_bc.mean_improvement,
        "first_action_accuracy": {
            "grpo": first_action_accuracy(policy, data, None),
            "bc_all": first_action_accuracy(bc_policy, data, None),
            "bc_heldout": bc_metrics.get("mlp/heldout/first_action_accuracy", float("nan")),
            "rf_heldout": bc_metrics.get("rf/heldout/first_action_accuracy", float("nan")),
        },
        "first_action_n": {  # kernels each accuracy above is measured on
            "grpo": int((data.step == 0).sum()),
            "bc_all": int((data.step == 0).sum()),
            "bc_heldout": int(bc_metrics.get("mlp/heldout/n_first", 0)),
            "rf_heldout": int(bc_metrics.get("rf/heldout/n_first", 0)),
        },
        "bc_metrics": bc_metrics,
        "per_kernel": {
            kid: _kernel_row(gk.get(kid), ev, ev_bc, kid, g_ret.get(kid)) for kid in ev.improvements
        },
        # Counted only when a fresh process measures them better than greedy again.
        "novel_sequences": confirmed,
        "novel_rejected": rejected,
        "evals": list(getattr(grpo_state, "evals", []) or []),
        "grpo_train_s": float(getattr(grpo_state, "train_s", 0.0) or 0.0),
        "stage_times_s": dict(ctx.times),
    }
    if ctx.cfg.eval.optimum_max_states > 0:
        add_optimum(ctx, summary, ctx.cfg.eval.optimum_max_states, ctx.cfg.eval.optimum_beam_width)
    if ctx.cfg.eval.loko_in_report and len(set(data.kernel.tolist())) > 1:
        summary["loko"] = evals.loko(ctx, data, ["rf", "bc"])
    out = ctx.run_dir / "eval" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def confirm_fresh(
    ctx: Context,
    novel: dict[tuple[str, tuple[str, ...]], float],
    greedy: dict[str, Any],
    min_gain: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The novel candidates a fresh process confirms (chronos.pipeline.eval.remeasure)."""
    from chronos.pipeline.eval.remeasure import confirm_novel, remeasure

    if not novel:
        return [], []
    theirs = {k: tuple(greedy[k]["actions"]) for k, _ in novel}
    jobs = list(dict.fromkeys([*novel, *theirs.items()]))
    b = ctx.cfg.backend
    log.info("re-measuring %d novel candidates in a fresh process", len(novel))
    store = ctx.provenance["config"]["backend"]["store"]  # resolved: what replay serves from
    fresh = remeasure(b.name, dict(b.options), list(ctx.cfg.kernels.modules), jobs, store)
    return confirm_novel(novel, theirs, fresh, min_gain)


def _kernel_row(
    g: dict[str, Any] | None, ev: Any, ev_bc: Any, kid: str, g_ret: float | None
) -> dict[str, Any]:
    """One kernel's greedy, GRPO and BC results: guarded (headline) and raw, the distinct
    states each measured, and the return of greedy's sequence and of GRPO's argmax rollout."""
    grpo_ep = next(e for e in ev.episodes if e.kernel_id == kid)
    return {
        "greedy": g["improvement"] if g else None,
        "greedy_return": g_ret,
        "grpo_return": grpo_ep.ret,
        "greedy_actions": g["actions"] if g else None,
        "greedy_measurements": g.get("measurements") if g else None,
        "grpo": ev.guarded_improvements[kid],
        "grpo_raw": ev.improvements[kid],
        "grpo_actions": list(grpo_ep.guarded_actions),
        "grpo_raw_actions": list(grpo_ep.actions),
        "grpo_measurements": ev.measurements[kid],
        "bc": ev_bc.guarded_improvements[kid],
        "bc_raw": ev_bc.improvements[kid],
        "bc_measurements": ev_bc.measurements[kid],
    }


def optimum_search(
    mdp: TransformMDP, spec: Any, max_states: int, width: int, progress: bool = False
) -> dict[str, Any]:
    """The best sequence known for one kernel and how it was found ("method").

    Exhaustive search (SASS-deduplicated) within `max_states` expanded states: "exhaustive",
    the optimum. Past the budget, beam search of `width` (0: none) is run too and the better
    of the two kept: "beam w=N" when beam's is at least as fast, else "lower bound: budget
    hit". Both of those are lower bounds on the optimum's gain. Every state goes through the
    MDP's backend, so its measurement store: a rerun measures nothing new.
    """
    from agents.search import beam, exhaustive

    r = exhaustive(mdp, spec, max_states=max_states, partial_ok=True, progress=progress)
    best, method = r, "exhaustive" if r.complete else "lower bound: budget hit"
    measured = r.measurements
    if not r.complete and width > 0:
        b = beam(mdp, spec, width=width, progress=progress)
        measured = max(measured, b.measurements)
        if b.best_cycles <= r.best_cycles:
            best, method = b, f"beam w={width}"
    return {
        "optimum": best.improvement,
        "optimum_actions": best.sequence,
        "optimum_complete": r.complete,
        "optimum_method": method,
        "optimum_states": r.states,
        "optimum_measurements": measured,
    }


def add_optimum(ctx: Context, summary: dict[str, Any], max_states: int, width: int = 0) -> None:
    """The optimum column (`optimum_search` per eval kernel, same MDP and backend).

    Fills per_kernel[k] with `optimum_search`'s fields and "grpo_of_optimum" (GRPO's guarded
    log-gain over the optimum's, None where the optimum gains nothing), and summary's
    "optimum_share" (summed log-gains over the optimum's) and "optimum_share_mean" (the mean
    of the per-kernel shares).
    """
    pk = summary["per_kernel"]
    for spec in ctx.specs:
        row = pk.setdefault(spec.id, {})
        row.update(optimum_search(ctx.mdp, spec, max_states, width, ctx.cfg.progress))
        row["grpo_of_optimum"] = share_of_optimum(row.get("grpo"), row["optimum"])
    summary["optimum_share"] = optimum_share(pk)
    shares = [r["grpo_of_optimum"] for r in pk.values() if r.get("grpo_of_optimum") is not None]
    summary["optimum_share_mean"] = {"grpo": float(np.mean(shares))} if shares else {}
    summary["optimum_share_n"] = len(shares)


def share_of_optimum(improvement: float | None, optimum: float | None) -> float | None:
    """log-gain of `improvement` over the optimum's (1.0: reaches it); None when either is
    missing or the optimum gains nothing (there is nothing to reach)."""
    if improvement is None or optimum is None or not -math.log1p(optimum) > 1e-9:
        return None
    return -math.log1p(improvement) / -math.log1p(optimum) + 0.0  # + 0.0: no "-0.0%"


def optimum_share(per_kernel: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Summed log-gain of greedy/BC/GRPO over the optimum's (kernels with an optimum)."""
    rows = [r for r in per_kernel.values() if r.get("optimum") is not None]
    best = sum(-math.log1p(r["optimum"]) for r in rows)
    out = {}
    for key in ("grpo", "greedy", "bc"):
        if best > 0 and all(r.get(key) is not None for r in rows):
            out[key] = sum(-math.log1p(r[key]) for r in rows) / best
    return out
