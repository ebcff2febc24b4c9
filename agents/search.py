"""Search baselines over the one MDP (envs/mdp.py): greedy, beam, random and exhaustive.

Every search branches from `TransformMDP` states and measures through the MDP's backend (and so
its measurement store: a PTX text measured once is a cache hit afterwards). Each returns a
`SearchResult`: the best sequence found, its cycles and log-gain (labelled with the backend
that produced them), the measurements it spent and its wall time.

- greedy: measure every legal transform, take the best, stop when none improves (greedy v2,
  the BC teacher; `agents/greedy.py` builds its data set from this search).
- beam(k): keep the k best states per depth. Lane 0 of the beam is always the greedy
  successor of the previous lane 0, so beam(k) is never worse than greedy (beam(1) is greedy
  without its stopping rule).
- random(N): N episodes of uniformly random legal actions (stop included), seeded.
- exhaustive: every mask-respecting sequence up to `max_steps`, by depth-first search memoised
  on (code hash, set of applied transforms, steps left): the mask depends only on the PTX and
  the applied set, so two orders reaching the same code with the same applied set are one
  state. The code hash is the PTX's (`dedupe="ptx"`: the exact optimum) or, by default, the
  assembled SASS's when the backend reports one (`dedupe="sass"`, the emulated backend's
  `extra["sass_sha256"]`): orders that commute up to ptxas's output are one state, and a child
  whose SASS equals its parent's (a transform that is a no-op on this state's machine code)
  and that allows no transform its parent does not is measured but not expanded. It is the
  optimum the learners are measured against, up to that pruning; `max_states` and
  `max_seconds` bound it, and a bounded result says so.

The best state of a search is the best state it visited (any prefix is a valid sequence: the
agent may stop there), and invalid or no-op steps are never part of a result.

Every search shows a progress bar (chronos.progress: what it counts, measurements, the best
speed-up so far, an ETA against its bound) and logs a one-line summary when it ends;
`progress=False` turns the bar off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chronos.progress import Progress
from chronos.ptx import ptx_sha256
from envs.mdp import State, TransformMDP

METHODS = ("greedy", "beam", "random", "exhaustive")


class SearchBudgetExceeded(RuntimeError):
    """Exhaustive search visited more than `max_states` states (the result is not the optimum)."""


@dataclass
class SearchResult:
    """One kernel's search: best sequence, its cycles and gain, and what the search cost.

    `measurements` is the number of distinct PTX texts the search measured (the base
    included): what it costs on an empty store. `cache_hits` counts measurement requests that
    repeated one of them. `backend_misses` is what the backend actually had to measure (the
    rest came from its store; None when the backend keeps no statistics).
    """

    method: str
    kernel_id: str
    backend: str
    device: str
    estimate: bool
    base_cycles: float
    best_cycles: float
    actions: list[int]
    sequence: list[str]
    measurements: int
    cache_hits: int
    backend_misses: int | None
    wall_s: float
    states: int = 0  # distinct states expanded (exhaustive: the size of the search space)
    complete: bool = True  # exhaustive: False when a budget stopped it
    unique_cubins: int = 0  # exhaustive: distinct SASS (or PTX, without SASS hashes) measured
    stopped: str = ""  # exhaustive: which budget stopped it ("" when complete)
    best_ptx: str = field(default="", repr=False)
    best_measurement: Any = field(default=None, repr=False)

    @property
    def log_gain(self) -> float:
        """log(base / best): the MDP's summed reward without step costs (0 = no change)."""
        return math.log(self.base_cycles / self.best_cycles)

    @property
    def improvement(self) -> float:
        """best/base - 1 (negative is faster), as the design quotes improvements."""
        return self.best_cycles / self.base_cycles - 1.0

    @property
    def backend_label(self) -> str:
        return "emulated estimate" if self.estimate else self.backend

    def summary(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "kernel_id": self.kernel_id,
            "backend": self.backend,
            "device": self.device,
            "estimate": self.estimate,
            "base_cycles": self.base_cycles,
            "best_cycles": self.best_cycles,
            "log_gain": self.log_gain,
            "improvement": self.improvement,
            "actions": self.sequence,
            "measurements": self.measurements,
            "cache_hits": self.cache_hits,
            "backend_misses": self.backend_misses,
            "states": self.states,
            "unique_cubins": self.unique_cubins,
            "complete": self.complete,
            "stopped": self.stopped,
            "wall_s": self.wall_s,
        }


