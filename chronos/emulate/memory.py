"""The emulated address spaces: global arena, per-block shared, per-thread local, params.

Every access is checked before it touches memory: the address must be a multiple of the
access size (a v4.f32 access needs 16), and the whole access must lie inside one allocation
(a buffer, a module variable, the block's shared window, the thread's local frame). A failed
check raises `AccessError`, which the executor turns into a `MemoryFault` naming the
instruction and thread. Nothing wraps silently.

Placement is deliberately unkind: a buffer promised 256-byte alignment by its KernelSpec sits
at an address that is an odd multiple of 256, and a shared variable declared `.align 4` at an
offset that is 4 mod 8 (or 8 mod 16 for `.align 8`). A transform that relies on more alignment
than the kernel's contract guarantees faults here instead of passing by luck.

Generic addresses: global buffers live at GLOBAL_BASE and up (global and generic addresses
coincide, so `cvta.to.global` is the identity); the block's shared window and the thread's
local frame appear in the generic space at SHARED_WINDOW and LOCAL_WINDOW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GLOBAL_BASE = 1 << 40
SHARED_WINDOW = 1 << 32
LOCAL_WINDOW = 1 << 36
WINDOW_SIZE = 1 << 24
POISON = 0xFF
"""Fill byte of memory the kernel has not written: uninitialized shared, local, outputs."""
ARENA_GAP = 256
"""Bytes left unused after every global allocation (never addressable: accesses fault)."""


class AccessError(Exception):
    """A failed access check; the executor adds the instruction and thread coordinates."""

    def __init__(self, reason: str, thread: int, address: int):
        super().__init__(reason, thread, address)
        self.reason = reason
        self.thread = thread
        self.address = address


def unkind_offset(cursor: int, align: int) -> int:
    """The first offset >= cursor that is an odd multiple of `align` (aligned, and no more)."""
    align = max(1, align)
    off = -(-cursor // align) * align
    if off % (2 * align) == 0:
        off += align
    return off


@dataclass(frozen=True)
class Region:
    """One allocation: [start, start + size) relative to its arena."""

    name: str
    start: int
    size: int
    read_only: bool


def _fail(reason: str, bad: np.ndarray, threads: np.ndarray, addr: np.ndarray) -> None:
    i = int(np.flatnonzero(bad)[0])
    raise AccessError(reason, int(threads[i]), int(addr[i]))


def check_alignment(addr: np.ndarray, size: int, threads: np.ndarray) -> None:
    # Counting the nonzero low bits costs a third of comparing them and asking `any()`.
    if np.count_nonzero(addr & (size - 1)):
        _fail(f"misaligned {size}-byte access", (addr & (size - 1)) != 0, threads, addr)


class Arena:
    """A flat, byte-addressed space of named regions (the global space, or the const bank).

    Regions are placed with `allocate`, then `finalize` creates the backing store. Addresses
    handed to the kernel are `base + offset`.
    """

    def __init__(self, base: int, space: str):
        self.base = base
        self.space = space
        self.regions: list[Region] = []
        self._init: list[tuple[int, bytes]] = []
        self._cursor = 0
        self.data = np.zeros(0, np.uint8)
        self._starts = np.zeros(0, np.int64)
        self._ends = np.zeros(0, np.int64)
        self._ro = np.zeros(0, bool)
        self._views: dict[np.dtype, np.ndarray] = {}

    def allocate(
        self, name: str, size: int, align: int, read_only: bool = False, init: bytes = b""
    ) -> int:
        """Place a region; returns its address. Alignment is exactly `align`, never more."""
        off = unkind_offset(self._cursor, align)
        self.regions.append(Region(name, off, size, read_only))
        if init:
            self._init.append((off, init))
        self._cursor = off + max(size, 1) + ARENA_GAP
        return self.base + off

    def finalize(self) -> None:
        total = -(-(self._cursor + 16) // 16) * 16
        self.data = np.zeros(total, np.uint8)
        for off, raw in self._init:
            self.data[off : off + len(raw)] = np.frombuffer(raw, np.uint8)
        self._starts = np.array([r.start for r in self.regions], np.int64)
        self._ends = np.array([r.start + r.size for r in self.regions], np.int64)
        self._ro = np.array([r.read_only for r in self.regions], bool)
        order = np.argsort(self._starts)
        self._starts, self._ends, self._ro = self._starts[order], self._ends[order], self._ro[order]
        self._views = {}

    def view(self, dtype: np.dtype) -> np.ndarray:
        v = self._views.get(dtype)
        if v is None:
            v = self._views[dtype] = self.data.view(dtype)
        return v

    def region_of(self, addr: int) -> Region | None:
        off = addr - self.base
        for r in self.regions:
            if r.start <= off < r.start + r.size:
                return r
        return None

    def check(self, addr: np.ndarray, size: int, write: bool, threads: np.ndarray) -> np.ndarray:
        """Offsets into `data` for an access of `size` bytes at each address (or AccessError)."""
        check_alignment(addr, size, threads)
        off = addr - self.base
        r = np.searchsorted(self._starts, off, side="right") - 1
        rc = np.maximum(r, 0)
        ok = (r >= 0) & (off >= self._starts[rc]) & (off + size <= self._ends[rc])
        if np.count_nonzero(ok) != ok.size:
            _fail(f"out-of-bounds {self.space} access of {size} bytes", ~ok, threads, addr)
        if write:
            ro = self._ro[rc]
            if np.count_nonzero(ro):
                _fail(f"store to read-only {self.space} buffer", ro, threads, addr)
        return off

    def inside(self, addr: np.ndarray, size: int = 1) -> np.ndarray:
        """Bool mask: each access of `size` bytes lies inside one region (never raises)."""
        off = np.asarray(addr, np.int64) - self.base
        r = np.searchsorted(self._starts, off, side="right") - 1
        rc = np.maximum(r, 0)
        if not len(self._starts):
            return np.zeros(len(off), bool)
        return (r >= 0) & (off >= self._starts[rc]) & (off + size <= self._ends[rc])

    def region_bytes(self, name: str) -> tuple[int, int]:
        for r in self.regions:
            if r.name == name:
                return r.start, r.size
        raise KeyError(name)


class Window:
    """Per-block shared memory or per-thread local memory: `count` copies of `size` bytes.

    The bytes start as 0xFF (a NaN as float, -1 as an integer), as uninitialized memory on
    a GPU holds garbage: a kernel that reads what it never wrote gets visibly wrong results.
    """

    def __init__(self, count: int, size: int, space: str):
        self.size = size
        self.space = space
        self.stride = max(16, -(-size // 16) * 16)
        self.data = np.full(count * self.stride, POISON, np.uint8)
        self._views: dict[np.dtype, np.ndarray] = {}

    def view(self, dtype: np.dtype) -> np.ndarray:
        v = self._views.get(dtype)
        if v is None:
            v = self._views[dtype] = self.data.view(dtype)
        return v

    def check(
        self, off: np.ndarray, base: np.ndarray, size: int, threads: np.ndarray
    ) -> np.ndarray:
        """Byte offsets into `data` for offsets `off` within the windows that start at `base`
        (each owner's index times `stride`, as `bases` gives)."""
        check_alignment(off, size, threads)
        if off.size and (int(off.min()) < 0 or int(off.max()) > self.size - size):
            ok = (off >= 0) & (off + size <= self.size)
            _fail(f"out-of-bounds {self.space} access of {size} bytes", ~ok, threads, off)
        return base + off

    def bases(self, owner: np.ndarray) -> np.ndarray:
        """Where each owner's window starts in `data`."""
        return owner.astype(np.int64) * self.stride
