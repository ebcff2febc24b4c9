"""The SIMT executor: every thread of every block as one NumPy lane.

A `Machine` is the run-time state of one launch: thread geometry and special registers, the
register file, the memories (chronos.emulate.spaces) and the trace. `run` hands it to the
scheduling loop (chronos.emulate.schedule), which runs uniform while all threads share a PC
and per-thread PCs after a divergent branch, and holds threads at barriers.

Lockstep execution hides missing barriers, so with `races=True` every shared-memory access is
checked against the CUDA ordering rule (chronos.emulate.races) and the first race raises
SharedMemoryRace naming the instruction.

Bounded work: `run` stops after `max_steps` steps (StepLimitExceeded) or, inside an
`emulation_budget(seconds)` context, once that much wall-clock time has passed
(TimeLimitExceeded); either names the PTX line the kernel was at. The wall clock is a context
rather than an argument so that it reaches the run through verify/emulate unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from chronos.emulate.approx import Approx
from chronos.emulate.errors import MemoryFault, StepLimitExceeded, TimeLimitExceeded
from chronos.emulate.memory import AccessError, Arena
from chronos.emulate.program import Program
from chronos.emulate.races import SharedRaceDetector
from chronos.emulate.schedule import Scheduler
from chronos.emulate.spaces import CONST_WINDOW, PARAM_WINDOW, StateSpaces
from chronos.emulate.trace import Trace

__all__ = [
    "CLOCK_PER_STEP",
    "CONST_WINDOW",
    "DEFAULT_MAX_STEPS",
    "PARAM_WINDOW",
    "Budget",
    "Machine",
    "emulation_budget",
]

DEFAULT_MAX_STEPS = 2_000_000
CLOCK_PER_STEP = 4
"""%clock64 advances by this much per executed step: deterministic and monotone."""


@dataclass
class Budget:
    """The wall-clock limit of the runs inside one `emulation_budget` context, and how the
    last of them ended: `stopped` is "steps" or "time" when a limit stopped it (at PTX
    `line`), None otherwise."""

    seconds: float | None
    stopped: str | None = None
    line: int | None = None

    def stop(self, how: str, line: int | None) -> None:
        self.stopped, self.line = how, line


_budget: ContextVar[Budget | None] = ContextVar("chronos_emulation_budget", default=None)


@contextmanager
def emulation_budget(seconds: float | None) -> Iterator[Budget]:
    """Stop every emulator run started inside after `seconds` of wall clock (None: no limit).

    Yields the Budget, which says afterwards whether a step or time limit stopped a run.
    """
    if seconds is not None and not seconds > 0:
        raise ValueError(f"an emulation time limit must be positive, got {seconds!r}")
    budget = Budget(seconds)
    token = _budget.set(budget)
    try:
        yield budget
    finally:
        _budget.reset(token)


def special_registers(
    grid: tuple[int, int, int], block: tuple[int, int, int], padded: int, n_sms: int
) -> dict[str, np.ndarray]:
    """The per-thread values of the static special registers (%tid, %ctaid, %laneid, the lane
    masks, ...) of a launch whose blocks are padded to `padded` threads (whole warps)."""
    bx, by, bz = block
    gx, gy, gz = grid
    n = gx * gy * gz * padded
    t = np.arange(n, dtype=np.int64)
    blk = t // padded
    local = t % padded
    u32 = np.uint32
    special: dict[str, np.ndarray] = {
        "tid.x": (local % bx).astype(u32),
        "tid.y": ((local // bx) % by).astype(u32),
        "tid.z": (local // (bx * by)).astype(u32),
        "ntid.x": np.full(n, bx, u32),
        "ntid.y": np.full(n, by, u32),
        "ntid.z": np.full(n, bz, u32),
        "ctaid.x": (blk % gx).astype(u32),
        "ctaid.y": ((blk // gx) % gy).astype(u32),
        "ctaid.z": (blk // (gx * gy)).astype(u32),
        "nctaid.x": np.full(n, gx, u32),
        "nctaid.y": np.full(n, gy, u32),
        "nctaid.z": np.full(n, gz, u32),
        "laneid": (local % 32).astype(u32),
        "warpid": (local // 32).astype(u32),
        "nwarpid": np.full(n, 64, u32),
        "smid": (blk % n_sms).astype(u32),
        "nsmid": np.full(n, n_sms, u32),
        "gridid": np.zeros(n, np.uint64),
    }
    lane = (local % 32).astype(np.uint64)
    one = np.uint64(1)
    bit = (one << lane).astype(np.uint32)
    special["lanemask_eq"] = bit
    special["lanemask_lt"] = ((one << lane) - one).astype(np.uint32)
    special["lanemask_le"] = ((one << (lane + one)) - one).astype(np.uint32)
    special["lanemask_gt"] = ~special["lanemask_le"]
    special["lanemask_ge"] = ~special["lanemask_lt"]
    return special


class Machine(StateSpaces):
    """Run-time state of one launch: registers, memories, thread geometry, trace."""

    def __init__(
        self,
        program: Program,
        grid: Sequence[int],
        block: Sequence[int],
        global_mem: Arena,
        param_values: dict[str, bytes],
        dynamic_shared: int = 0,
        trace: bool = False,
        const_mem: Arena | None = None,
        n_sms: int = 132,
        races: bool = False,
        approx: Approx | None = None,
    ):
        self.program = program
        self.approx = approx if approx is not None else Approx()
        self._geometry(grid, block)
        self.special = special_registers(self.grid, self.block, self.padded, n_sms)
        # Registers start as all-ones bits (NaN, -1, true): a read before any write shows up.
        # One array per storage type serves them all: a write replaces a register's array and
        # never modifies it (chronos.emulate.operands).
        start = {
            dt: np.full(self.N, True if dt.kind == "b" else np.iinfo(dt).max, dt)
            for dt in set(program.reg_dtypes)
        }
        self.R: list[np.ndarray] = [start[dt] for dt in program.reg_dtypes]
        self.global_mem = global_mem
        self.const_mem = const_mem or Arena(0, "const")
        self.symbols = {}
        self._layout_variables(dynamic_shared)
        self._bind_params(param_values)
        self.special["dynamic_smem_size"] = np.full(self.N, dynamic_shared, np.uint32)
        self.special["total_smem_size"] = np.full(self.N, self.shared.size, np.uint32)
        self.trace = Trace(self.n_warps, self.warps_per_block) if trace else None
        self.races = (
            SharedRaceDetector(
                self.shared.data.size, self.shared.stride, self.n_blocks, self.padded
            )
            if races
            else None
        )
        self.steps = 0
        self.cp_groups = np.zeros(self.N, np.int64)
        self.cp_pending = []

    def _geometry(self, grid: Sequence[int], block: Sequence[int]) -> None:
        """Thread counts and each emulated thread's block and index in it; blocks are padded
        to whole warps, and the padding threads are never live."""
        self.grid = tuple(int(g) for g in grid)
        self.block = tuple(int(b) for b in block)
        bx, by, bz = self.block
        gx, gy, gz = self.grid
        self.threads_per_block = bx * by * bz
        self.warps_per_block = -(-self.threads_per_block // 32)
        self.padded = self.warps_per_block * 32
        self.n_blocks = gx * gy * gz
        self.N = self.n_blocks * self.padded
        self.n_warps = self.n_blocks * self.warps_per_block
        t = np.arange(self.N, dtype=np.int64)
        self.thread_ids = t
        self.block_of = t // self.padded
        self.local_id = t % self.padded
        self.live = self.local_id < self.threads_per_block

    def dynamic_special(self, name: str) -> np.ndarray:
        clock = self.steps * CLOCK_PER_STEP
        value = {
            "clock": clock & 0xFFFFFFFF,
            "clock_hi": (clock >> 32) & 0xFFFFFFFF,
            "clock64": clock,
            "globaltimer": clock,
            "globaltimer_lo": clock & 0xFFFFFFFF,
            "globaltimer_hi": (clock >> 32) & 0xFFFFFFFF,
        }[name]
        return np.full(self.N, value, np.uint64)

    def fault(self, err: AccessError, op_index: int) -> MemoryFault:
        op = self.program.ops[op_index]
        t = err.thread
        blk = int(self.block_of[t])
        local = int(self.local_id[t])
        gx, gy, _ = self.grid
        bx, by, _ = self.block
        return MemoryFault(
            err.reason,
            op.line,
            op.text,
            thread=blk * self.threads_per_block + local,
            block=(blk % gx, (blk // gx) % gy, blk // (gx * gy)),
            tid=(local % bx, (local // bx) % by, local // (bx * by)),
            address=err.address,
        )

    def run(self, max_steps: int = DEFAULT_MAX_STEPS) -> int:
        """Execute to completion; returns the number of steps. Raises EmulationError
        (StepLimitExceeded past `max_steps`, TimeLimitExceeded past an emulation_budget)."""
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps!r}")
        budget = _budget.get()
        seconds = budget.seconds if budget is not None else None
        deadline = None if seconds is None else time.perf_counter() + seconds
        try:
            with np.errstate(all="ignore"):
                return Scheduler(self, max_steps, deadline, seconds).run()
        except AccessError as err:
            raise self.fault(err, self.current) from None
        except StepLimitExceeded as err:  # TimeLimitExceeded too
            if budget is not None:
                how = "time" if isinstance(err, TimeLimitExceeded) else "steps"
                budget.stop(how, err.line)
            raise
