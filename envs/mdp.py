"""The design's MDP as pure functions of an immutable state, so searches and groups can branch.

This is the one implementation of the transition, reward and observation rules (docs/env.md):
`PtxTransformEnv` is its Gymnasium face, and greedy search (try every action from one state)
and GRPO (G rollouts from one initial state) use it directly to branch from a state without
replaying its prefix. `TransformMDP.step(state, a)` returns a new state and never mutates the
old one.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

import chronos.transforms
from chronos.features import FEATURE_NAMES, extract
from kernels.spec import spec_fingerprint

N_FEATURES = len(FEATURE_NAMES)  # 25
N_ACTIONS = 21  # 20 transforms + stop; fixed by the spec (checked against the catalogue)
STOP = 20
OBS_SIZE = N_FEATURES + 2 * N_ACTIONS  # 67
# Features are fractions, log1p counts and /255 scales; -1 means "ptxas figure unknown".
# log1p counts above 32 (e^32 instructions) do not occur; the bound only keeps the Box finite.
FEATURE_LOW, FEATURE_HIGH = -1.0, 32.0


class LruCache(OrderedDict[Any, Any]):
    """A bounded memo shared by every MDP (and so every env) of one process.

    Transforms, masks and features are deterministic functions of (catalogue, spec
    fingerprint, PTX, applied) that cost tens of milliseconds (alignment analysis,
    re-parsing), as much as an emulated measurement; episodes and groups revisit the same
    states constantly. The bound keeps a long run's memory flat: each entry can hold a whole
    PTX text.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = compute()
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value


APPLY_CACHE = LruCache(4096)
MASK_CACHE = LruCache(8192)
FEATURE_CACHE = LruCache(8192)


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
    def spec_key(self) -> str:
        """The spec's fingerprint: the memos key on it, not on the id, so that a kernel
        registered again with another contract is never served its predecessor's masks."""
        return spec_fingerprint(self.spec)

    @property
    def ptx_sha256(self) -> str:
        return hashlib.sha256(self.ptx.encode()).hexdigest()


@dataclass
class StepOut:
    """One transition; `measurement` is the one taken in this step (None when none was)."""

    state: State
    reward: float
    terminated: bool
    truncated: bool
    invalid: bool
    info: dict[str, Any] = field(default_factory=dict)
    measurement: Any = None


class TransformMDP:
    """Branchable MDP over one backend; memoizes the deterministic parts (apply, mask, features).

    `transforms` is the action catalogue (a module or namespace with `N_ACTIONS`, `STOP`,
    `ACTION_NAMES`, `apply_action`, `action_mask`); tests substitute a fake one. `measure_s`
    accumulates the time spent inside the backend, so that the trainer can report the measure
    phase separately from the rest of a rollout.
    """

    def __init__(
        self,
        backend: Any,
        max_steps: int = 6,
        step_cost: float = 0.005,
        invalid_penalty: float = -1.0,
        transforms: ModuleType | Any = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.tx = transforms if transforms is not None else chronos.transforms
        if self.tx.N_ACTIONS != N_ACTIONS or self.tx.STOP != STOP:
            raise RuntimeError(
                f"the catalogue has {self.tx.N_ACTIONS} actions (stop={self.tx.STOP}); "
                f"the MDP's spaces are built for {N_ACTIONS} (stop={STOP})"
            )
        self.backend = backend
        self.max_steps = int(max_steps)
        self.step_cost = float(step_cost)
        self.invalid_penalty = float(invalid_penalty)
        self.measure_s = 0.0
        self.measurements = 0
        self._initial: dict[str, State] = {}

    # -- pieces ---------------------------------------------------------------------------

    def measure(self, spec: Any, ptx: str) -> Any:
        t0 = time.perf_counter()
        m = self.backend.measure(spec, ptx)
        self.measure_s += time.perf_counter() - t0
        self.measurements += 1
        return m

    def apply(self, state: State, action: int) -> tuple[str, bool, str]:
        """(new PTX, changed, reason) of one transform on the state's PTX."""

        def compute() -> tuple[str, bool, str]:
            res = self.tx.apply_action(state.spec, state.ptx, action)
            return str(res.ptx), bool(res.changed), str(res.reason or "")

        key = (id(self.tx), state.spec_key, _digest(state.ptx), action)
        return APPLY_CACHE.get_or(key, compute)

    def mask(self, state: State) -> np.ndarray:
        """Legal actions (bool, 21); stop always legal; nothing legal but stop once done."""
        if state.done or state.steps >= self.max_steps:
            m = np.zeros(N_ACTIONS, dtype=bool)
            m[STOP] = True
            return m

        def compute() -> np.ndarray:
            m = np.asarray(self.tx.action_mask(state.spec, state.ptx, state.applied), dtype=bool)
            m = m.copy()
            m[STOP] = True
            return m

        key = (id(self.tx), state.spec_key, _digest(state.ptx), state.applied)
        return MASK_CACHE.get_or(key, compute).copy()

    def features(self, state: State) -> np.ndarray:
        """The 25 features of the state's PTX, with ptxas figures from its last measurement."""
        regs = getattr(state.measurement, "regs", None)
        spills = getattr(state.measurement, "spills", None)

        def compute() -> np.ndarray:
            f = extract(state.ptx, entry=state.spec.entry, registers=regs, spill_bytes=spills)
            return np.clip(f, FEATURE_LOW, FEATURE_HIGH).astype(np.float32)

        key = (state.spec_key, _digest(state.ptx), regs, spills)
        return FEATURE_CACHE.get_or(key, compute)

    def observe(self, state: State) -> np.ndarray:
        """67 float32: features of the PTX, the mask, the history of applied transforms."""
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[:N_FEATURES] = self.features(state)
        obs[N_FEATURES : N_FEATURES + N_ACTIONS] = self.mask(state)
        if state.applied:
            obs[N_FEATURES + N_ACTIONS + np.asarray(state.applied, dtype=np.int64)] = 1.0
        return obs

    # -- transitions ----------------------------------------------------------------------

    def initial(self, spec: Any) -> State:
        """The original PTX, measured once per MDP (the G rollouts of a group share it)."""
        key = spec_fingerprint(spec)
        if key not in self._initial:
            ptx = spec.ptx()
            m = self.measure(spec, ptx)
            if not m.valid or m.cycles is None:
                raise RuntimeError(f"the original PTX of {spec.id} does not measure: {m.error}")
            self._initial[key] = State(spec, ptx, (), float(m.cycles), m)
        return self._initial[key]

    def step(self, state: State, action: int) -> StepOut:
        """The env's transition: rewards log(c_prev / c_new) - step_cost, ends as the env does."""
        if state.done:
            raise RuntimeError("the episode has ended")
        a = int(action)
        legal = self.mask(state)
        nxt = replace(state, steps=state.steps + 1)
        info: dict[str, Any] = {"reason": "", "invalid": ""}
        invalid = False
        m = None
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
        return StepOut(nxt, float(reward), bool(terminated), bool(truncated), invalid, info, m)


def _digest(ptx: str) -> str:
    return hashlib.blake2b(ptx.encode(), digest_size=16).hexdigest()
