"""Typed configuration of the pipeline: the Hydra structured-config schema.

`conf/config.yaml` fills these dataclasses; `chronos.pipeline.to_config` turns the composed
DictConfig into a `TrainConfig` with `OmegaConf.to_object`, so every stage receives typed
objects and a typo in an override fails at start-up instead of deep inside a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.bc import BCConfig
from agents.monitors import MonitorConfig


@dataclass
class BackendConfig:
    """Which measurement backend and store (see chronos.measure.make_backend)."""

    name: str = "auto"  # auto | emulated | cupy | replay
    store: str | None = "default"  # path, "default" (~/.cache/chronos/...), or null = memory
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class KernelsConfig:
    """The kernel set: explicit ids, or the first `limit` of a family (null = all)."""

    name: str = "all"
    ids: list[str] = field(default_factory=list)
    family: str | None = "gemm_tile"
    limit: int | None = None
    stride: int = 1  # take every `stride`-th id of the family: a spread-out small subset


@dataclass
class EnvConfig:
    """The MDP constants of design §3 (the same defaults as PtxTransformEnv)."""

    max_steps: int = 6
    step_cost: float = 0.005
    invalid_penalty: float = -1.0


@dataclass
class GreedyConfig:
    """Greedy v2: measure every legal transform, take the best, stop when none improves."""

    min_gain: float = 0.0  # relative improvement a step must exceed to be taken
    dataset_dir: str = "~/.cache/chronos/greedy"  # datasets are keyed by backend+kernels
    recompute: bool = False


@dataclass
class TemperatureConfig:
    start: float = 1.5
    end: float = 0.5
    hold_until: int = 200
    anneal_until: int = 200


@dataclass
class ForcedStepsConfig:
    min_steps: int = 2
    until_epoch: int = 50


@dataclass
class GRPOConfig:
    """Design §5: every number of the GRPO loop."""

    epochs: int = 500
    batch_kernels: int = 32
    group_size: int = 8
    clip_eps: float = 0.2
    kl_beta: float = 0.01
    lr: float = 3e-4
    update_epochs: int = 4
    minibatch_size: int = 256
    max_grad_norm: float = 1.0
    adv_eps: float = 1e-8
    eval_every: int = 50
    checkpoint_every: int = 1
    promotion_min_delta: float = 0.0
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    forced_steps: ForcedStepsConfig = field(default_factory=ForcedStepsConfig)
    monitors: MonitorConfig = field(default_factory=MonitorConfig)


@dataclass
class EvalConfig:
    """Final evaluation and the report."""

    novel_min_gain: float = 0.01  # design §6.3: a sequence must beat greedy by > 1% to count
    loko_in_report: bool = True  # LOKO of BC and RF (cheap) inside the train report


@dataclass
class LokoConfig:
    """Leave-one-kernel-out: which learners, and how long GRPO trains per fold."""

    learners: list[str] = field(default_factory=lambda: ["rf", "bc", "grpo"])
    grpo_epochs: int = 2
    max_folds: int | None = None


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
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    greedy: GreedyConfig = field(default_factory=GreedyConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    loko: LokoConfig = field(default_factory=LokoConfig)


def kernel_ids(cfg: KernelsConfig) -> list[str]:
    """Resolve a KernelsConfig to the ordered list of kernel ids it names."""
    if cfg.ids:
        return list(cfg.ids)
    from kernels import list_kernels

    ids = list_kernels(cfg.family)[:: max(cfg.stride, 1)]
    return ids[: cfg.limit] if cfg.limit is not None else ids
