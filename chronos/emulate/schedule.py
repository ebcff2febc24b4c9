"""Which instruction runs next, for which threads: the SIMT scheduling loop of a Machine.

While all live threads share one PC the loop runs in *uniform* mode (a scalar PC, no masks).
A branch that splits the threads switches to *divergent* mode, where each thread has its own
PC and every step runs the lowest pending PC for the threads that are there. Lowest-PC-first
reconverges threads at the join point of structured control flow (forward branches wait at
the join; early loop leavers wait behind the loop), and the loop drops back to uniform mode
as soon as all PCs agree again.

Barriers: a thread that reaches `bar.sync` waits; once every live thread of its block waits,
the block is released. Exited threads do not count (as on sm_70+).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate.errors import EmulationError, StepLimitExceeded, TimeLimitExceeded
from chronos.emulate.program import BRA, EXIT, OP, Op

if TYPE_CHECKING:
    from chronos.emulate.executor import Machine

CLOCK_CHECK_EVERY = 64
"""Steps between two looks at the wall clock (a step costs ~0.1 ms; a look ~0.1 us)."""

_count = np.count_nonzero
"""Lanes set in a mask: a quarter of `ndarray.any`/`all`'s cost, paid on nearly every step."""


class Scheduler:
    """The PCs of one run: one scalar `pc` in uniform mode, `pcs` per thread in divergent
    mode, and the threads `waiting` at a barrier. `run` executes to the end."""

    def __init__(
        self, m: Machine, max_steps: int, deadline: float | None, seconds: float | None
    ) -> None:
        self.m = m
        self.ops = m.program.ops
        self.n_ops = len(self.ops)
        self.runs = m.program.runs
        self.max_steps = max_steps
        self.deadline = deadline
        self.seconds = seconds
        self.live = m.live
        self.all_live = bool(self.live.all())
        self.uniform = True
        self.pc = 0
        self.pcs = np.zeros(m.N, np.int64)
        self.waiting = np.zeros(m.N, bool)
        self.steps = 0
        m.current = 0

    def run(self) -> int:
        """Execute to completion; returns the number of steps."""
        while self._run_uniform() if self.uniform else self._run_divergent():
            pass
        self.m.live = self.live
        return self.steps

    # --- shared by both modes ---------------------------------------------------------------

    def _issue(self, pc: int, mask: np.ndarray | None) -> Op:
        """Count a step at `pc` for the threads in `mask` (None: all), within the budget."""
        op = self.ops[pc]
        steps = self.steps + 1
        self.steps = steps
        if steps > self.max_steps or (self.deadline is not None and steps % CLOCK_CHECK_EVERY == 0):
            self._over_budget(steps, op)
        m = self.m
        m.steps = steps
        m.current = pc
        if m.trace is not None:
            m.trace.step(pc, mask)
        return op

    def _issue_rest(self, start: int, stop: int, mask: np.ndarray | None) -> None:
        """`_issue` each pc of `start`..`stop - 1` (the rest of a run), at once where no step
        among them reaches the step budget or a look at the clock."""
        n = stop - start
        steps = self.steps
        clock = self.deadline is not None and (steps + n) // CLOCK_CHECK_EVERY > (
            steps // CLOCK_CHECK_EVERY
        )
        if n <= 0 or steps + n > self.max_steps or clock:
            for q in range(start, stop):
                self._issue(q, mask)
            return
        m = self.m
        self.steps = m.steps = steps + n
        m.current = stop - 1
        if m.trace is not None:
            m.trace.steps(range(start, stop), mask)

    def _over_budget(self, steps: int, op: Any) -> None:
        """Raise when `steps` passes the step budget or the clock its deadline."""
        if steps > self.max_steps:
            raise StepLimitExceeded(f"more than {self.max_steps} steps", op.line, op.text)
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise TimeLimitExceeded(
                f"stopped after {self.seconds:g} s of wall clock ({steps} steps)",
                op.line,
                op.text,
            )

    def _check_barrier(self, op: Op) -> None:
        m = self.m
        if op.barrier_count is not None and op.barrier_count < m.threads_per_block:
            raise EmulationError(
                f"barrier for {op.barrier_count} threads in a block of "
                f"{m.threads_per_block}: partial barriers are not emulated",
                op.line,
                op.text,
            )

    def _set_live(self, live: np.ndarray) -> None:
        """Threads still running (exited ones drop out); instructions read `Machine.live`."""
        self.live = live
        self.m.live = live
        self.all_live = False

    # --- uniform mode -----------------------------------------------------------------------

    def _run_uniform(self) -> bool:
        """Run with one PC until a branch splits the threads (True) or the kernel ends."""
        m = self.m
        n_ops, R, runs = self.n_ops, m.R, self.runs
        pc = self.pc
        while pc < n_ops:
            mask = None if self.all_live else self.live
            op = self._issue(pc, mask)
            kind = op.kind
            if kind == OP:
                run = runs.get(pc)
                if run is not None:  # unguarded, independent: one call (chronos.emulate.batch)
                    self._issue_rest(pc + 1, run.stop, mask)
                    run.fn(m, mask)
                    pc = run.stop
                    continue
                eff = mask
                if op.guard is not None:
                    g = R[op.guard]
                    eff = ~g if op.guard_neg else g
                    if mask is not None:
                        eff = eff & mask
                    n = _count(eff)
                    if not n:
                        pc += 1
                        continue
                    if mask is None and n == eff.size:
                        eff = None
                op.fn(m, eff)  # type: ignore[misc]
                pc += 1
            elif kind == BRA:
                nxt = self._uniform_branch(op, pc)
                if nxt is None:
                    return True
                pc = nxt
            elif kind == EXIT:
                if not self._uniform_exit(op):
                    return False
                pc += 1
            else:
                self._check_barrier(op)
                if m.races is not None:
                    m.races.barrier()
                pc += 1
        return False

    def _uniform_branch(self, op: Op, pc: int) -> int | None:
        """The next PC after branch `op` at `pc`; None when it splits the threads (the
        scheduler is then in divergent mode)."""
        if op.guard is None:
            return op.target
        live, all_live = self.live, self.all_live
        g = self.m.R[op.guard]
        taken = ~g if op.guard_neg else g
        if not all_live:
            taken = taken & live
        n = _count(taken)
        if not n:
            return pc + 1
        if n == taken.size if all_live else n == _count(live):
            return op.target
        self.pcs = np.where(taken, op.target, pc + 1).astype(np.int64)
        self.uniform = False
        return None

    def _uniform_exit(self, op: Op) -> bool:
        """Retire the threads exit `op` applies to; False when none is left running."""
        if op.guard is None:
            self._set_live(np.zeros(self.m.N, bool))
            return False
        g = self.m.R[op.guard]
        ex = (~g if op.guard_neg else g) & self.live
        if ex.any():
            self._set_live(self.live & ~ex)
            if not self.live.any():
                return False
        return True

    # --- divergent mode ---------------------------------------------------------------------

    def _run_divergent(self) -> bool:
        """Run the lowest pending PC, step by step, until all live threads share one PC again
        (True: back to uniform mode) or none is left (False)."""
        while True:
            runnable = self.live & ~self.waiting
            if not _count(runnable):
                if not _count(self.waiting & self.live):
                    return False
                # Every live thread waits at a barrier: release them all.
                if self.m.races is not None:
                    self.m.races.barrier(self.m.block_of[self.waiting])
                self.pcs = self.pcs + self.waiting
                self.waiting = np.zeros(self.m.N, bool)
            else:
                cand = np.where(runnable, self.pcs, self.n_ops + 1)
                pc = int(cand.min())
                if pc >= self.n_ops:
                    self._set_live(self.live & ~(runnable & (self.pcs >= self.n_ops)))
                    if not _count(self.live):
                        return False
                    continue
                self._divergent_step(pc, cand == pc)
            if _count(self.waiting):
                continue
            lp = self.pcs[self.live]
            if lp.size == 0:
                return False
            lo = int(lp.min())
            if lo == int(lp.max()):
                self.uniform = True
                self.pc = lo
                self.all_live = bool(self.live.all())
                return True

    def _divergent_step(self, pc: int, active: np.ndarray) -> None:
        """Run the instruction at `pc` for the `active` threads (those whose PC it is)."""
        m = self.m
        op = self._issue(pc, active)
        kind = op.kind
        cond = active
        if op.guard is not None:  # never on a barrier: the decoder refuses those
            g = m.R[op.guard]
            cond = active & (~g if op.guard_neg else g)
        if kind == OP:
            if _count(cond):
                op.fn(m, cond)  # type: ignore[misc]
            self.pcs = self.pcs + active
        elif kind == BRA:
            self.pcs = np.where(cond, op.target, np.where(active, pc + 1, self.pcs))
        elif kind == EXIT:
            self._set_live(self.live & ~cond)
            self.pcs = self.pcs + (active & ~cond)
        else:
            self._check_barrier(op)
            self._arrive(active)

    def _arrive(self, active: np.ndarray) -> None:
        """`active` threads reach a barrier; release the blocks none of whose live threads
        is still running."""
        m = self.m
        waiting = self.waiting | active
        blocks_busy = np.bincount(m.block_of[self.live & ~waiting], minlength=m.n_blocks) > 0
        release = waiting & ~blocks_busy[m.block_of]
        if _count(release):
            if m.races is not None:
                m.races.barrier(m.block_of[release])
            self.pcs = self.pcs + release
            waiting = waiting & ~release
        self.waiting = waiting
