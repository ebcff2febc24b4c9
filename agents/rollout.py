"""Policy rollouts on the pure transform MDP: batched sampling, episodes, evaluation.

All episodes of a batch advance together, so the policy runs one forward pass per step for
every live episode; the MDP is pure and branchable, so the G rollouts of a kernel share one
initial state (measured once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from chronos.ptx import ptx_sha256
from chronos.transforms import ACTION_NAMES, STOP
from envs.mdp import forbid_early_stop


@dataclass
class Step:
    """One decision: what the policy saw, did and got."""

    obs: np.ndarray
    mask: np.ndarray  # the mask actions were sampled under (forced steps mask stop)
    action: int
    logp: float
    reward: float
    cycles_before: float
    cycles_after: float | None
    iqr: float  # measurement spread of the two states compared (0 for deterministic backends)
    invalid: bool
    done: bool
    reason: str | None
    ptx_sha256: str | None


@dataclass
class Episode:
    kernel_id: str
    group: int
    base_cycles: float
    steps: list[Step] = field(default_factory=list)
    final_cycles: float = math.nan
    temperature: float = 0.0  # what it was sampled at (its steps' logp are at this T)
    # Distinct PTX texts the episode had measured, the base included: its cost on an empty
    # store, counted as agents.search counts a search's.
    measured: set[str] = field(default_factory=set, repr=False)

    @property
    def ret(self) -> float:
        return float(sum(s.reward for s in self.steps))

    @property
    def actions(self) -> tuple[str, ...]:
        """Names of the transforms kept (stop, no-ops and invalid steps excluded)."""
        return tuple(
            ACTION_NAMES[s.action]
            for s in self.steps
            if s.action != STOP and not s.invalid and s.cycles_after is not None
        )

    @property
    def improvement(self) -> float:
        """Relative change of cycles, final/base - 1 (negative is faster)."""
        return self.final_cycles / self.base_cycles - 1.0

    @property
    def log_speedup(self) -> float:
        return math.log(self.base_cycles / self.final_cycles)

    @property
    def measurements(self) -> int:
        return len(self.measured)

    def _best_step(self) -> int:
        """Index of the step that reached the fastest verified state (-1: the base)."""
        best, at = self.base_cycles, -1
        for i, s in enumerate(self.steps):
            if s.reason == "applied" and s.cycles_after is not None and s.cycles_after < best:
                best, at = s.cycles_after, i
        return at

    @property
    def guarded_cycles(self) -> float:
        """The fastest state the rollout measured and verified, the untransformed kernel
        included: what a deployment that keeps the best seen state hands back."""
        at = self._best_step()
        return self.base_cycles if at < 0 else float(self.steps[at].cycles_after or math.nan)

    @property
    def guarded_actions(self) -> tuple[str, ...]:
        """The transforms that lead to `guarded_cycles` (a prefix of `actions`)."""
        at = self._best_step()
        return tuple(ACTION_NAMES[s.action] for s in self.steps[: at + 1] if s.reason == "applied")

    @property
    def guarded_improvement(self) -> float:
        """guarded/base - 1: never positive (never slower than the input), by construction."""
        return self.guarded_cycles / self.base_cycles - 1.0

    @property
    def guarded_log_speedup(self) -> float:
        return math.log(self.base_cycles / self.guarded_cycles)


class RolloutPolicy(Protocol):
    """What a rollout needs of a policy: agents.policy.PolicyMLP, agents.qvalue.QPolicy."""

    training: bool

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    def act(
        self,
        obs: np.ndarray,
        mask: np.ndarray,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(actions, their log-probabilities) for a batch of observations."""
        ...


def cycles_of(state: Any) -> float:
    return float(state.cycles)


def iqr_of(state: Any) -> float:
    m = getattr(state, "measurement", None)
    if m is None or m.cycles_q1 is None or m.cycles_q3 is None:
        return 0.0
    return float(m.cycles_q3 - m.cycles_q1)


def rollout(
    mdp: Any,
    specs: Sequence[Any],
    policy: RolloutPolicy,
    *,
    group_size: int = 1,
    temperature: float = 0.0,
    stop_masked_steps: int = 0,
    generator: torch.Generator | None = None,
) -> list[Episode]:
    """`group_size` episodes per kernel, sampled at `temperature` (0 = argmax).

    In the first `stop_masked_steps` steps stop is illegal unless it is the only legal
    action (the forced-steps curriculum, envs.mdp.forbid_early_stop: the observation's mask
    block says so too). Episodes come back grouped by kernel, in order.
    """
    was_training = policy.training
    policy.eval()
    states: list[Any] = []
    episodes: list[Episode] = []
    for spec in specs:
        s0 = mdp.initial(spec)
        base = ptx_sha256(s0.ptx)
        for g in range(group_size):
            states.append(s0)
            episodes.append(
                Episode(spec.id, g, cycles_of(s0), temperature=temperature, measured={base})
            )
    live = list(range(len(states)))
    t = 0
    while live:
        obs = np.stack([mdp.observe(states[i]) for i in live]).astype(np.float32)
        mask = np.stack([mdp.mask(states[i]) for i in live]).astype(bool)
        obs, mask = forbid_early_stop(obs, mask, t, stop_masked_steps, mdp.layout)
        actions, logps = policy.act(obs, mask, temperature, generator)
        still: list[int] = []
        # The whole step of every live episode at once: one measure_many per kernel group.
        outs = mdp.step_batch([(states[i], int(actions[j])) for j, i in enumerate(live)])
        for j, i in enumerate(live):
            before = states[i]
            out = outs[j]
            after = out.state
            measured = not out.invalid and int(actions[j]) != STOP
            done = bool(out.terminated or out.truncated)
            if out.measurement is not None:  # a PTX text went to the backend (valid or not)
                sha = getattr(out.measurement, "ptx_sha256", "") or f"{t}:{int(actions[j])}"
                episodes[i].measured.add(ptx_sha256(after.ptx) if measured else sha)
            episodes[i].steps.append(
                Step(
                    obs=obs[j],
                    mask=mask[j],
                    action=int(actions[j]),
                    logp=float(logps[j]),
                    reward=float(out.reward),
                    cycles_before=cycles_of(before),
                    cycles_after=cycles_of(after) if measured else None,
                    iqr=max(iqr_of(before), iqr_of(after)),
                    invalid=bool(out.invalid),
                    done=done,
                    reason=out.info.get("invalid") or out.info.get("reason"),
                    ptx_sha256=getattr(before, "ptx_sha256", None),
                )
            )
            states[i] = after
            if done:
                episodes[i].final_cycles = cycles_of(after)
            else:
                still.append(i)
        live = still
        t += 1
    if was_training:
        policy.train()
    return episodes
