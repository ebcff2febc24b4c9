"""The env's MDP as pure functions of an immutable state, so searches and groups can branch.

`PtxTransformEnv` is the Gymnasium face of the design's MDP; greedy search (try every action
from one state) and GRPO (G rollouts from one initial state) need to branch from a state
without replaying its prefix. `TransformMDP.step(state, a)` returns a new state and never
mutates the old one; observation, mask, rewards and episode ends follow the env's contract
(docs/env.md), which tests/test_agents_mdp.py checks against the env itself.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from chronos.features import extract
from chronos.transforms import N_ACTIONS, STOP, action_mask, apply_action

N_FEATURES = 25
OBS_SIZE = N_FEATURES + 2 * N_ACTIONS
FEATURE_LOW, FEATURE_HIGH = -1.0, 32.0


@dataclass(frozen=True)
class State:
    """A kernel's PTX after some applied transforms, with its last valid measurement."""

    spec: Any
    ptx: str
    applied: tuple[int, ...]
    cycles: float
    measurement: Any
    steps: int = 0
    done: bool = False

    @property
    def kernel_id(self) -> str:
        return str(self.spec.id)

    @property
    def ptx_sha256(self) -> str:
        return hashlib.sha256(self.ptx.encode()).hexdigest()


@dataclass
class StepOut:
    state: State
    reward: float
    terminated: bool
    truncated: bool
    invalid: bool
    info: dict[str, Any] = field(default_factory=dict)


class TransformMDP:
    """Branchable MDP over one backend; caches the deterministic parts (apply, mask, features).

    `measure_s` accumulates the time spent inside the backend, so that the trainer can report
    the measure phase separately from the rest of a rollout.
    """

    def __init__(
        self,
        backend: Any,
        max_steps: int = 6,
        step_cost: float = 0.005,
        invalid_penalty: float = -1.0,
    ) -> None:
        self.backend = backend
        self.max_steps = int(max_steps)
        self.step_cost = float(step_cost)
        self.invalid_penalty = float(invalid_penalty)
        self.measure_s = 0.0
        self.measurements = 0
        self._apply: dict[tuple[str, str, int], tuple[str, bool, str]] = {}
        self._mask: dict[tuple[str, str, tuple[int, ...]], np.ndarray] = {}
        self._feat: dict[tuple[str, str, Any, Any], np.ndarray] = {}
        self._initial: dict[str, State] = {}

    # -- pieces ---------------------------------------------------------------------------

    def measure(self, spec: Any, ptx: str) -> Any:
        t0 = time.perf_counter()
        m = self.backend.measure(spec, ptx)
        self.measure_s += time.perf_counter() - t0
        self.measurements += 1
        return m

    def apply(self, state: State, action: int) -> tuple[str, bool, str]:
        key = (state.kernel_id, _digest(state.ptx), action)
        if key not in self._apply:
            res = apply_action(state.spec, state.ptx, action)
            self._apply[key] = (str(res.ptx), bool(res.changed), str(res.reason or ""))
        return self._apply[key]

    def mask(self, state: State) -> np.ndarray:
        """Legal actions (bool, 21); stop always legal; nothing legal but stop once done."""
        if state.done or state.steps >= self.max_steps:
            m = np.zeros(N_ACTIONS, dtype=bool)
            m[STOP] = True
            return m
        key = (state.kernel_id, _digest(state.ptx), state.applied)
        if key not in self._mask:
            m = np.asarray(action_mask(state.spec, state.ptx, state.applied), dtype=bool).copy()
            m[STOP] = True
            self._mask[key] = m
        return self._mask[key].copy()

    def observe(self, state: State) -> np.ndarray:
        """67 float32: features of the PTX, the mask, the history of applied transforms."""
        regs = getattr(state.measurement, "regs", None)
        spills = getattr(state.measurement, "spills", None)
        key = (state.kernel_id, _digest(state.ptx), regs, spills)
        if key not in self._feat:
            f = extract(state.ptx, entry=state.spec.entry, registers=regs, spill_bytes=spills)
            self._feat[key] = np.clip(f, FEATURE_LOW, FEATURE_HIGH).astype(np.float32)
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[:N_FEATURES] = self._feat[key]
        obs[N_FEATURES : N_FEATURES + N_ACTIONS] = self.mask(state)
        if state.applied:
            obs[N_FEATURES + N_ACTIONS + np.asarray(state.applied, dtype=np.int64)] = 1.0
        return obs

    # -- transitions ----------------------------------------------------------------------

    def initial(self, spec: Any) -> State:
        """The original PTX, measured once per MDP (the G rollouts of a group share it)."""
        if spec.id not in self._initial:
            ptx = spec.ptx()
            m = self.measure(spec, ptx)
            if not m.valid or m.cycles is None:
                raise RuntimeError(f"the original PTX of {spec.id} does not measure: {m.error}")
            self._initial[spec.id] = State(spec, ptx, (), float(m.cycles), m)
        return self._initial[spec.id]

    def step(self, state: State, action: int) -> StepOut:
        """The env's transition: rewards log(c_prev / c_new) - step_cost, ends as the env does."""
        if state.done:
            raise RuntimeError("the episode has ended")
        a = int(action)
        legal = self.mask(state)
        nxt = replace(state, steps=state.steps + 1)
        info: dict[str, Any] = {"reason": "", "invalid": ""}
        invalid = False
        if not legal[a]:
            reward, terminated, invalid = self.invalid_penalty, True, True
            info["invalid"] = info["reason"] = "masked action"
        elif a == STOP:
            reward, terminated, info["reason"] = -self.step_cost, True, "stop"
        else:
            new_ptx, changed, why = self.apply(state, a)
            if not changed or new_ptx == state.ptx:
                reward, terminated = -self.step_cost, True
                info["reason"] = f"no-op: {why}" if why else "no-op"
            else:
                m = self.measure(state.spec, new_ptx)
                if not m.valid or m.cycles is None or not m.cycles > 0:
                    reward, terminated, invalid = self.invalid_penalty, True, True
                    info["invalid"] = info["reason"] = str(m.error or "invalid measurement")
                else:
                    nxt = replace(
                        nxt,
                        ptx=new_ptx,
                        applied=state.applied + (a,),
                        cycles=float(m.cycles),
                        measurement=m,
                    )
                    reward = math.log(state.cycles / nxt.cycles) - self.step_cost
                    terminated = False
                    info["reason"] = "applied"
        truncated = (not terminated) and nxt.steps >= self.max_steps
        nxt = replace(nxt, done=terminated or truncated)
        return StepOut(nxt, float(reward), bool(terminated), bool(truncated), invalid, info)


def _digest(ptx: str) -> str:
    return hashlib.blake2b(ptx.encode(), digest_size=16).hexdigest()
