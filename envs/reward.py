"""The reward, as a small named object the MDP calls (selectable with `env.reward=NAME`).

The design's reward (docs/design.md §3) is `log_speedup`: an applied transform earns
`log(c_prev / c_new)` minus a step cost, so an episode's return telescopes to `log(c_0 / c_T)`
minus the step costs and does not depend on where in the sequence a gain happened. Stop and no-op
transforms pay the step cost; an invalid step (ptxas rejection, fault, wrong output, timeout,
masked action) pays `invalid_penalty` and ends the episode. `linear_speedup` rewards
`(c_prev - c_new) / c_0` instead, which weighs gains by cycles saved rather than by ratio (its
return is the fraction of the original cycles saved).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from envs.constants import INVALID_PENALTY, STEP_COST


@dataclass(frozen=True)
class Reward:
    """Base class: the step cost and invalid penalty every reward shares."""

    name: ClassVar[str] = "base"
    step_cost: float = STEP_COST
    invalid_penalty: float = INVALID_PENALTY

    def gain(self, c_prev: float, c_new: float, c_0: float) -> float:  # pragma: no cover
        raise NotImplementedError

    def applied(self, c_prev: float, c_new: float, c_0: float) -> float:
        """Reward of a valid transform that took the kernel from c_prev to c_new cycles."""
        return self.gain(c_prev, c_new, c_0) - self.step_cost

    def stop(self) -> float:
        """Reward of stop and of a transform that left the PTX unchanged."""
        return -self.step_cost

    def invalid(self) -> float:
        """Reward of an invalid or masked step (no step cost added)."""
        return self.invalid_penalty


@dataclass(frozen=True)
class LogSpeedup(Reward):
    """`log(c_prev / c_new) - step_cost` (docs/design.md §3)."""

    name: ClassVar[str] = "log_speedup"

    def gain(self, c_prev: float, c_new: float, c_0: float) -> float:
        return math.log(c_prev / c_new)


@dataclass(frozen=True)
class LinearSpeedup(Reward):
    """`(c_prev - c_new) / c_0 - step_cost`: the fraction of the original cycles saved."""

    name: ClassVar[str] = "linear_speedup"

    def gain(self, c_prev: float, c_new: float, c_0: float) -> float:
        return (c_prev - c_new) / c_0


REWARDS: dict[str, type[Reward]] = {r.name: r for r in (LogSpeedup, LinearSpeedup)}


def make_reward(name: str = "log_speedup", **kwargs: float) -> Reward:
    """A reward by name, e.g. `make_reward("log_speedup", step_cost=0.005)`."""
    try:
        cls = REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known: {', '.join(sorted(REWARDS))}") from None
    return cls(**kwargs)
