"""Typed configuration of the pipeline: the Hydra structured-config schema, and its loading.

`conf/config.yaml` holds the values and these dataclasses the schema (their defaults equal the
YAML's: tests/test_config_defaults.py). `to_config` turns the composed DictConfig into a
`TrainConfig` with `OmegaConf.to_object`, so every stage receives typed objects and a typo in an
override fails at start-up instead of deep inside a run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from agents.bc import BCConfig
from agents.config import GRPOConfig
from agents.grpo_math import ADV_SCALES
from agents.qvalue import QConfig
from envs.constants import INVALID_PENALTY, MAX_STEPS, STEP_COST
from envs.reward import Reward, make_reward

# Absolute, so every entry point's `hydra.main` finds the same configs.
CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")

STAGES = ("greedy", "bc", "grpo", "eval", "loko", "report")
RESUME_MODES = ("auto", "true", "false")
# Keys that say where a run lives or how it talks, not what it computes: outside the hash.
UNHASHED_KEYS = ("run_dir", "runs_root", "resume", "progress", "stop_after_epoch")


@dataclass
class BackendConfig:
    """Which measurement backend and store (see chronos.measure.make_backend)."""

    name: str = "auto"  # auto | emulated | cupy | replay
    store: str | None = "default"  # path, "default" (~/.cache/chronos/...), or null = memory
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClusterConfig:
    """Where measurements run: `local` (this process) or a Ray pool (docs/scale-out.md)."""

    name: str = "local"  # local | ray
    address: str = "local"  # ray: local (private cluster) | auto (this node's) | ray://host:port
    workers: int = 2  # ray: measurement actors (one per GPU for cupy)
    gpus_per_worker: float | None = None  # ray: null = 1 for cupy, 0 for emulated
    cpus_per_worker: float = 1.0  # ray: CPUs per actor (its ptxas runs there)
    max_attempts: int = 3  # ray: workers a PTX may kill before it is reported invalid
    chunk: int = 4  # ray: at most this many PTX texts per task (cupy overlaps their ptxas)
    modules: list[str] = field(default_factory=list)  # ray: imported by every actor first
    runtime_env: dict[str, Any] = field(default_factory=dict)  # ray: passed to ray.init

    def backend_args(self, backend: BackendConfig) -> tuple[str, dict[str, Any]]:
        """(name, options) for chronos.measure.make_backend: the backend itself, or the Ray
        pool of it."""
        if self.name == "local":
            return backend.name, dict(backend.options)
        if self.name != "ray":
            raise ValueError(f"cluster.name must be local or ray, got {self.name!r}")
        return "ray", {
            "backend": backend.name,
            "options": dict(backend.options),
            "workers": self.workers,
            "address": self.address,
            "gpus_per_worker": self.gpus_per_worker,
            "cpus_per_worker": self.cpus_per_worker,
            "max_attempts": self.max_attempts,
            "chunk": self.chunk,
            "modules": list(self.modules),
            "runtime_env": dict(self.runtime_env),
        }


@dataclass
class KernelsConfig:
    """The kernel set: explicit ids, or a selection from families (see `kernel_ids`); the
    defaults are conf/kernels/small.yaml's, the base config's set."""

    name: str = "small"
    ids: list[str] = field(default_factory=list)  # explicit ids (then the rest is ignored)
    families: list[str] = field(default_factory=list)  # families to draw from; [] = every one
    per_family: int | None = 2  # evenly spaced ids per family (null = all of each)
    limit: int | None = None  # at most this many ids in all
    stride: int = 1  # take every `stride`-th id of each family: a spread-out subset
    modules: list[str] = field(default_factory=list)  # user modules to import (they register)


@dataclass
class EnvConfig:
    """The MDP constants (docs/design.md §3; defaults: envs/constants.py, as the env's)."""

    max_steps: int = MAX_STEPS
    step_cost: float = STEP_COST
    invalid_penalty: float = INVALID_PENALTY
    reward: str = "log_speedup"
    """A name in envs.reward.REWARDS."""

    def make_reward(self) -> Reward:
        return make_reward(
            self.reward, step_cost=self.step_cost, invalid_penalty=self.invalid_penalty
        )


@dataclass
class GreedyConfig:
    """Greedy v2: measure every legal transform, take the best, stop when none improves."""

    min_gain: float = 0.0  # relative improvement a step must exceed to be taken
    dataset_dir: str = "~/.cache/chronos/greedy"  # datasets are keyed by backend+kernels
    recompute: bool = False


@dataclass
class EvalConfig:
    """Final evaluation and the report."""

    novel_min_gain: float = 0.01  # docs/design.md §6.3: novel = beats greedy by > 1%
    loko_in_report: bool = True  # LOKO of BC and RF (cheap) inside the train report
    # Exhaustive search per eval kernel for the report's optimum column; 0 = off. Each state
    # costs up to ~20 measurements (most already in the store after GRPO); past the budget
    # beam search (below) runs too and the column is a lower bound, marked with its method.
    optimum_max_states: int = 20
    optimum_beam_width: int = 2  # beam width past the exhaustive budget (0: no beam)


@dataclass
class LokoConfig:
    """Leave-one-kernel-out (or -family-out): learners, GRPO epochs per fold, the grouping."""

    learners: list[str] = field(
        default_factory=lambda: ["rf", "bc", "q", "bc_guided", "q_guided", "bcq_guided", "grpo"]
    )
    grpo_epochs: int = 2
    guided_k: int = 2  # bc_guided/q_guided/bcq_guided: top-k per learner per step (search.guided)
    max_folds: int | None = None
    group: str = "kernel"  # "kernel": leave one kernel out; "family": leave one family out
    fold: int | None = None  # run only this fold (0-based): one fold per sweep job


@dataclass
class TrainConfig:
    """The whole pipeline: greedy data → BC → GRPO → eval → report."""

    seed: int = 0
    stages: list[str] = field(default_factory=lambda: ["greedy", "bc", "grpo", "eval", "report"])
    # auto: continue the latest unfinished run with the same config hash under runs_root (or
    # the given run dir); true: continue the run dir's checkpoints; false: start from scratch
    resume: str = "auto"
    run_dir: str | None = None  # null: Hydra's run dir (the working directory)
    runs_root: str = "outputs"  # where Hydra's run dirs go and resume=auto looks
    progress: bool = True
    tensorboard: bool = True
    torch_threads: int = 1
    stop_after_epoch: int | None = None  # raise after this GRPO epoch (tests of resume)
    backend: BackendConfig = field(default_factory=BackendConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    q: QConfig = field(default_factory=QConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    loko: LokoConfig = field(default_factory=LokoConfig)


def kernel_ids(cfg: KernelsConfig) -> list[str]:
    """Resolve a KernelsConfig to the ordered list of kernel ids it names.

    `modules` are imported first, so their kernels can be named in `ids` or found by family.
    """
    from kernels import import_modules, list_families, list_kernels

    import_modules(cfg.modules)
    if cfg.ids:
        return list(cfg.ids)
    known = list_families()
    unknown = [f for f in cfg.families if f not in known]
    if unknown:
        raise ValueError(f"unknown kernel families {unknown}; known: {', '.join(known)}")
    ids: list[str] = []
    for family in cfg.families or known:
        members = list_kernels(family)[:: max(cfg.stride, 1)]
        if cfg.per_family is not None and len(members) > cfg.per_family:
            # the middles of per_family equal slices: spread out, away from the extremes
            picks = ((np.arange(cfg.per_family) + 0.5) * len(members) / cfg.per_family).astype(int)
            members = [members[i] for i in picks]
        ids += members
    return ids[: cfg.limit] if cfg.limit is not None else ids


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
