"""The pipeline both entry points run: greedy → BC → GRPO → eval → LOKO → report, and its CLI.

`python -m chronos.train` and `python -m chronos.eval` are thin Hydra entries over `cli()`.
Each stage writes into the run dir and is skipped when its output is already there, so
re-running the same command resumes an interrupted run: the greedy data set is reused from its
cache, `bc.pt` is reloaded, GRPO continues after the last checkpointed epoch, and the
trajectory log keeps every row it ever got. `resume=auto` (the default) finds the latest
unfinished run with the same config hash under `runs_root`; Ctrl-C checkpoints and prints the
command that resumes. LOKO and the report belong to `chronos.eval`, which imports this module,
so they are passed in (`EvalStages`) rather than imported. See docs/training.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agents import checkpoint as ckpt
from agents.bc import BCData, BCResult, mlp_predict, run_bc
from agents.config import TrainConfig, kernel_ids
from agents.greedy import (
    dataset_key,
    improvement_table,
    load_dataset,
    run_greedy,
    save_dataset,
)
from agents.grpo_math import ADV_SCALES
from agents.policy import PolicyMLP
from chronos.fmt import backend_label
from chronos.measure.backends.cached import backend_harness_version
from envs.mdp import TransformMDP

log = logging.getLogger("chronos.train")

# Absolute, so every entry point's `hydra.main` finds the same configs.
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")

STAGES = ("greedy", "bc", "grpo", "eval", "loko", "report")
RESUME_MODES = ("auto", "true", "false")
# Keys that say where a run lives or how it talks, not what it computes: outside the hash.
UNHASHED_KEYS = ("run_dir", "runs_root", "resume", "progress", "stop_after_epoch")
STATUS_FILE = "status.json"
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
"""128 + SIGTERM, the shell's convention for a process ended by that signal."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`): handled exactly like Ctrl-C."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread, so a preempted run saves
    its checkpoint, closes its logs and says how to resume, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


EXIT_BAD_CONFIG = 2


@dataclass(frozen=True)
class EvalStages:
    """LOKO and the report (chronos.eval), handed in by the entry points."""

    loko: Callable[[Any, BCData, list[str]], dict[str, Any]]
    run_loko: Callable[[Any, BCData], dict[str, Any]]
    write_report: Callable[[Path], Path]


def to_config(cfg: DictConfig | dict[str, Any]) -> TrainConfig:
    """Validate a composed config against the TrainConfig schema and build the dataclasses."""
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), cfg)
    out = OmegaConf.to_object(merged)
    assert isinstance(out, TrainConfig)
    unknown = set(out.stages) - set(STAGES)
    if unknown:
        raise ValueError(f"stages: unknown {sorted(unknown)}; known: {', '.join(STAGES)}")
    if out.grpo.adv_scale not in ADV_SCALES:
        raise ValueError(
            f"grpo.adv_scale: {out.grpo.adv_scale!r} is not one of {', '.join(ADV_SCALES)}"
        )
    out.resume = str(out.resume).lower()
    if out.resume not in RESUME_MODES:
        raise ValueError(f"resume: {out.resume!r} is not one of {', '.join(RESUME_MODES)}")
    return out


