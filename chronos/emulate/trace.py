"""The dynamic instruction trace: which warps issued which instruction, and memory traffic.

The executor appends one entry per executed step (a static instruction run by some set of
threads). Memory instructions add per-warp transaction counts computed from the actual
addresses: 128-byte lines and 32-byte sectors for global and local memory, wavefronts (bank
conflicts included) for shared memory. Global accesses also keep the 32-byte sectors each
warp touched (`sectors`), in execution order, for the cost model's L1/L2 simulation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

SHARED_BANKS = 32
_LOW40 = (1 << 40) - 1


@dataclass
class MemStats:
    """Per-warp memory work of one step (arrays of length n_warps)."""

    lines: np.ndarray
    sectors: np.ndarray
    wavefronts: np.ndarray
    bytes: np.ndarray


class Trace:
    """Steps in execution order; warp activity is resolved lazily by `warp_activity`."""

    def __init__(self, n_warps: int, warps_per_block: int):
        self.n_warps = n_warps
        self.warps_per_block = warps_per_block
        self.pcs: list[int] = []
        self._masks: list[np.ndarray | None] = []
        self.mem: dict[int, MemStats] = {}
        self._pattern: dict[tuple[int, str, int], tuple[int, np.ndarray, np.ndarray, MemStats]] = {}
        self.sectors: list[tuple[int, np.ndarray]] = []
        """(step, unique `warp << 40 | sector` codes) of each global access, in order."""
        self.last: dict[int, tuple[str, np.ndarray, np.ndarray, int]] = {}
        """Per pc, its last access: (space, addresses, padded thread indices, bytes per lane),
        so the cost model can re-count one access at the width ptxas gave its SASS."""
        self._ratios: dict[tuple[int, int], float] = {}

    def __len__(self) -> int:
        return len(self.pcs)

    def step(self, pc: int, mask: np.ndarray | None) -> None:
        self.pcs.append(pc)
        self._masks.append(mask)

    def steps(self, pcs: range, mask: np.ndarray | None) -> None:
        """`step` for each pc of `pcs`, all run by the threads in `mask`."""
        self.pcs.extend(pcs)
        self._masks.extend([mask] * len(pcs))

    def memory(self, space: str, addr: np.ndarray, threads: np.ndarray, size: int) -> None:
        """Record the transactions of one access by `threads` (padded thread indices)."""
        if len(addr) == 0:
            return
        a = addr.astype(np.int64)
        self.last[self.pcs[-1]] = (space, a, threads, size)
        uniq = None
        if space == ".global":
            # Accesses are naturally aligned and at most 16 bytes: one sector per lane.
            codes = (threads.astype(np.int64) >> 5 << 40) | (a >> 5)
            uniq = np.unique(codes)
            self.sectors.append((len(self.pcs) - 1, uniq))
        # Loops repeat an access pattern shifted by a multiple of 128 bytes: same transactions.
        # Shared memory's depend only on the words' banks, which a shift by whole words rotates.
        key = (self.pcs[-1], space, size)
        hit = self._pattern.get(key)
        rel = a - a[0]
        phase = int(a[0]) % (4 if space == ".shared" else 128)
        if hit is not None and hit[0] == phase and _same(hit[1], rel) and _same(hit[2], threads):
            stats = hit[3]
        else:
            stats = self._transactions(space, a, threads, size, uniq)
            if stats is None:
                return
            self._pattern[key] = (phase, rel, threads, stats)
        step = len(self.pcs) - 1
        prev = self.mem.get(step)
        if prev is not None:
            stats = MemStats(
                stats.lines + prev.lines,
                stats.sectors + prev.sectors,
                stats.wavefronts + prev.wavefronts,
                stats.bytes + prev.bytes,
            )
        self.mem[step] = stats

    def width_ratio(self, pc: int, width: int) -> float:
        """Transactions (lines + wavefronts) of pc's last access when each lane accesses
        `width` bytes at its `width`-aligned address, over those at its own width: how a
        SASS instruction that merged (or split) PTX accesses changes the count. 1.0 when pc
        made no access or the widths agree."""
        hit = self.last.get(pc)
        if hit is None or hit[3] == width or width <= 0:
            return 1.0
        key = (pc, width)
        if key not in self._ratios:
            space, a, threads, size = hit
            own = self._transactions(space, a, threads, size)
            wide = self._transactions(space, a & ~(width - 1), threads, width)
            ratio = 1.0
            if own is not None and wide is not None:
                n_own = float(np.sum(own.lines + own.wavefronts))
                n_wide = float(np.sum(wide.lines + wide.wavefronts))
                ratio = n_wide / n_own if n_own > 0 else 1.0
            self._ratios[key] = ratio
        return self._ratios[key]

    def _transactions(
        self,
        space: str,
        a: np.ndarray,
        threads: np.ndarray,
        size: int,
        codes: np.ndarray | None = None,
    ) -> MemStats | None:
        """Per-warp transactions of one access; `codes`, when given, are its distinct
        `warp << 40 | sector` codes (sorted, as `memory` records them)."""
        nw = self.n_warps
        warp = threads.astype(np.int64) >> 5
        zeros = np.zeros(nw, np.int64)
        lines, sectors, waves = zeros, zeros, zeros
        nbytes = np.bincount(warp, minlength=nw) * size
        if space == ".shared":
            words_per_lane = max(1, size // 4)
            words = a >> 2
            ww = warp
            if words_per_lane > 1:
                words = (words[:, None] + np.arange(words_per_lane)).ravel()
                ww = np.repeat(warp, words_per_lane)
            uniq = np.unique((ww << 32) | words)
            uw = uniq >> 32
            bank = uniq & (SHARED_BANKS - 1)
            per_bank = np.bincount(uw * SHARED_BANKS + bank, minlength=nw * SHARED_BANKS)
            degree = per_bank.reshape(nw, SHARED_BANKS).max(1)
            distinct = np.bincount(uw, minlength=nw)
            waves = np.maximum(degree, -(-distinct * 4 // 128))
        elif space == ".local":
            lanes = np.bincount(warp, minlength=nw)
            lines = -(-lanes * size // 128)
            sectors = -(-lanes * size // 32)
        elif space == ".global":
            if codes is None:
                codes = np.unique((warp << 40) | (a >> 5))
            # A line is four sectors: sorted sector codes give sorted line codes, whose
            # distinct values start where the code changes.
            line = (codes >> 40 << 40) | ((codes & _LOW40) >> 2)
            first = np.ones(len(line), bool)
            first[1:] = line[1:] != line[:-1]
            lines = np.bincount(line[first] >> 40, minlength=nw)
            sectors = np.bincount(codes >> 40, minlength=nw)
        else:
            return None
        return MemStats(lines, sectors, waves, nbytes)

    def warp_activity(self) -> np.ndarray:
        """(n_steps, n_warps) bool: warp w issued step s (some lane of it was active)."""
        out = np.ones((len(self.pcs), self.n_warps), bool)
        cache: dict[int, np.ndarray] = {}
        for i, m in enumerate(self._masks):
            if m is None:
                continue
            key = id(m)
            row = cache.get(key)
            if row is None:
                row = cache[key] = m.reshape(self.n_warps, 32).any(1)
            out[i] = row
        return out

    def counts(self, classes: list[str]) -> Counter[str]:
        """Warp-level dynamic instruction counts by class (`classes[pc]` names the class)."""
        act = self.warp_activity().sum(1)
        c: Counter[str] = Counter()
        for pc, n in zip(self.pcs, act, strict=True):
            c[classes[pc]] += int(n)
        return c


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    """`np.array_equal` of two integer arrays, for the per-access pattern check (an array is
    never modified once recorded, so the same object is equal)."""
    return x is y or (x.shape == y.shape and not np.count_nonzero(x != y))