class _Meter:
    """Counts the distinct PTX texts a search measures (watching `mdp.measure_many`, which
    `mdp.measure` and every step go through), and drives the search's progress bar."""

    def __init__(self, mdp: TransformMDP, progress: bool = True) -> None:
        self.mdp = mdp
        self.seen: set[str] = set()
        self.calls = 0
        self.progress = progress
        self.bar: Progress | None = None
        self._unit = "measurement"
        self._base: float | None = None
        self._watch = mdp.watching(self._on_batch)
        self._t0 = time.perf_counter()
        self._misses0 = self._misses()

    def _misses(self) -> int | None:
        stats = getattr(self.mdp.backend, "stats", None)
        return int(stats["misses"]) if isinstance(stats, dict) and "misses" in stats else None

    def __enter__(self) -> _Meter:
        self._watch.__enter__()
        return self

    def _on_batch(self, spec: Any, ptxs: Sequence[str], ms: list[Any]) -> None:
        self.calls += len(ptxs)
        before = len(self.seen)
        self.seen.update(ptx_sha256(p) for p in ptxs)
        self._note(ms, len(self.seen) - before)

    def begin(
        self, method: str, s0: State, unit: str = "measurement", total: int | None = None
    ) -> _Meter:
        """Open the bar once the base state is measured: `unit` is what the search counts
        (`tick`), measurements when it is "measurement", against `total` when known."""
        self._base, self._unit = s0.cycles, unit
        meas = s0.measurement
        label = "emulated estimate" if getattr(meas, "estimate", False) else ""
        label = label or str(getattr(self.mdp.backend, "name", getattr(meas, "backend", "")))
        self.bar = Progress(
            f"{method} {s0.kernel_id}", unit=unit, total=total, progress=self.progress, label=label
        )
        return self

    def _note(self, ms: Sequence[Any], new: int) -> None:
        """After a measured batch: count new measurements, keep the best improvement."""
        if self.bar is None or self._base is None:
            return
        cycles = [m.cycles for m in ms if getattr(m, "valid", False) and m.cycles]
        best = min(cycles) / self._base - 1.0 if cycles else None
        n = new if self._unit == "measurement" else 0
        self.bar.update(n, improvement=best, measured=len(self.seen))

    def tick(self, n: int = 1, **fields: Any) -> None:
        """Count `n` of the search's own units (states, depths, episodes)."""
        if self.bar is not None:
            self.bar.update(n, **fields)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None and self.bar.summary_line is None:
            self.bar.close("interrupted" if exc[0] is not None else "")
        self._watch.__exit__(*exc)

    def result(
        self, method: str, s0: State, best: State, outcome: str = "", **kw: Any
    ) -> SearchResult:
        """The SearchResult; closes the bar, logging the one-line summary (with `outcome`)."""
        m0 = self._misses0
        m1 = self._misses()
        backend = self.mdp.backend
        meas = best.measurement
        if self.bar is not None:
            self.bar.best = best.cycles / s0.cycles - 1.0
            self.bar.fields["measured"] = len(self.seen | {ptx_sha256(s0.ptx)})
            self.bar.close(outcome)
        return SearchResult(
            method=method,
            kernel_id=s0.kernel_id,
            backend=str(getattr(backend, "name", getattr(meas, "backend", "?"))),
            device=str(getattr(backend, "device", getattr(meas, "device", ""))),
            estimate=bool(getattr(meas, "estimate", False)),
            base_cycles=s0.cycles,
            best_cycles=best.cycles,
            actions=list(best.applied),
            sequence=[str(self.mdp.layout.action_names[a]) for a in best.applied],
            # The base is measured by mdp.initial, possibly before this search: count it once.
            measurements=len(self.seen | {ptx_sha256(s0.ptx)}),
            cache_hits=self.calls - len(self.seen),
            backend_misses=None if m0 is None or m1 is None else m1 - m0,
            wall_s=time.perf_counter() - self._t0,
            best_ptx=best.ptx,
            best_measurement=meas,
            **kw,
        )


def _expand(mdp: TransformMDP, state: State) -> tuple[list[int], list[Any]]:
    """Every legal transform of `state` (stop excluded) and its step, measured in one batch."""
    if state.done or state.steps >= mdp.max_steps:
        return [], []
    actions = [int(a) for a in np.flatnonzero(mdp.mask(state)) if a != mdp.layout.stop]
    # One batch per state: a pool backend (cluster=ray) measures the candidates in parallel.
    return actions, list(mdp.step_many(state, actions))


