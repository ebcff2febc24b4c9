"""State-space accesses of a running Machine: where each address lives, and the loads,
stores, atomics, cp.async copies and prefetches that decoded instructions ask for.

Every access goes through `_locate`, which splits it by state space (a generic address may
point into any window), checks bounds and alignment, and gives the byte offsets into the
store that backs the space; the access then checks shared-memory races (with `races=True`)
and records itself in the trace. `StateSpaces` is a mixin of `Machine`: the attributes it
declares are set by `Machine.__init__`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronos.emulate.errors import EmulationError, SharedMemoryRace
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
from chronos.emulate.program import Program
from chronos.emulate.races import Race, SharedRaceDetector
from chronos.emulate.trace import Trace

CONST_WINDOW = 1 << 37
PARAM_WINDOW = 1 << 38

WINDOWS = {
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


class ParamSpace:
    """The .param space: the kernel arguments' bytes, padded so any view fits."""

    def __init__(self, raw: bytes):
        self.data = np.frombuffer(bytearray(raw) + bytearray(-len(raw) % 16 or 16), np.uint8)

    def view(self, dtype: np.dtype) -> np.ndarray:
        return self.data.view(dtype)


class StateSpaces:
    """The memory services of a Machine (mixin): variables' layout, address routing, and the
    accesses decoded instructions make."""

    program: Program
    N: int
    padded: int
    n_blocks: int
    thread_ids: np.ndarray
    block_of: np.ndarray
    live: np.ndarray
    global_mem: Arena
    const_mem: Arena
    shared: Window
    local: Window
    shared_base: np.ndarray
    params: ParamSpace
    param_bytes: int
    symbols: dict[str, int]
    trace: Trace | None
    races: SharedRaceDetector | None
    cp_groups: np.ndarray
    cp_pending: list[_Copy]
    current: int

    def _layout_variables(self, dynamic_shared: int) -> None:
        """Give every variable its offset (`symbols`) in its space, and size the shared and
        local windows; extern shared variables share the dynamic shared memory at the end."""
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
        self.shared_base = self.shared.bases(self.block_of)
        """Per thread, where its block's shared window starts (a shared access adds it)."""

    def _bind_params(self, param_values: dict[str, bytes]) -> None:
        """Lay the arguments' bytes out in the .param space, each at its slot's offset."""
        program = self.program
        raw = bytearray(max(program.param_bytes, 1))
        for slot in program.params:
            value = param_values.get(slot.name)
            if value is None:
                raise EmulationError(f"no value for kernel parameter {slot.name}")
            raw[slot.offset : slot.offset + len(value)] = value[: slot.size]
            self.symbols[slot.name] = slot.offset
        self.param_bytes = program.param_bytes
        self.params = ParamSpace(bytes(raw))

    # --- services for decoded instructions --------------------------------------------------

    def window(self, space: str) -> int:
        return WINDOWS[space]

    def generic_symbol(self, name: str) -> int:
        for var in self.program.variables:
            if var.name == name:
                return self.symbols[name] + WINDOWS[var.space]
        return self.symbols[name] + PARAM_WINDOW

    def in_space(self, space: str, addr: np.ndarray) -> np.ndarray:
        a = np.asarray(addr, np.int64)
        if space == ".global":
            return a >= GLOBAL_BASE
        base = WINDOWS[space]
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
            base = self.shared_base if threads is self.thread_ids else self.shared_base[threads]
            return [(space, self.shared, self.shared.check(a, base, size, threads), None, a)]
        if space == ".local":
            base = self.local.bases(threads)
            return [(space, self.local, self.local.check(a, base, size, threads), None, a)]
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
        return self._locate_generic(a, threads, size, write)

    def _locate_generic(
        self, a: np.ndarray, threads: np.ndarray, size: int, write: bool
    ) -> list[tuple[str, object, np.ndarray, np.ndarray | None, np.ndarray]]:
        """`_locate` of generic addresses: one segment per state space whose window they
        fall in (global: at or above GLOBAL_BASE)."""
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
            base = WINDOWS[sub]
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
            out = [view[el + j] if j else view[el] for j in range(width)]
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
                view[el] = atomic_apply(op, old, bb, cc, dt)
                old_all[idx] = old
            else:
                for k in range(len(el)):
                    o = view[el[k] : el[k] + 1].copy()
                    ck = cc[k : k + 1] if cc is not None else None
                    view[el[k]] = atomic_apply(op, o, bb[k : k + 1], ck, dt)[0]
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
        flat = self.shared.check(dst, self.shared_base[threads], size, threads)
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


def atomic_apply(
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
