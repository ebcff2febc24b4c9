"""The design's MDP as pure functions of an immutable state, so searches and groups can branch.

This is the one implementation of the transition, reward and observation rules (docs/env.md):
`PtxTransformEnv` is its Gymnasium face, and greedy search (try every action from one state)
and GRPO (G rollouts from one initial state) use it directly to branch from a state without
replaying its prefix. `TransformMDP.step(state, a)` returns a new state and never mutates the
old one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

import chronos.transforms
from chronos.caching import BoundedCache
from chronos.features import extract
from chronos.ptx import ptx_sha256
from envs.constants import INVALID_PENALTY, MAX_STEPS, STEP_COST
from envs.reward import LogSpeedup, Reward
from envs.spaces import FEATURE_HIGH, FEATURE_LOW, Layout, layout_of
from kernels.spec import spec_fingerprint

# Transforms, masks and features are deterministic functions of (catalogue, spec
# fingerprint, PTX, applied) that cost tens of milliseconds (alignment analysis, re-parsing),
# as much as an emulated measurement; episodes and groups revisit the same states constantly.
# One memo per kind is shared by every MDP (and so every env) of the process, bounded because
# each entry can hold a whole PTX text.
APPLY_CACHE: BoundedCache[tuple[str, bool, str]] = BoundedCache(4096, name="mdp.apply")
MASK_CACHE: BoundedCache[np.ndarray] = BoundedCache(8192, name="mdp.mask")
FEATURE_CACHE: BoundedCache[np.ndarray] = BoundedCache(8192, name="mdp.features")


def forbid_early_stop(
    obs: np.ndarray, mask: np.ndarray, steps: int, min_steps: int, layout: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """The forced-steps rule (docs/design.md §6.1, "forced >= 2 steps before epoch 50"): in the
    first `min_steps` steps of an episode stop is illegal unless it is the only legal action,
    so an episode can always end.

    `obs` (layout.obs_size,) and `mask` (layout.n_actions,) are one state's, or a batch of them
    (one row per state, every state `steps` steps into its episode). Returns new arrays: the
    mask with stop cleared where the rule applies, and the observation with that mask in its
    mask block, so the policy sees the mask it is sampled under. The one rule of both the
    `ForbidEarlyStop` wrapper and the GRPO rollouts (agents/rollout.py).
    """
    mask = np.array(mask, dtype=np.bool_)
    obs = np.array(obs)
    if steps < min_steps:
        stop = layout.stop
        others = np.delete(mask, stop, axis=-1).any(axis=-1)
        mask[..., stop] &= ~others
    obs[..., layout.mask] = mask
    return obs, mask


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
        return ptx_sha256(self.ptx)


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

    `transforms` is the action catalogue (a module or namespace with `ACTION_NAMES`, stop last,
    `apply_action`, `action_mask`); `self.layout` (envs.spaces) is derived from it, so a
    catalogue with another number of actions gets spaces of its size. `reward` is an
    envs.reward.Reward (default: the design's log speed-up with `step_cost` and
    `invalid_penalty`; passing both a reward and those constants is an error). `measure_s`
    accumulates the time spent inside the backend, so that the trainer can report the measure
    phase separately from the rest of a rollout.
    """

    def __init__(
        self,
        backend: Any,
        max_steps: int = MAX_STEPS,
        step_cost: float | None = None,
        invalid_penalty: float | None = None,
        transforms: ModuleType | Any = None,
        reward: Reward | None = None,
    ) -> None:
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        self.tx = transforms if transforms is not None else chronos.transforms
        self.layout: Layout = layout_of(self.tx)
        if reward is None:
            reward = LogSpeedup(
                step_cost=STEP_COST if step_cost is None else float(step_cost),
                invalid_penalty=(
                    INVALID_PENALTY if invalid_penalty is None else float(invalid_penalty)
                ),
            )
        elif step_cost is not None or invalid_penalty is not None:
            raise ValueError("give step_cost/invalid_penalty through the reward object")
        self.reward = reward
        self.backend = backend
        self.max_steps = int(max_steps)
        self.measure_s = 0.0
        self.measurements = 0
        self._watchers: list[Callable[[Any, Sequence[str], list[Any]], None]] = []
        self._initial: dict[str, State] = {}

    @property
    def step_cost(self) -> float:
        return self.reward.step_cost

    @property
    def invalid_penalty(self) -> float:
        return self.reward.invalid_penalty

    # -- pieces ---------------------------------------------------------------------------

    def measure(self, spec: Any, ptx: str) -> Any:
        return self.measure_many(spec, [ptx])[0]

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Any]:
        """Every measurement of the MDP goes through here, in one backend call per batch."""
        t0 = time.perf_counter()
        batch = getattr(self.backend, "measure_many", None)
        if callable(batch):
            ms = list(batch(spec, list(ptxs)))
        else:
            ms = [self.backend.measure(spec, p) for p in ptxs]
        self.measure_s += time.perf_counter() - t0
        self.measurements += len(ptxs)
        for watcher in tuple(self._watchers):
            watcher(spec, ptxs, ms)
        return ms

    @contextmanager
    def watching(self, watcher: Callable[[Any, Sequence[str], list[Any]], None]) -> Iterator[None]:
        """Call `watcher(spec, ptxs, measurements)` after every batch measured inside, however
        it is reached (`measure`, `step`, `step_many`); watchers nest (a search inside another
        search's meter reports to both)."""
        self._watchers.append(watcher)
        try:
            yield
        finally:
            self._watchers.remove(watcher)

    def apply(self, state: State, action: int) -> tuple[str, bool, str]:
        """(new PTX, changed, reason) of one transform on the state's PTX."""

        def compute() -> tuple[str, bool, str]:
            res = self.tx.apply_action(state.spec, state.ptx, action)
            return str(res.ptx), bool(res.changed), str(res.reason or "")

        key = (id(self.tx), state.spec_key, ptx_sha256(state.ptx), action)
        return APPLY_CACHE.get(key, compute)

    def mask(self, state: State) -> np.ndarray:
        """Legal actions (bool, n_actions); stop always legal; only stop once done."""
        stop = self.layout.stop
        if state.done or state.steps >= self.max_steps:
            m = np.zeros(self.layout.n_actions, dtype=bool)
            m[stop] = True
            return m

        def compute() -> np.ndarray:
            m = np.asarray(self.tx.action_mask(state.spec, state.ptx, state.applied), dtype=bool)
            m = m.copy()
            m[stop] = True
            return m

        key = (id(self.tx), state.spec_key, ptx_sha256(state.ptx), state.applied)
        return MASK_CACHE.get(key, compute).copy()

    def features(self, state: State) -> np.ndarray:
        """The features of the state's PTX, with ptxas's figures and the trace's profile from
        its last measurement."""
        m = state.measurement
        regs = getattr(m, "regs", None)
        spills = getattr(m, "spills", None)
        profile = getattr(m, "extra", None) if getattr(m, "valid", False) else None

        def compute() -> np.ndarray:
            f = extract(
                state.ptx,
                entry=state.spec.entry,
                registers=regs,
                spill_bytes=spills,
                profile=profile,
            )
            return np.clip(f, FEATURE_LOW, FEATURE_HIGH).astype(np.float32)

        # The profile is a function of the PTX, the spec and the backend that measured it.
        source = (getattr(m, "backend", None), getattr(m, "harness_version", None))
        key = (state.spec_key, ptx_sha256(state.ptx), regs, spills, source, profile is None)
        return FEATURE_CACHE.get(key, compute)

    def observe(self, state: State) -> np.ndarray:
        """float32 (layout.obs_size,): features of the PTX, the mask, the applied history."""
        lay = self.layout
        obs = np.zeros(lay.obs_size, dtype=np.float32)
        obs[lay.features] = self.features(state)
        obs[lay.mask] = self.mask(state)
        if state.applied:
            obs[lay.history.start + np.asarray(state.applied, dtype=np.int64)] = 1.0
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
        """The env's transition: rewarded by `self.reward`, ends as the env's docstring says."""
        return self.step_batch([(state, action)])[0]

    def step_many(self, state: State, actions: Sequence[int]) -> list[StepOut]:
        """`step(state, a)` for every `a`, with the candidates measured in one batch.

        The PTX of every action is built first and the backend's `measure_many` is called once
        for all of them, so a pool backend (chronos.measure.backends.ray_pool) measures them in
        parallel; the outcomes equal those of calling `step` per action.
        """
        return self.step_batch([(state, a) for a in actions])

    def step_batch(self, transitions: Sequence[tuple[State, int]]) -> list[StepOut]:
        """`step` over many (state, action) pairs: one `measure_many` per kernel."""
        plans = [self._plan(state, int(a)) for state, a in transitions]
        by_spec: dict[str, tuple[Any, list[int]]] = {}
        for i, (state, _) in enumerate(transitions):
            if plans[i][0] == "measure":
                by_spec.setdefault(state.kernel_id, (state.spec, []))[1].append(i)
        measured: dict[int, Any] = {}
        for spec, idx in by_spec.values():
            for i, m in zip(idx, self.measure_many(spec, [plans[i][1] for i in idx]), strict=True):
                measured[i] = m
        return [
            self._outcome(state, int(a), plans[i], measured.get(i))
            for i, (state, a) in enumerate(transitions)
        ]

    def _plan(self, state: State, a: int) -> tuple[str, str]:
        """(kind, detail) of a step before measuring: masked, stop, no-op (reason) or measure
        (the new PTX)."""
        if state.done:
            raise RuntimeError("the episode has ended")
        if not self.mask(state)[a]:
            return "masked", ""
        if a == self.layout.stop:
            return "stop", ""
        new_ptx, changed, why = self.apply(state, a)
        if not changed or new_ptx == state.ptx:
            return "noop", why
        return "measure", new_ptx

    def _outcome(self, state: State, a: int, plan: tuple[str, str], m: Any) -> StepOut:
        kind, detail = plan
        nxt = replace(state, steps=state.steps + 1)
        info: dict[str, Any] = {"reason": "", "invalid": ""}
        invalid = False
        if kind == "masked":
            reward, terminated, invalid = self.reward.invalid(), True, True
            info["invalid"] = info["reason"] = "masked action"
        elif kind == "stop":
            reward, terminated, info["reason"] = self.reward.stop(), True, "stop"
        elif kind == "noop":
            reward, terminated = self.reward.stop(), True
            info["reason"] = f"no-op: {detail}" if detail else "no-op"
        elif not m.valid or m.cycles is None or not m.cycles > 0:
            reward, terminated, invalid = self.reward.invalid(), True, True
            info["invalid"] = info["reason"] = str(m.error or "invalid measurement")
        else:
            nxt = replace(
                nxt,
                ptx=detail,
                applied=state.applied + (a,),
                cycles=float(m.cycles),
                measurement=m,
            )
            c_0 = self.initial(state.spec).cycles
            reward = self.reward.applied(state.cycles, nxt.cycles, c_0)
            terminated = False
            info["reason"] = "applied"
        truncated = (not terminated) and nxt.steps >= self.max_steps
        nxt = replace(nxt, done=terminated or truncated)
        return StepOut(nxt, float(reward), bool(terminated), bool(truncated), invalid, info, m)