def _applied(step: Any) -> bool:
    return not step.invalid and step.info.get("reason") == "applied"


def children(mdp: TransformMDP, state: State) -> list[tuple[int, State]]:
    """(action, next state) for every legal transform that applied and measured valid."""
    actions, steps = _expand(mdp, state)
    return [(a, st.state) for a, st in zip(actions, steps, strict=True) if _applied(st)]


@dataclass
class GreedyTrace:
    """Greedy's decisions as BC rows: what it saw (obs, mask) and chose (label, stop last).

    Per row also what it measured and would otherwise throw away, for the action-value
    learner (agents/qvalue.py): `gains[a]` = log(parent / child cycles) of every child that
    applied and measured valid (NaN for illegal, no-op, invalid and stop), and `invalid[a]`
    for the children whose step was invalid (the transform broke the kernel).
    """

    obs: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    gains: list[np.ndarray] = field(default_factory=list)
    invalid: list[np.ndarray] = field(default_factory=list)

    def record(self, mdp: TransformMDP, state: State, actions: list[int], steps: list[Any]) -> None:
        """One decision row: the state's observation and mask, its children's gains."""
        n = mdp.layout.n_actions
        gains = np.full(n, np.nan, dtype=np.float32)
        invalid = np.zeros(n, dtype=bool)
        for a, st in zip(actions, steps, strict=True):
            if st.invalid:
                invalid[a] = True
            elif _applied(st):
                gains[a] = math.log(state.cycles / st.state.cycles)
        self.obs.append(mdp.observe(state))
        self.masks.append(mdp.mask(state))
        self.gains.append(gains)
        self.invalid.append(invalid)


def greedy(
    mdp: TransformMDP,
    spec: Any,
    min_gain: float = 0.0,
    trace: GreedyTrace | None = None,
    progress: bool = True,
) -> SearchResult:
    """Greedy v2: take the legal transform with the fewest cycles while it improves by more
    than `min_gain`; ties go to the lower action id (deterministic)."""
    with _Meter(mdp, progress) as meter:
        s0 = state = mdp.initial(spec)
        meter.begin("greedy", s0, "step", mdp.max_steps)
        while True:
            actions, steps = _expand(mdp, state)
            kids = [(a, st.state) for a, st in zip(actions, steps, strict=True) if _applied(st)]
            if trace is not None:
                trace.record(mdp, state, actions, steps)
            best = min(kids, key=lambda c: (c[1].cycles, c[0]), default=None)
            if best is None or not best[1].cycles < state.cycles * (1.0 - min_gain):
                if trace is not None:
                    trace.labels.append(mdp.layout.stop)
                break
            if trace is not None:
                trace.labels.append(best[0])
            state = best[1]
            meter.tick()
            if state.done or state.steps >= mdp.max_steps:
                break
        return meter.result("greedy", s0, state)


Ranker = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(observation, legal mask) -> a score per action; higher is more promising."""


def guided(
    mdp: TransformMDP,
    spec: Any,
    rank: Ranker | Sequence[Ranker],
    k: int = 2,
    min_gain: float = 0.0,
    progress: bool = True,
) -> SearchResult:
    """Greedy over a learned ranking's top `k`: at each state measure only the `k` legal
    transforms `rank` scores highest (ties to the lower id), take the fastest if it improves by
    more than `min_gain`, else stop. At most 1 + k x max_steps measurements, against greedy's
    one per legal transform per step: a policy's prior spends the budget search would spread.

    Several rankers measure the union of their top `k` (at most 1 + k x rankers x max_steps):
    learners with different inductive biases (BC imitates a family's habits, Q values moves
    that paid anywhere) cover each other's blind spots for the price of the extra children."""
    if k < 1:
        raise ValueError(f"guided search needs k >= 1, got {k}")
    ranks = [rank] if callable(rank) else list(rank)
    if not ranks:
        raise ValueError("guided search needs at least one ranker")
    name = f"guided top-{k}" + (f" x {len(ranks)} rankers" if len(ranks) > 1 else "")
    with _Meter(mdp, progress) as meter:
        s0 = state = mdp.initial(spec)
        meter.begin(name, s0, "step", mdp.max_steps)
        while not (state.done or state.steps >= mdp.max_steps):
            mask = mdp.mask(state)
            legal = [int(a) for a in np.flatnonzero(mask) if a != mdp.layout.stop]
            obs = mdp.observe(state)
            top: list[int] = []
            for r in ranks:
                scores = np.asarray(r(obs, mask), dtype=float)
                top += sorted(legal, key=lambda a, s=scores: (-s[a], a))[:k]
            top = list(dict.fromkeys(top))
            steps = mdp.step_many(state, top)
            kids = [(a, st.state) for a, st in zip(top, steps, strict=True) if _applied(st)]
            best = min(kids, key=lambda c: (c[1].cycles, c[0]), default=None)
            if best is None or not best[1].cycles < state.cycles * (1.0 - min_gain):
                break
            state = best[1]
            meter.tick()
        suffix = "" if len(ranks) == 1 else f"x{len(ranks)}"
        return meter.result(f"guided_top{k}{suffix}", s0, state)


