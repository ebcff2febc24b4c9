"""Warp-level instructions: shfl.sync, vote.sync and activemask.

Every emulated thread is a lane of one array, so a warp is 32 consecutive entries: a shuffle
is a gather within them and a vote a reduction over each row of a (warps, 32) reshape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate.decode.base import BOOL, U32, Decoded, Handler
from chronos.emulate.operands import unsupported
from chronos.ptx import Instruction

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

_LANE_BITS = np.arange(32, dtype=np.uint64)


def warp_bits(flags: np.ndarray) -> np.ndarray:
    """One 32-bit mask per warp (as uint64) with bit l set where lane l's flag is."""
    return (flags.reshape(-1, 32).astype(np.uint64) << _LANE_BITS).sum(1)


def _shfl_source(
    kind: str, lane: np.ndarray, b: np.ndarray, c: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(source lane, in range) of shfl.`kind` with lane operand `b` and clamp/segment `c`
    (PTX ISA shfl.sync); lanes out of range read their own value."""
    seg = (c >> 8) & 31
    clamp = c & 31
    max_lane = (lane & seg) | (clamp & ~seg)
    min_lane = lane & seg
    if kind == "up":
        j = lane - b
        ok = j >= max_lane
    elif kind == "down":
        j = lane + b
        ok = j <= max_lane
    elif kind == "bfly":
        j = lane ^ b
        ok = j <= max_lane
    else:
        j = min_lane | (b & ~seg)
        ok = j <= max_lane
    return np.where(ok, j, lane), ok


def _shfl(d: Decoder, ins: Instruction) -> Decoded:
    if not ins.has(".sync"):
        raise unsupported("shfl without .sync", ins)
    kind = next((m[1:] for m in ins.modifiers if m in (".up", ".down", ".bfly", ".idx")), None)
    if kind is None:
        raise unsupported(f"{ins.mnemonic}", ins)
    ops = d.ops(ins, 5)
    dests = [x.strip() for x in ops[0].split("|")]
    wd = d.write(dests[0], U32)
    wp = d.write(dests[1], BOOL) if len(dests) > 1 else None
    ra, rb, rc = d.read(ops[1], U32), d.read(ops[2], U32), d.read(ops[3], U32)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        lane = m.special["laneid"].astype(np.int64)
        b = np.asarray(rb(m)).astype(np.int64) & 31
        c = np.asarray(rc(m)).astype(np.int64)
        j, ok = _shfl_source(kind, lane, b, c)
        src = m.thread_ids - lane + j
        a = np.asarray(ra(m))
        val = a[src] if a.ndim else np.full(m.N, a, np.uint32)
        wd.put(m, mask, val)
        if wp is not None:
            wp.put(m, mask, ok)

    return Decoded(fn, "shfl")


def _vote(d: Decoder, ins: Instruction) -> Decoded:
    kind = next((m[1:] for m in ins.modifiers if m in (".all", ".any", ".uni", ".ballot")), None)
    if kind is None or not ins.has(".sync"):
        raise unsupported(f"{ins.mnemonic}", ins)
    ops = d.ops(ins, 2)
    rp = d.read(ops[1], BOOL)
    out = U32 if kind == "ballot" else BOOL
    w = d.write(ops[0], out)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        active = m.live if mask is None else mask
        p = np.broadcast_to(np.asarray(rp(m)), (m.N,)) & active
        bits = warp_bits(p)
        act = warp_bits(active)
        if kind == "ballot":
            r = np.repeat(bits.astype(np.uint32), 32)
        elif kind == "all":
            r = np.repeat(bits == act, 32)
        elif kind == "any":
            r = np.repeat(bits != 0, 32)
        else:
            r = np.repeat((bits == act) | (bits == 0), 32)
        w.put(m, mask, r)

    return Decoded(fn, "alu")


def _activemask(d: Decoder, ins: Instruction) -> Decoded:
    w = d.write(d.ops(ins, 1)[0], U32)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        active = m.live if mask is None else mask
        w.put(m, mask, np.repeat(warp_bits(active).astype(np.uint32), 32))

    return Decoded(fn, "alu")


HANDLERS: dict[str, Handler] = {"shfl": _shfl, "vote": _vote, "activemask": _activemask}
