"""The agents' own configuration: every number of the GRPO loop (docs/design.md §5).

The pipeline's schema (chronos.pipeline.config.TrainConfig) nests `GRPOConfig` as `grpo`;
its values come from `conf/config.yaml` (tests/test_config_defaults.py checks that the
defaults here equal the YAML's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.monitors import MonitorConfig


@dataclass
class TemperatureConfig:
    start: float = 1.5
    end: float = 0.5
    hold_until: int = 24
    anneal_until: int = 24


@dataclass
class ForcedStepsConfig:
    min_steps: int = 2
    until_epoch: int = 6


@dataclass
class DynamicSamplingConfig:
    """DAPO dynamic sampling: re-roll groups whose G returns are all equal (no gradient)."""

    max_retries: int = 3  # re-rolls of a zero-spread group before it is dropped (0: drop at once)
    temperature_factor: float = 2.0  # each re-roll samples at T * factor^retry
    max_temperature: float = 3.0  # cap on the re-roll temperature


@dataclass
class SelfImitationConfig:
    """Self-imitation (agents/self_imitation.py): keep the argmax on the best known sequence."""

    coef: float = 1.0  # weight of the cross-entropy on off-path buffered steps (0: design GRPO)
    margin: float = 0.7  # logits the best known action must lead the runner-up by (about ln 2)
    min_gain: float = 0.0  # return a rollout must beat a kernel's best by to replace it
    seed_greedy: bool = True  # start the buffer with greedy's sequences


@dataclass
class GRPOConfig:
    """docs/design.md §5: every number of the GRPO loop (values: conf/config.yaml, the small
    CPU run; `+exp=grpo_full` has the design's)."""

    epochs: int = 60
    batch_kernels: int = 8
    group_size: int = 8
    clip_eps_low: float = 0.2  # PPO clip below 1 (the design's clip_eps)
    clip_eps_high: float = 0.28  # DAPO clip-higher above 1: rare good actions can grow
    entropy_floor: float = 0.3  # nats; below it a hinge bonus pushes entropy back up
    entropy_coef: float = 0.2  # weight of the hinge max(0, floor - H)
    kl_beta: float = 0.01
    lr: float = 3e-4
    update_epochs: int = 4
    minibatch_size: int = 256
    max_grad_norm: float = 1.0
    adv_eps: float = 1e-8
    # batch: the design's global normalization; group: per kernel (agents/grpo_math.py)
    adv_scale: str = "batch"
    eval_every: int = 10
    checkpoint_every: int = 1
    promotion_min_delta: float = 0.0
    temperature: TemperatureConfig = field(default_factory=TemperatureConfig)
    forced_steps: ForcedStepsConfig = field(default_factory=ForcedStepsConfig)
    dynamic_sampling: DynamicSamplingConfig = field(default_factory=DynamicSamplingConfig)
    monitors: MonitorConfig = field(default_factory=MonitorConfig)
    self_imitation: SelfImitationConfig = field(default_factory=SelfImitationConfig)