def _key(state: State) -> tuple[str, frozenset[int]]:
    return ptx_sha256(state.ptx), frozenset(state.applied)


def beam(mdp: TransformMDP, spec: Any, width: int = 4, progress: bool = True) -> SearchResult:
    """Beam search of width `width` whose lane 0 follows greedy (so it never loses to it)."""
    if width < 1:
        raise ValueError("beam width must be at least 1")
    with _Meter(mdp, progress) as meter:
        s0 = mdp.initial(spec)
        meter.begin(f"beam{width}", s0, "depth", mdp.max_steps)
        best, frontier, n = s0, [s0], 0
        while frontier:
            lane0: State | None = None
            pool: dict[tuple[str, frozenset[int]], State] = {}
            for i, st in enumerate(frontier):
                n += 1
                kids = children(mdp, st)
                if i == 0 and kids:
                    lane0 = min(kids, key=lambda c: (c[1].cycles, c[0]))[1]
                for _, c in kids:
                    pool.setdefault(_key(c), c)
            ranked = sorted(pool.values(), key=lambda c: (c.cycles, c.applied))
            if lane0 is not None:
                ranked = [lane0] + [c for c in ranked if _key(c) != _key(lane0)]
            frontier = ranked[:width]
            for c in frontier:
                if c.cycles < best.cycles:
                    best = c
            meter.tick(states=n)
        return meter.result(f"beam{width}", s0, best, states=n)


def random_search(
    mdp: TransformMDP, spec: Any, episodes: int = 64, seed: int = 0, progress: bool = True
) -> SearchResult:
    """`episodes` episodes of uniformly random legal actions (stop included), seeded."""
    rng = np.random.default_rng(seed)
    with _Meter(mdp, progress) as meter:
        s0 = mdp.initial(spec)
        meter.begin("random", s0, "episode", episodes)
        best = s0
        for _ in range(episodes):
            state = s0
            while not state.done:
                legal = np.flatnonzero(mdp.mask(state))
                out = mdp.step(state, int(rng.choice(legal)))
                if out.invalid or out.info.get("reason") != "applied":
                    break
                state = out.state
                if state.cycles < best.cycles:
                    best = state
            meter.tick()
        return meter.result("random", s0, best, states=episodes)


DEDUPE = ("sass", "ptx")


def _legal(mdp: TransformMDP, state: State) -> set[int]:
    """The transforms the mask allows in `state` (stop excluded)."""
    return {int(a) for a in np.flatnonzero(mdp.mask(state)) if a != mdp.layout.stop}


def code_key(state: State, dedupe: str = "sass") -> str:
    """What a state runs: its SASS hash when `dedupe` is "sass" and the measurement carries one
    (`extra["sass_sha256"]`), else its PTX hash."""
    if dedupe == "sass":
        extra = getattr(state.measurement, "extra", None)
        sass = extra.get("sass_sha256") if isinstance(extra, dict) else None
        if sass:
            return f"sass:{sass}"
    return f"ptx:{ptx_sha256(state.ptx)}"


