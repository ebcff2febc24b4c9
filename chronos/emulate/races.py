"""Shared-memory race detection for the lockstep emulator.

The executor runs every thread of a block in lockstep, so a kernel that forgot a barrier still
computes the right answer here, while on a GPU its warps run in any order and it may not. A
transform that moves or drops a barrier (reorder_cp's latch barrier, cp_async's wait) must
therefore be checked for races, not just for outputs.

The rule is the CUDA memory model's for one block's shared memory: two accesses to the same
byte by different threads, at least one a write, race unless a barrier of that block separates
them. Each byte remembers its last writer and its readers (one thread or "several") together
with the block's barrier epoch at the time; a barrier starts a new epoch. Threads of one warp
count as different threads (since Volta they are not guaranteed to run in lockstep without
`bar.warp.sync`). A cp.async write lands when the issuing thread's wait completes it.

A write of the value a byte already holds is no race: whichever order the threads run in,
the byte ends with that value and every reader sees it. That is how Triton's cross-warp
reductions work (all 32 lanes of a warp store the same partial sum to one shared slot).
Writes of different values, and reads of a byte another thread writes, still race.

Reads are cheap where they cannot race: a read races only with a write tagged with its
block's current epoch, and its reader tags matter only to a later write. So a read in an
epoch no write was tagged with is queued, not checked; a write (or a barrier of some blocks)
first records the queue in order, and a barrier of every block, all at one epoch, drops it:
the tags it would set carry an epoch no block will be at again. The tags and races found are
those of recording every read at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NOBODY = -1
_THREAD_BITS = 32
_THREAD_MASK = (1 << _THREAD_BITS) - 1
SEVERAL = _THREAD_MASK
"""The reader field of a byte that more than one thread read in the current epoch."""


@dataclass(frozen=True)
class Race:
    """The first race found: `kind` is "write-write", "read-write" or "write-read"; `other` is
    the earlier thread (-1 when several threads read the byte)."""

    kind: str
    offset: int
    block: int
    thread: int
    other: int


class SharedRaceDetector:
    """Shadow state of every byte of every block's shared window.

    Per byte one int64 tag for the last writer and one for the readers, each
    `epoch << 32 | thread` (thread SEVERAL for more than one reader), -1 before any access
    (whose epoch field matches no epoch): a check is one gather and a compare per byte.
    """

    def __init__(self, nbytes: int, stride: int, n_blocks: int, padded: int) -> None:
        self.stride = max(stride, 1)
        self.padded = padded
        self.epoch = np.zeros(n_blocks, np.int64)
        self.w_tag = np.full(nbytes, NOBODY, np.int64)
        self.r_tag = np.full(nbytes, NOBODY, np.int64)
        self._scratch = np.full(nbytes, NOBODY, np.int64)
        self._w_epochs: set[int] = set()
        """The epochs of every write tag: a read in another epoch cannot race."""
        self._queued: list[tuple[np.ndarray, np.ndarray, int]] = []
        """Reads not yet recorded in `r_tag`, in order."""
        self._one_epoch: int | None = 0
        """The epoch of every block while they all share one (barriers of the whole grid keep
        them together), else None: a read then needs no per-thread epoch gather."""
        self._ramps: dict[tuple[int, int], np.ndarray] = {}
        """0, 1, .., nbytes-1 repeated per thread: each access's byte offsets, by shape."""

    def barrier(self, blocks: np.ndarray | None = None) -> None:
        """A barrier of `blocks` (all when None) completed: later accesses are ordered."""
        if blocks is None:
            if self._queued and self.epoch.min() == self.epoch.max():
                self._queued.clear()  # their epoch is over for every block
            else:
                self._record_queued()
            self.epoch += 1
            if self._one_epoch is not None:
                self._one_epoch += 1
        else:
            self._record_queued()
            self.epoch[np.unique(blocks)] += 1
            lo = int(self.epoch.min())
            self._one_epoch = lo if lo == int(self.epoch.max()) else None

    def _record_queued(self) -> None:
        """Record the queued reads in `r_tag`, in the order they happened."""
        for off, threads, nbytes in self._queued:
            self._record_read(*self._entries(off, threads, nbytes))
        self._queued.clear()

    def _entries(
        self, off: np.ndarray, threads: np.ndarray, nbytes: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(byte, thread, epoch << 32) per touched byte."""
        threads = np.asarray(threads, np.int64)
        n = len(threads) * nbytes
        ramp = self._ramps.get((n, nbytes))
        if ramp is None:
            ramp = np.tile(np.arange(nbytes, dtype=np.int64), len(threads))
            self._ramps[(n, nbytes)] = ramp
        b = np.repeat(np.asarray(off, np.int64), nbytes) + ramp
        t = np.repeat(threads, nbytes)
        if self._one_epoch is not None:
            e = np.full(n, self._one_epoch << _THREAD_BITS, np.int64)
        else:
            e = np.repeat(self.epoch[threads // self.padded] << _THREAD_BITS, nbytes)
        return b, t, e

    def _race(
        self, kind: str, b: np.ndarray, t: np.ndarray, other: np.ndarray, bad: np.ndarray
    ) -> Race:
        i = int(np.flatnonzero(bad)[0])
        offset, block = int(b[i] % self.stride), int(b[i] // self.stride)
        o = int(other[i])
        return Race(kind, offset, block, int(t[i]), NOBODY if o == SEVERAL else o)

    def write(
        self,
        off: np.ndarray,
        threads: np.ndarray,
        nbytes: int,
        data: np.ndarray | None = None,
        memory: np.ndarray | None = None,
    ) -> Race | None:
        """Record a store of `nbytes` at byte offsets `off` by `threads`; the first race, if any.

        `data` (one row of `nbytes` bytes per thread) and `memory` (the shared bytes before
        the store) let a same-value write pass; without them every conflict is a race.
        """
        self._record_queued()
        b, t, e = self._entries(off, threads, nbytes)
        same: np.ndarray | bool = False
        flat = None
        if data is not None and memory is not None:
            flat = np.ascontiguousarray(data, np.uint8).reshape(-1)
            same = flat == memory[b]
        w = self.w_tag[b]
        ww = ((w & ~_THREAD_MASK) == e) & ((w & _THREAD_MASK) != t) & ~same
        if np.count_nonzero(ww):
            return self._race("write-write", b, t, w & _THREAD_MASK, ww)
        r = self.r_tag[b]
        rw = ((r & ~_THREAD_MASK) == e) & ((r & _THREAD_MASK) != t) & ~same
        if np.count_nonzero(rw):
            return self._race("read-write", b, t, r & _THREAD_MASK, rw)
        if (dup := self._shared_by_two(b, t, flat)) is not None:
            return self._race("write-write", b, t, dup[1], dup[0])
        self.w_tag[b] = e | t
        lo = int(e.min()) if e.size else 0
        if e.size and lo == int(e.max()):  # the usual store: every thread in one epoch
            self._w_epochs.add(lo >> _THREAD_BITS)
        else:
            self._w_epochs.update((np.unique(e) >> _THREAD_BITS).tolist())
        return None

    def read(self, off: np.ndarray, threads: np.ndarray, nbytes: int) -> Race | None:
        """Record a load; reads race only with another thread's write in the same epoch."""
        if len(threads):
            lo = self._one_epoch
            if lo is None:
                epochs = self.epoch[np.asarray(threads, np.int64) // self.padded]
                lo = int(epochs.min())
                if lo != int(epochs.max()):
                    lo = None
            if lo is not None and lo not in self._w_epochs:
                # No write tag of this epoch to race with: queue it (the executor never
                # modifies these arrays).
                self._queued.append((off, threads, nbytes))
                return None
        self._record_queued()
        b, t, e = self._entries(off, threads, nbytes)
        w = self.w_tag[b]
        wr = ((w & ~_THREAD_MASK) == e) & ((w & _THREAD_MASK) != t)
        if np.count_nonzero(wr):
            return self._race("write-read", b, t, w & _THREAD_MASK, wr)
        self._record_read(b, t, e)
        return None

    def _record_read(self, b: np.ndarray, t: np.ndarray, e: np.ndarray) -> None:
        """Tag the bytes `b` read by threads `t` in epochs `e` (one reader, or SEVERAL)."""
        r = self.r_tag[b]
        same = (r & ~_THREAD_MASK) == e
        several = e | SEVERAL
        self.r_tag[b] = np.where(same, np.where((r & _THREAD_MASK) == t, r, several), e | t)
        if (dup := self._shared_by_two(b, t)) is not None:
            self.r_tag[b[dup[0]]] = several[dup[0]]

    def _shared_by_two(
        self, b: np.ndarray, t: np.ndarray, values: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Bytes two different threads touch in one instruction: (mask over b, other thread).

        One scatter and one gather: after `scratch[b] = t` a byte holds one of its threads, so
        every entry of another thread on that byte reads back a different one. With `values`
        (the bytes written), only entries writing another value than that thread clash.
        """
        if b.size < 2:
            return None
        self._scratch[b] = t
        other = self._scratch[b]
        clash = other != t
        if values is not None and np.count_nonzero(clash):
            self._scratch[b] = values
            clash &= self._scratch[b] != values
        return (clash, other) if np.count_nonzero(clash) else None