def config_hash(cfg: TrainConfig) -> str:
    """sha256 (16 hex) of the resolved config minus where-and-how keys (`UNHASHED_KEYS`)."""
    d = {k: v for k, v in asdict(cfg).items() if k not in UNHASHED_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
    np.savez_compressed(
        path.with_suffix(".npz"),
        obs=data.obs,
        mask=data.mask,
        action=data.action,
        kernel=data.kernel,
        step=data.step,
    )
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


def stage_grpo(ctx: Context, bc_policy: PolicyMLP) -> tuple[PolicyMLP, Any]:
    from agents.grpo import train
    from chronos.stores.trajectories import TrajectoryLog

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
    candidates += [(k, tuple(v["actions"]), v["final_cycles"]) for k, v in found.items()]
    for kid, seq, cyc in candidates:
        g = gk.get(kid)
        if g and list(seq) != g["actions"] and cyc < g["final_cycles"] * (1 - min_gain):
            novel[(kid, seq)] = cyc / g["final_cycles"] - 1
    summary: dict[str, Any] = {
        "backend": ctx.backend,
        "device": ctx.device,
        "estimate": ctx.backend == "emulated",
        "n_kernels": len(ctx.specs),
        "checkpoint": str(src.name) if src.exists() else "bc",
        "greedy_mean_improvement": float(np.mean([k["improvement"] for k in greedy["kernels"]])),
        "grpo_mean_improvement": ev.mean_improvement,
        "bc_mean_improvement": ev_bc.mean_improvement,
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
            kid: {
                "greedy": gk[kid]["improvement"] if kid in gk else None,
                "greedy_actions": gk[kid]["actions"] if kid in gk else None,
                "grpo": ev.improvements[kid],
                "grpo_actions": list(next(e.actions for e in ev.episodes if e.kernel_id == kid)),
                "bc": ev_bc.improvements[kid],
            }
            for kid in ev.improvements
        },
        "novel_sequences": [
            {"kernel_id": k, "actions": list(s), "vs_greedy": v} for (k, s), v in novel.items()
        ],
        "evals": list(getattr(grpo_state, "evals", []) or []),
        "grpo_train_s": float(getattr(grpo_state, "train_s", 0.0) or 0.0),
        "stage_times_s": dict(ctx.times),
    }
    if ctx.cfg.eval.optimum_max_states > 0:
        add_optimum(ctx, summary, ctx.cfg.eval.optimum_max_states)
    if ctx.cfg.eval.loko_in_report and len(set(data.kernel.tolist())) > 1:
        summary["loko"] = evals.loko(ctx, data, ["rf", "bc"])
    out = ctx.run_dir / "eval" / "summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def add_optimum(ctx: Context, summary: dict[str, Any], max_states: int) -> None:
    """Exhaustive search per eval kernel (same MDP and backend): the report's reference.

    Fills per_kernel[k]["optimum"] (improvement), "optimum_actions", "optimum_complete"
    (False: the state budget stopped it, so it is a lower bound on the optimum's gain) and
    summary["optimum_share"]: each learner's summed log-gain over the optimum's.
    """
    from agents.search import exhaustive

    pk = summary["per_kernel"]
    for spec in ctx.specs:
        r = exhaustive(
            ctx.mdp, spec, max_states=max_states, partial_ok=True, progress=ctx.cfg.progress
        )
        row = pk.setdefault(spec.id, {})
        row["optimum"] = r.improvement
        row["optimum_actions"] = r.sequence
        row["optimum_complete"] = r.complete
        row["optimum_states"] = r.states
    summary["optimum_share"] = optimum_share(pk)


def optimum_share(per_kernel: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Summed log-gain of greedy/BC/GRPO over the optimum's (kernels with an optimum)."""
    rows = [r for r in per_kernel.values() if r.get("optimum") is not None]
    best = sum(-math.log1p(r["optimum"]) for r in rows)
    out = {}
    for key in ("grpo", "greedy", "bc"):
        if best > 0 and all(r.get(key) is not None for r in rows):
            out[key] = sum(-math.log1p(r[key]) for r in rows) / best
    return out


def run(
    cfg: TrainConfig, run_dir: str | Path | None = None, *, evals: EvalStages
) -> dict[str, Any]:
    """The pipeline over `cfg.stages`; returns the eval summary (or what ran)."""
    seed_everything(cfg.seed)
    torch.set_num_threads(max(cfg.torch_threads, 1))
    rdir = Path(run_dir or cfg.run_dir or os.getcwd()).resolve()
    ctx = open_context(cfg, rdir)
    timing_path = rdir / "stage_times.json"
    if timing_path.exists():
        ctx.times.update(json.loads(timing_path.read_text()))
    out: dict[str, Any] = {"run_dir": str(rdir)}
    bc_policy: PolicyMLP | None = None
    bc_metrics: dict[str, float] = {}
    grpo_state: Any = None
    data: BCData | None = None
    greedy: dict[str, Any] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            ctx.times[name] = ctx.times.get(name, 0.0) + time.perf_counter() - t0
            timing_path.write_text(json.dumps(ctx.times, indent=2))

    try:
        if {"greedy", "bc", "grpo", "eval", "loko"} & set(cfg.stages):
            data, greedy = timed("greedy", stage_greedy, ctx)
            out["greedy"] = greedy
        if {"bc", "grpo", "eval"} & set(cfg.stages):
            assert data is not None
            bc_policy, bc_metrics = timed("bc", stage_bc, ctx, data)
            out["bc"] = bc_metrics
        if "grpo" in cfg.stages:
            assert bc_policy is not None
            _, grpo_state = timed("grpo", stage_grpo, ctx, bc_policy)
        if "eval" in cfg.stages:
            assert data is not None and bc_policy is not None
            out["eval"] = timed(
                "eval", stage_eval, ctx, data, greedy, bc_policy, bc_metrics, grpo_state, evals
            )
        if "loko" in cfg.stages:
            assert data is not None
            out["loko"] = timed("loko", evals.run_loko, ctx, data)
        if "report" in cfg.stages:
            out["report"] = str(evals.write_report(rdir))
    finally:
        ctx.mdp.backend.close()
    return out


# -- command line ----------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    """An OmegaConf/validation error as 'grpo.epochs: Value 'abc' ... to Integer'."""
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        return f"{key}: {msg}" if key else msg
    return " ".join(str(exc).split())


def _file_handlers_in(d: Path) -> list[logging.FileHandler]:
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == d
    ]