class _Exhaustive:
    """The depth-first search behind `exhaustive`: memo, budget and the state count."""

    def __init__(
        self,
        mdp: TransformMDP,
        meter: _Meter,
        max_states: int,
        partial_ok: bool,
        max_seconds: float | None,
        dedupe: str,
    ) -> None:
        self.mdp, self.meter, self.dedupe = mdp, meter, dedupe
        self.max_states, self.partial_ok, self.max_seconds = max_states, partial_ok, max_seconds
        self.memo: dict[tuple[str, frozenset[int], int], State] = {}
        self.cubins: set[str] = set()
        self.expanded = 0  # states whose children were measured: the budget's count
        self.stopped = ""
        self.deadline = None if max_seconds is None else time.perf_counter() + max_seconds

    def over_budget(self, kernel_id: str) -> bool:
        if not self.stopped:
            if self.expanded >= self.max_states:
                self.stopped = f"its budget of {self.max_states} states"
            elif self.deadline is not None and time.perf_counter() > self.deadline:
                self.stopped = f"its time budget of {self.max_seconds:g} s"
        if self.stopped and not self.partial_ok:
            raise SearchBudgetExceeded(
                f"exhaustive search of {kernel_id} passed {self.stopped} (max_steps="
                f"{self.mdp.max_steps}); raise the budget or use beam search"
            )
        return bool(self.stopped)

    def solve(self, state: State, code: str) -> State:
        """The best state reachable from `state` (whose machine code is `code`)."""
        mdp, dedupe = self.mdp, self.dedupe
        key = (code, frozenset(state.applied), mdp.max_steps - state.steps)
        if key in self.memo:
            return self.memo[key]
        if self.over_budget(state.kernel_id):
            return state
        best = state
        self.expanded += 1
        kids = [(a, c, code_key(c, dedupe)) for a, c in children(mdp, state)]
        self.cubins.update(k for _, _, k in kids)
        # Best child first: the first descent is greedy's path, so a budget-limited search
        # (partial_ok) is still never worse than greedy.
        legal = _legal(mdp, state)
        for _, child, child_code in sorted(kids, key=lambda c: (c[1].cycles, c[0])):
            # The same machine code as this state and no transform it does not allow: a no-op
            # here, whose subtree this state's covers. Measured, not expanded.
            noop = dedupe == "sass" and child_code == code and code.startswith("sass:")
            if noop and _legal(mdp, child) <= legal:
                cand = child
            else:
                cand = self.solve(child, child_code)
            if (cand.cycles, len(cand.applied)) < (best.cycles, len(best.applied)):
                best = cand
        if not self.stopped:  # a state cut short by a budget holds no optimum
            self.memo[key] = best
        self.meter.tick(cubins=len(self.cubins))
        return best


def exhaustive(
    mdp: TransformMDP,
    spec: Any,
    max_states: int = 20_000,
    partial_ok: bool = False,
    max_seconds: float | None = None,
    dedupe: str = "sass",
    progress: bool = True,
) -> SearchResult:
    """The optimum over every mask-respecting sequence of up to `mdp.max_steps` transforms
    (states deduplicated by `dedupe`, see the module docstring).

    Raises SearchBudgetExceeded after `max_states` distinct states or `max_seconds` of wall
    time unless `partial_ok`, in which case the result carries `complete=False` and `stopped`
    names the budget (the best found, not the optimum; children are searched best first, so it
    is at least greedy's result given a few states).
    """
    if dedupe not in DEDUPE:
        raise ValueError(f"dedupe must be one of {DEDUPE}, got {dedupe!r}")
    if max_states < 1:
        raise ValueError(f"max_states must be at least 1, got {max_states}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    with _Meter(mdp, progress) as meter:
        run = _Exhaustive(mdp, meter, max_states, partial_ok, max_seconds, dedupe)
        s0 = mdp.initial(spec)
        meter.begin("exhaustive", s0, "state", max_states)
        code0 = code_key(s0, dedupe)
        run.cubins.add(code0)
        best = run.solve(s0, code0)
        stopped = run.stopped
        outcome = f"stopped at {stopped}: the best found, not the optimum" if stopped else ""
        return meter.result(
            "exhaustive",
            s0,
            best,
            outcome=outcome or "complete",
            states=run.expanded,
            complete=not stopped,
            unique_cubins=len(run.cubins),
            stopped=stopped,
        )


def search(mdp: TransformMDP, spec: Any, method: str, **kw: Any) -> SearchResult:
    """Dispatch by name: greedy | beam | random | exhaustive (keyword options per method)."""
    fns: dict[str, Callable[..., SearchResult]] = {
        "greedy": greedy,
        "beam": beam,
        "random": random_search,
        "exhaustive": exhaustive,
    }
    if method not in fns:
        raise ValueError(f"unknown search {method!r}; known: {', '.join(METHODS)}")
    return fns[method](mdp, spec, **kw)


def run_search(
    mdp: TransformMDP, specs: Sequence[Any], method: str, **kw: Any
) -> list[SearchResult]:
    return [search(mdp, s, method, **kw) for s in specs]
