"""Epoch-indexed schedules of the GRPO curriculum (docs/design.md §5.5, §6.1).

Both are pure functions of the epoch so that a resumed run continues exactly where it left off.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TemperatureSchedule:
    """Sampling temperature: `start` until `hold_until`, linear to `end` by `anneal_until`.

    The design's table (T=1.5 while exploring, T=0.5 from epoch 200) is a step:
    hold_until == anneal_until == 200.
    """

    start: float = 1.5
    end: float = 0.5
    hold_until: int = 200
    anneal_until: int = 200

    def __post_init__(self) -> None:
        if self.anneal_until < self.hold_until:
            raise ValueError("anneal_until must be >= hold_until")
        if min(self.start, self.end) <= 0:
            raise ValueError("temperatures must be positive")

    def __call__(self, epoch: int) -> float:
        if epoch < self.hold_until:
            return self.start
        if epoch >= self.anneal_until:
            return self.end
        frac = (epoch - self.hold_until) / (self.anneal_until - self.hold_until)
        return self.start + frac * (self.end - self.start)


@dataclass
class ForcedSteps:
    """Curriculum against always-stop: before `until_epoch`, stop is masked for the first
    `min_steps` steps of every episode (unless stop is the only legal action)."""

    min_steps: int = 2
    until_epoch: int = 50

    def __call__(self, epoch: int) -> int:
        """Number of leading steps of an episode in which stop is masked at this epoch."""
        return self.min_steps if epoch < self.until_epoch else 0