def _is_litter(d: Path) -> bool:
    """True for a run dir holding nothing a run made: Hydra's .hydra and *.log, our status."""
    return d.is_dir() and all(
        p.name in (".hydra", STATUS_FILE) or p.suffix == ".log" for p in d.iterdir()
    )


def _remove_litter(d: Path, root: Path) -> None:
    """Delete a run dir nothing was written to, and the folders up to `root` it leaves empty."""
    if not _is_litter(d):
        return
    for h in _file_handlers_in(d):
        logging.getLogger().removeHandler(h)
        h.close()
    shutil.rmtree(d, ignore_errors=True)
    root = root.resolve()
    parent = d.parent
    while parent == root or root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _move_logs(src: Path, dst: Path) -> None:
    """Point the run log's file handlers from `src` (Hydra's new dir) to `dst` (appending)."""
    for h in _file_handlers_in(src):
        new = logging.FileHandler(dst / Path(h.baseFilename).name, mode="a")
        new.setFormatter(h.formatter)
        new.setLevel(h.level)
        root = logging.getLogger()
        root.removeHandler(h)
        h.close()
        root.addHandler(new)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_status(run_dir: Path, chash: str, state: str, resume_command: str) -> None:
    """`status.json`: config hash and state (running/interrupted/failed/finished)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    status = {
        "config_hash": chash,
        "state": state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated": time.time(),
        "resume_command": resume_command,
    }
    tmp = run_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(status, indent=2))
    tmp.replace(run_dir / STATUS_FILE)


def find_unfinished(root: Path, chash: str, exclude: Path | None = None) -> Path | None:
    """The most recently updated run under `root` with config hash `chash` that did not finish
    (and is not running right now in another live process)."""
    best: tuple[float, Path] | None = None
    for path in root.glob(f"**/{STATUS_FILE}"):
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        d = path.parent.resolve()
        if st.get("config_hash") != chash or st.get("state") == "finished" or d == exclude:
            continue
        if (
            st.get("state") == "running"
            and st.get("host") == socket.gethostname()
            and _alive(int(st.get("pid", -1)))
        ):
            continue
        if best is None or st.get("updated", 0) > best[0]:
            best = (float(st.get("updated", 0)), d)
    return best[1] if best else None


def resume_command(module: str, overrides: list[str], run_dir: Path) -> str:
    """The exact command that continues `run_dir`: the same overrides, that run dir."""
    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("run_dir", "resume")]
    return shlex.join(["python", "-m", module, *keep, f"hydra.run.dir={run_dir}"])


def cli(cfg: DictConfig, evals: EvalStages, module: str) -> None:
    """Body of every entry point's `hydra.main`: validate, choose the run dir, run.

    A bad config is one line on stderr (exit 2) and leaves no run dir; Ctrl-C closes the
    trajectory log and the measurement store, keeps the last checkpoint, prints the command
    that resumes and exits 130; SIGTERM (a scheduler's preemption) does the same, exit 143.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from kernels import load

    hc = HydraConfig.get()
    hydra_dir = Path(hc.runtime.output_dir).resolve()
    try:
        tc = to_config(cfg)
        for kid in kernel_ids(tc.kernels):
            load(kid)  # an unknown id is a bad config, before any run dir is used
    except (OmegaConfBaseException, ValueError, KeyError) as exc:
        _remove_litter(hydra_dir, Path(str(cfg.get("runs_root") or "outputs")).expanduser())
        print(f"error: {_one_line(exc)} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    chash = config_hash(tc)
    rdir = hydra_dir
    if tc.run_dir:
        rdir = Path(tc.run_dir).expanduser().resolve()
    elif (
        tc.resume == "auto"
        and hc.mode == RunMode.RUN
        and not any(o.startswith("hydra.run.dir=") for o in hc.overrides.hydra)
    ):
        found = find_unfinished(Path(tc.runs_root).expanduser(), chash, exclude=hydra_dir)
        if found is not None:
            _move_logs(hydra_dir, found)
            _remove_litter(hydra_dir, Path(tc.runs_root).expanduser())
            rdir = found
            log.info("resume=auto: continuing unfinished run %s (same config hash %s)", rdir, chash)
    cmd = resume_command(module, list(hc.overrides.task), rdir)
    write_status(rdir, chash, "running", cmd)
    try:
        with sigterm_interrupts():
            out = run(tc, rdir, evals=evals)
    except KeyboardInterrupt as exc:
        write_status(rdir, chash, "interrupted", cmd)
        for h in logging.getLogger().handlers:
            h.flush()
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{what}; resume with: {cmd}", file=sys.stderr, flush=True)
        sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
    except BaseException:
        write_status(rdir, chash, "failed", cmd)
        _remove_litter(rdir, Path(tc.runs_root).expanduser())  # failed before it made anything
        raise
    write_status(rdir, chash, "finished", cmd)
    if "report" in out:
        print(f"report: {out['report']}")
