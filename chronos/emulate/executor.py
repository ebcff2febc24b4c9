"""The SIMT executor: every thread of every block as one NumPy lane.

Control flow: while all live threads share one PC the executor runs in *uniform* mode (a
scalar PC, no masks). A branch that splits the threads switches to *divergent* mode, where
each thread has its own PC and every step runs the lowest pending PC for the threads that
are there. Lowest-PC-first reconverges threads at the join point of structured control flow
(forward branches wait at the join; early loop leavers wait behind the loop), and the
executor drops back to uniform mode as soon as all PCs agree again.

Barriers: a thread that reaches `bar.sync` waits; once every live thread of its block waits,
the block is released. Exited threads do not count (as on sm_70+).

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
from typing import Any

import numpy as np

from chronos.emulate.approx import Approx
from chronos.emulate.errors import (
    EmulationError,
    MemoryFault,
    SharedMemoryRace,
    StepLimitExceeded,
    TimeLimitExceeded,
)
from chronos.emulate.memory import (
    GLOBAL_BASE,
    LOCAL_WINDOW,
    SHARED_WINDOW,
    WINDOW_SIZE,
    AccessError,
    Arena,
    Window,
    check_alignment,
    unkind_offset,
)
from chronos.emulate.program import BRA, EXIT, OP, Program
from chronos.emulate.races import Race, SharedRaceDetector
from chronos.emulate.trace import Trace

CONST_WINDOW = 1 << 37
PARAM_WINDOW = 1 << 38
DEFAULT_MAX_STEPS = 2_000_000
CLOCK_PER_STEP = 4
"""%clock64 advances by this much per executed step: deterministic and monotone."""
_CLOCK_CHECK_EVERY = 64
"""Steps between two looks at the wall clock (a step costs ~0.1 ms; a look ~0.1 us)."""


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


_WINDOWS = {
    ".global": 0,
    ".shared": SHARED_WINDOW,
    ".local": LOCAL_WINDOW,
    ".const": CONST_WINDOW,
    ".param": PARAM_WINDOW,
}


@dataclass
class _Copy:
    """Pending cp.async copies of one instruction: written to shared memory at the wait."""

    threads: np.ndarray
    group: np.ndarray
    dst: np.ndarray
    data: np.ndarray
    done: np.ndarray


class _ParamSpace:
    def __init__(self, raw: bytes):
        self.data = np.frombuffer(bytearray(raw) + bytearray(-len(raw) % 16 or 16), np.uint8)

    def view(self, dtype: np.dtype) -> np.ndarray:
        return self.data.view(dtype)


class Machine:
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
        blk = t // self.padded
        local = t % self.padded
        self.block_of = blk
        self.local_id = local
        self.live = local < self.threads_per_block
        u32 = np.uint32
        self.special: dict[str, np.ndarray] = {
            "tid.x": (local % bx).astype(u32),
            "tid.y": ((local // bx) % by).astype(u32),
            "tid.z": (local // (bx * by)).astype(u32),
            "ntid.x": np.full(self.N, bx, u32),
            "ntid.y": np.full(self.N, by, u32),
            "ntid.z": np.full(self.N, bz, u32),
            "ctaid.x": (blk % gx).astype(u32),
            "ctaid.y": ((blk // gx) % gy).astype(u32),
            "ctaid.z": (blk // (gx * gy)).astype(u32),
            "nctaid.x": np.full(self.N, gx, u32),
            "nctaid.y": np.full(self.N, gy, u32),
            "nctaid.z": np.full(self.N, gz, u32),
            "laneid": (local % 32).astype(u32),
            "warpid": (local // 32).astype(u32),
            "nwarpid": np.full(self.N, 64, u32),
            "smid": (blk % n_sms).astype(u32),
            "nsmid": np.full(self.N, n_sms, u32),
            "gridid": np.zeros(self.N, np.uint64),
        }
        lane = (local % 32).astype(np.uint64)
        one = np.uint64(1)
        bit = (one << lane).astype(np.uint32)
        self.special["lanemask_eq"] = bit
        self.special["lanemask_lt"] = ((one << lane) - one).astype(np.uint32)
        self.special["lanemask_le"] = ((one << (lane + one)) - one).astype(np.uint32)
        self.special["lanemask_gt"] = ~self.special["lanemask_le"]
        self.special["lanemask_ge"] = ~self.special["lanemask_lt"]

        # Registers start as all-ones bits (NaN, -1, true): a read before any write shows up.
        self.R: list[np.ndarray] = [
            np.full(self.N, True if dt.kind == "b" else np.iinfo(dt).max, dt)
            for dt in program.reg_dtypes
        ]
        self.global_mem = global_mem
        self.const_mem = const_mem or Arena(0, "const")
        self.symbols: dict[str, int] = {}
        self._layout_variables(dynamic_shared)
        raw = bytearray(max(program.param_bytes, 1))
        for slot in program.params:
            value = param_values.get(slot.name)
            if value is None:
                raise EmulationError(f"no value for kernel parameter {slot.name}")
            raw[slot.offset : slot.offset + len(value)] = value[: slot.size]
            self.symbols[slot.name] = slot.offset
        self.param_bytes = program.param_bytes
        self.params = _ParamSpace(bytes(raw))
        self.special["dynamic_smem_size"] = np.full(self.N, dynamic_shared, u32)
        self.special["total_smem_size"] = np.full(self.N, self.shared.size, u32)
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
        self.cp_pending: list[_Copy] = []

    def _layout_variables(self, dynamic_shared: int) -> None:
        shared_cursor = 0
        local_cursor = 0
        extern = []
        for var in self.program.variables:
            if var.space == ".shared":
                if var.extern and var.size == 0:
                    extern.append(var)
                    continue
                off = unkind_offset(shared_cursor, var.align)
                self.symbols[var.name] = off
                shared_cursor = off + var.size
            elif var.space == ".local":
                off = unkind_offset(local_cursor, var.align)
                self.symbols[var.name] = off
                local_cursor = off + var.size
            elif var.space == ".global":
                self.symbols[var.name] = self.global_mem.allocate(
                    var.name, var.size, var.align, False, var.init
                )
            elif var.space == ".const":
                self.symbols[var.name] = self.const_mem.allocate(
                    var.name, var.size, var.align, True, var.init
                )
        if extern:
            align = max(v.align for v in extern)
            off = unkind_offset(shared_cursor, align)
            for v in extern:
                self.symbols[v.name] = off
            shared_cursor = off + dynamic_shared
        self.global_mem.finalize()
        self.const_mem.finalize()
        self.shared = Window(self.n_blocks, shared_cursor, "shared")
        self.local = Window(self.N, local_cursor, "local")

    # --- services for decoded instructions --------------------------------------------------

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

    def window(self, space: str) -> int:
        return _WINDOWS[space]

    def generic_symbol(self, name: str) -> int:
        for var in self.program.variables:
            if var.name == name:
                return self.symbols[name] + _WINDOWS[var.space]
        return self.symbols[name] + PARAM_WINDOW

    def in_space(self, space: str, addr: np.ndarray) -> np.ndarray:
        a = np.asarray(addr, np.int64)
        if space == ".global":
            return a >= GLOBAL_BASE
        base = _WINDOWS[space]
        return (a >= base) & (a < base + WINDOW_SIZE)

    def _threads(self, lanes: np.ndarray | None) -> np.ndarray:
        return self.thread_ids if lanes is None else lanes

    def _locate(
        self, space: str, a: np.ndarray, threads: np.ndarray, size: int, write: bool
    ) -> list[tuple[str, object, np.ndarray, np.ndarray | None, np.ndarray]]:
        """(space, store, byte offsets, positions or None, addresses) segments of an access."""
        if space == ".global":
            return [
                (space, self.global_mem, self.global_mem.check(a, size, write, threads), None, a)
            ]
        if space == ".shared":
            owner = self.block_of[threads]
            return [(space, self.shared, self.shared.check(a, owner, size, threads), None, a)]
        if space == ".local":
            return [(space, self.local, self.local.check(a, threads, size, threads), None, a)]
        if space == ".const":
            return [(space, self.const_mem, self.const_mem.check(a, size, write, threads), None, a)]
        if space == ".param":
            check_alignment(a, size, threads)
            bad = (a < 0) | (a + size > self.param_bytes)
            if bad.any() or write:
                i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
                raise AccessError(
                    "out-of-bounds or write access to .param space", int(threads[i]), int(a[i])
                )
            return [(space, self.params, a, None, a)]
        if space != ".generic":
            raise AccessError(f"unsupported state space {space}", int(threads[0]), int(a[0]))
        g = a >= GLOBAL_BASE
        if g.all():
            return self._locate(".global", a, threads, size, write)
        segments = []
        covered = g.copy()
        pos = np.flatnonzero(g)
        if pos.size:
            (sp, st, off, _, aa) = self._locate(".global", a[pos], threads[pos], size, write)[0]
            segments.append((sp, st, off, pos, aa))
        for sub in (".shared", ".local", ".const", ".param"):
            base = _WINDOWS[sub]
            inside = (a >= base) & (a < base + WINDOW_SIZE)
            if not inside.any():
                continue
            covered |= inside
            pos = np.flatnonzero(inside)
            (sp, st, off, _, aa) = self._locate(sub, a[pos] - base, threads[pos], size, write)[0]
            segments.append((sp, st, off, pos, aa))
        if not covered.all():
            i = int(np.flatnonzero(~covered)[0])
            raise AccessError(
                "generic address outside every state space", int(threads[i]), int(a[i])
            )
        return segments

    def load(
        self,
        space: str,
        a: np.ndarray,
        lanes: np.ndarray | None,
        dt: np.dtype,
        width: int,
        nbytes: int,
    ) -> list[np.ndarray]:
        threads = self._threads(lanes)
        segs = self._locate(space, a, threads, nbytes, False)
        isz = dt.itemsize
        if len(segs) == 1 and segs[0][3] is None:
            sp, store, off, _, aa = segs[0]
            if sp == ".shared" and self.races is not None:
                self._raise_race(self.races.read(off, threads, nbytes))
            view = store.view(dt)  # type: ignore[attr-defined]
            el = off // isz
            out = [view[el + j] for j in range(width)]
            if self.trace is not None:
                self.trace.memory(sp, aa, threads, nbytes)
            return out
        out = [np.empty(len(a), dt) for _ in range(width)]
        for sp, store, off, pos, aa in segs:
            if sp == ".shared" and self.races is not None:
                self._raise_race(self.races.read(off, threads[pos], nbytes))
            view = store.view(dt)  # type: ignore[attr-defined]
            el = off // isz
            for j in range(width):
                out[j][pos] = view[el + j]
            if self.trace is not None:
                self.trace.memory(sp, aa, threads[pos], nbytes)
        return out

    def store(
        self,
        space: str,
        a: np.ndarray,
        lanes: np.ndarray | None,
        dt: np.dtype,
        vals: list[np.ndarray],
        nbytes: int,
    ) -> None:
        threads = self._threads(lanes)
        segs = self._locate(space, a, threads, nbytes, True)
        isz = dt.itemsize
        for sp, store, off, pos, aa in segs:
            if sp == ".shared" and self.races is not None:
                who = threads if pos is None else threads[pos]
                rows = np.stack([np.asarray(v if pos is None else v[pos], dt) for v in vals], 1)
                data = rows.view(np.uint8).reshape(len(who), nbytes)
                self._raise_race(self.races.write(off, who, nbytes, data, self.shared.data))
            view = store.view(dt)  # type: ignore[attr-defined]
            el = off // isz
            for j, v in enumerate(vals):
                view[el + j] = v if pos is None else v[pos]
            if self.trace is not None:
                self.trace.memory(sp, aa, threads if pos is None else threads[pos], nbytes)

    def atomic(
        self,
        space: str,
        op: str,
        dt: np.dtype,
        a: np.ndarray,
        lanes: np.ndarray | None,
        b: np.ndarray,
        c: np.ndarray | None,
        want_old: bool,
    ) -> np.ndarray:
        threads = self._threads(lanes)
        segs = self._locate(space, a, threads, dt.itemsize, True)
        old_all = np.zeros(len(a), dt)
        for sp, store, off, pos, aa in segs:
            view = store.view(dt)  # type: ignore[attr-defined]
            el = off // dt.itemsize
            idx = np.arange(len(a)) if pos is None else pos
            bb, cc = b[idx], (c[idx] if c is not None else None)
            if len(np.unique(el)) == len(el):
                old = view[el].copy()
                view[el] = _atomic_apply(op, old, bb, cc, dt)
                old_all[idx] = old
            else:
                for k in range(len(el)):
                    o = view[el[k] : el[k] + 1].copy()
                    ck = cc[k : k + 1] if cc is not None else None
                    view[el[k]] = _atomic_apply(op, o, bb[k : k + 1], ck, dt)[0]
                    old_all[idx[k]] = o[0]
            if self.trace is not None:
                self.trace.memory(sp, aa, threads if pos is None else threads[pos], dt.itemsize)
        return old_all

    def cp_async(
        self,
        dst: np.ndarray,
        src: np.ndarray,
        lanes: np.ndarray | None,
        size: int,
        n_src: np.ndarray | None,
    ) -> None:
        """Read the source now; the shared destination is written at the matching wait."""
        threads = self._threads(lanes)
        if n_src is None:
            (_, _, off, _, _) = self._locate(".global", src, threads, size, False)[0]
            data = self.global_mem.data[off[:, None] + np.arange(size)]
        else:
            # Only the first src-size bytes are read (and must be valid); the rest are zero.
            # Triton's masked loads pass src-size 0 with an out-of-bounds address.
            n_src = np.broadcast_to(np.asarray(n_src, np.int64), (len(threads),))
            data = np.zeros((len(threads), size), np.uint8)
            reads = n_src > 0
            check_alignment(src[reads], size, threads[reads])
            for n in np.unique(n_src[n_src > 0]):
                sel = np.flatnonzero(n_src == n)
                n = int(min(n, size))
                (_, _, off, _, _) = self._locate(".global", src[sel], threads[sel], n, False)[0]
                data[sel, :n] = self.global_mem.data[off[:, None] + np.arange(n)]
        flat = self.shared.check(dst, self.block_of[threads], size, threads)
        self.cp_pending.append(
            _Copy(
                threads.copy(),
                self.cp_groups[threads].copy(),
                flat,
                data,
                np.zeros(len(threads), bool),
            )
        )
        if self.trace is not None:
            # Lanes with src-size 0 read nothing (their address may lie outside every buffer).
            read = np.ones(len(threads), bool) if n_src is None else n_src > 0
            if read.any():
                self.trace.memory(".global", src[read], threads[read], size)

    def prefetch(self, space: str, a: np.ndarray, lanes: np.ndarray | None) -> None:
        """Record a prefetch's global addresses in the trace (those inside a buffer; a
        prefetch elsewhere, or to another space, fills nothing the model tracks)."""
        if self.trace is None or space not in (".global", ".generic"):
            return
        threads = self._threads(lanes)
        keep = (a >= GLOBAL_BASE) & self.global_mem.inside(a)
        if keep.any():
            self.trace.memory(".global", a[keep], threads[keep], 1)

    def _raise_race(self, race: Race | None) -> None:
        if race is None:
            return
        op = self.program.ops[self.current]
        tid, other = race.thread % self.padded, race.other % self.padded
        raise SharedMemoryRace(
            f"shared-memory {race.kind} race: threads {other} and {tid} of block {race.block} "
            f"touch byte {race.offset} with no barrier between",
            op.line,
            op.text,
        )

    def cp_async_commit(self, mask: np.ndarray | None) -> None:
        self.cp_groups = self.cp_groups + (self.live if mask is None else mask)

    def cp_async_wait(self, mask: np.ndarray | None, n: int) -> None:
        active = self.live if mask is None else mask
        for rec in self.cp_pending:
            sel = active[rec.threads] & (rec.group < self.cp_groups[rec.threads] - n) & ~rec.done
            if sel.any():
                width = rec.data.shape[1]
                if self.races is not None:
                    race = self.races.write(
                        rec.dst[sel], rec.threads[sel], width, rec.data[sel], self.shared.data
                    )
                    self._raise_race(race)
                self.shared.data[rec.dst[sel][:, None] + np.arange(width)] = rec.data[sel]
                rec.done = rec.done | sel
        self.cp_pending = [r for r in self.cp_pending if not r.done.all()]

    # --- the run loop -----------------------------------------------------------------------

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
                return self._run(max_steps, deadline)
        except AccessError as err:
            raise self.fault(err, self.current) from None
        except StepLimitExceeded as err:  # TimeLimitExceeded too
            if budget is not None:
                how = "time" if isinstance(err, TimeLimitExceeded) else "steps"
                budget.stop(how, err.line)
            raise

    def _over_budget(self, steps: int, max_steps: int, deadline: float | None, op: Any) -> None:
        """Raise when `steps` passes the step budget or the clock its deadline."""
        if steps > max_steps:
            raise StepLimitExceeded(f"more than {max_steps} steps", op.line, op.text)
        if deadline is not None and time.perf_counter() > deadline:
            budget = _budget.get()
            seconds = budget.seconds if budget is not None else None
            raise TimeLimitExceeded(
                f"stopped after {seconds:g} s of wall clock ({steps} steps)", op.line, op.text
            )

    def _check_barrier(self, op_index: int) -> None:
        op = self.program.ops[op_index]
        if op.barrier_count is not None and op.barrier_count < self.threads_per_block:
            raise EmulationError(
                f"barrier for {op.barrier_count} threads in a block of "
                f"{self.threads_per_block}: partial barriers are not emulated",
                op.line,
                op.text,
            )

    def _run(self, max_steps: int, deadline: float | None = None) -> int:
        ops = self.program.ops
        n_ops = len(ops)
        R = self.R
        trace = self.trace
        live = self.live
        all_live = bool(live.all())
        uniform = True
        pc = 0
        pcs = np.zeros(self.N, np.int64)
        waiting = np.zeros(self.N, bool)
        steps = 0
        self.current = 0
        while True:
            if uniform:
                if pc >= n_ops:
                    break
                op = ops[pc]
                mask = None if all_live else live
                steps += 1
                if steps > max_steps or (deadline is not None and steps % _CLOCK_CHECK_EVERY == 0):
                    self._over_budget(steps, max_steps, deadline, op)
                self.steps = steps
                self.current = pc
                if trace is not None:
                    trace.step(pc, mask)
                kind = op.kind
                if kind == OP:
                    eff = mask
                    if op.guard is not None:
                        g = R[op.guard]
                        eff = ~g if op.guard_neg else g
                        if mask is not None:
                            eff = eff & mask
                        if not eff.any():
                            pc += 1
                            continue
                        if mask is None and eff.all():
                            eff = None
                    op.fn(self, eff)  # type: ignore[misc]
                    pc += 1
                elif kind == BRA:
                    if op.guard is None:
                        pc = op.target
                        continue
                    g = R[op.guard]
                    taken = ~g if op.guard_neg else g
                    if not all_live:
                        taken = taken & live
                    if not taken.any():
                        pc += 1
                    elif taken.all() if all_live else bool((taken == live).all()):
                        pc = op.target
                    else:
                        pcs = np.where(taken, op.target, pc + 1).astype(np.int64)
                        uniform = False
                elif kind == EXIT:
                    if op.guard is None:
                        live = np.zeros(self.N, bool)
                        self.live = live
                        break
                    g = R[op.guard]
                    ex = (~g if op.guard_neg else g) & live
                    if ex.any():
                        live = live & ~ex
                        self.live = live
                        all_live = False
                        if not live.any():
                            break
                    pc += 1
                else:
                    self._check_barrier(pc)
                    if self.races is not None:
                        self.races.barrier()
                    pc += 1
                continue

            # divergent mode
            runnable = live & ~waiting
            if not runnable.any():
                if not (waiting & live).any():
                    break
                if self.races is not None:
                    self.races.barrier(self.block_of[waiting])
                pcs = pcs + waiting
                waiting = np.zeros(self.N, bool)
            else:
                cand = np.where(runnable, pcs, n_ops + 1)
                pc = int(cand.min())
                if pc >= n_ops:
                    live = live & ~(runnable & (pcs >= n_ops))
                    self.live = live
                    all_live = False
                    if not live.any():
                        break
                    continue
                active = cand == pc
                op = ops[pc]
                steps += 1
                if steps > max_steps or (deadline is not None and steps % _CLOCK_CHECK_EVERY == 0):
                    self._over_budget(steps, max_steps, deadline, op)
                self.steps = steps
                self.current = pc
                if trace is not None:
                    trace.step(pc, active)
                kind = op.kind
                if kind == OP:
                    eff = active
                    if op.guard is not None:
                        g = R[op.guard]
                        eff = active & (~g if op.guard_neg else g)
                    if eff.any():
                        op.fn(self, eff)  # type: ignore[misc]
                    pcs = pcs + active
                elif kind == BRA:
                    taken = active
                    if op.guard is not None:
                        g = R[op.guard]
                        taken = active & (~g if op.guard_neg else g)
                    pcs = np.where(taken, op.target, np.where(active, pc + 1, pcs))
                elif kind == EXIT:
                    ex = active
                    if op.guard is not None:
                        g = R[op.guard]
                        ex = active & (~g if op.guard_neg else g)
                    live = live & ~ex
                    self.live = live
                    all_live = False
                    pcs = pcs + (active & ~ex)
                else:
                    self._check_barrier(pc)
                    waiting = waiting | active
                    blocks_busy = (
                        np.bincount(self.block_of[live & ~waiting], minlength=self.n_blocks) > 0
                    )
                    release = waiting & ~blocks_busy[self.block_of]
                    if release.any():
                        if self.races is not None:
                            self.races.barrier(self.block_of[release])
                        pcs = pcs + release
                        waiting = waiting & ~release
            if waiting.any():
                continue
            lp = pcs[live]
            if lp.size == 0:
                break
            lo = int(lp.min())
            if lo == int(lp.max()):
                uniform = True
                pc = lo
                all_live = bool(live.all())
        self.live = live
        return steps


def _atomic_apply(
    op: str, old: np.ndarray, b: np.ndarray, c: np.ndarray | None, dt: np.dtype
) -> np.ndarray:
    if op == "add":
        return (old + b).astype(dt)
    if op == "min":
        return np.minimum(old, b)
    if op == "max":
        return np.maximum(old, b)
    if op == "and":
        return old & b
    if op == "or":
        return old | b
    if op == "xor":
        return old ^ b
    if op == "exch":
        return b.astype(dt)
    if op == "cas":
        assert c is not None
        return np.where(old == b, c, old).astype(dt)
    if op == "inc":
        return np.where(old >= b, 0, old + 1).astype(dt)
    if op == "dec":
        return np.where((old == 0) | (old > b), b, old - 1).astype(dt)
    raise EmulationError(f"atomic operation {op}")
