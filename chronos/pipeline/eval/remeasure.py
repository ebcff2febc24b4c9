"""Novel sequences are counted only after a fresh process measures them again (issue 27).

A novel sequence is a claim that GRPO found something greedy did not. Its cycles came from the
run's MDP, its memos and its measurement store; a stale store record or state carried in the
process would make a claim nobody can reproduce. So every candidate, and greedy's own sequence
on the same kernel, is applied and measured again in a new Python process (spawned, not
forked: nothing of the run's memory comes along) on the same backend with an empty in-memory
store, and the candidate counts only if it still beats greedy there by more than `min_gain`.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

Job = tuple[str, tuple[str, ...]]
"""(kernel id, action names applied in order)."""


@dataclass(frozen=True)
class Remeasured:
    """One sequence measured again: its base and final cycles (None: it did not replay)."""

    kernel_id: str
    actions: tuple[str, ...]
    base_cycles: float | None
    final_cycles: float | None
    error: str = ""


def _replay(
    backend: str, options: dict[str, Any], modules: list[str], jobs: list[Job], store: Any
) -> list[Remeasured]:
    """In the fresh process: apply each sequence from the kernel's PTX and measure it."""
    from chronos.measure import make_backend
    from envs.mdp import TransformMDP
    from kernels import import_modules, load

    import_modules(modules)
    out = []
    steps = max((len(seq) for _, seq in jobs), default=0) + 1
    with make_backend(backend, store=store, **options) as be:
        mdp = TransformMDP(be, max_steps=steps)
        names = list(mdp.layout.action_names)
        for kid, seq in jobs:
            try:
                state = base = mdp.initial(load(kid))
            except Exception as exc:  # a kernel this process cannot load: not re-measured
                out.append(Remeasured(kid, tuple(seq), None, None, f"{type(exc).__name__}: {exc}"))
                continue
            error = ""
            for name in seq:
                step = mdp.step(state, names.index(name))
                if step.invalid or step.info.get("reason") != "applied":
                    error = f"{name}: {step.info.get('reason') or step.info.get('invalid')}"
                    break
                state = step.state
            final = None if error else float(state.cycles)
            out.append(Remeasured(kid, tuple(seq), float(base.cycles), final, error))
    return out


def remeasure(
    backend: str,
    options: dict[str, Any],
    modules: Sequence[str],
    jobs: Sequence[Job],
    replay_store: str | None = None,
) -> list[Remeasured]:
    """`jobs` measured again in one new process on `backend` with an empty store (`replay`
    serves from `replay_store`, the recording it replays, and measures nothing)."""
    if not jobs:
        return []
    store = replay_store if backend == "replay" else None
    args = (backend, dict(options), list(modules), list(jobs), store)
    try:
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            return pool.submit(_replay, *args).result()
    except Exception as exc:  # the fresh process failed: nothing is confirmed, the run goes on
        why = f"fresh process failed: {type(exc).__name__}: {exc}"
        return [Remeasured(kid, tuple(seq), None, None, why) for kid, seq in jobs]


def confirm_novel(
    candidates: dict[Job, float],
    greedy: dict[str, tuple[str, ...]],
    fresh: Sequence[Remeasured],
    min_gain: float,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(confirmed, rejected) novel sequences: a candidate (kernel, actions) -> its run's
    cycles / greedy's - 1 is confirmed when its fresh cycles beat greedy's fresh cycles on the
    kernel by more than `min_gain`."""
    by_job = {(r.kernel_id, r.actions): r for r in fresh}
    confirmed, rejected = [], []
    for (kid, seq), claimed in candidates.items():
        mine, theirs = by_job.get((kid, seq)), by_job.get((kid, greedy.get(kid, ())))
        row: dict[str, Any] = {"kernel_id": kid, "actions": list(seq), "vs_greedy": claimed}
        if mine is None or theirs is None or mine.final_cycles is None or not theirs.final_cycles:
            row["why"] = (mine.error if mine else "") or "not re-measured"
            rejected.append(row)
            continue
        row["fresh_vs_greedy"] = mine.final_cycles / theirs.final_cycles - 1
        row["fresh_cycles"] = mine.final_cycles
        row["fresh_greedy_cycles"] = theirs.final_cycles
        if mine.final_cycles < theirs.final_cycles * (1 - min_gain):
            confirmed.append(row)
        else:
            row["why"] = "not better than greedy when measured again"
            rejected.append(row)
    return confirmed, rejected
