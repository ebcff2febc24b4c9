"""Tensor-core instructions: ldmatrix and mma.sync (f16 inputs, f32 accumulators).

Both are warp-collective: the 32 lanes of a warp together hold the fragments of small
matrices, in the layouts the PTX ISA fixes. The handlers gather the fragments of each warp
that executes, compute on whole matrices, and scatter the results back to the lanes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from chronos.emulate import numerics as nx
from chronos.emulate.decode.base import F32, U32, Decoded, Handler
from chronos.emulate.errors import EmulationError
from chronos.emulate.operands import DTYPES, Reader, unsupported
from chronos.emulate.program import MemAccess
from chronos.ptx import Instruction
from chronos.ptx.model import split_vector

if TYPE_CHECKING:
    from chronos.emulate.decode.decoder import Decoder

MMA_SHAPES = {".m16n8k16": (16, 8, 16), ".m16n8k8": (16, 8, 8)}
_LANE = np.arange(32)


def _warp_collective(ins: Instruction) -> Callable[[Any, np.ndarray | None], np.ndarray]:
    """The warps (indices into N // 32) executing a .sync.aligned instruction.

    Every thread of the warp must execute it together; a partial warp is undefined
    behaviour in PTX, so it is an error here rather than a guess.
    """
    line, text = ins.line, ins.text

    def warps(m: Any, mask: np.ndarray | None) -> np.ndarray:
        active = (m.live if mask is None else mask).reshape(-1, 32)
        full, none = active.all(1), ~active.any(1)
        if not (full | none).all():
            raise EmulationError(
                f"{ins.opcode} executed by part of a warp (line {line}: {text.strip()})"
            )
        return np.flatnonzero(full)

    return warps


def _ldmatrix(d: Decoder, ins: Instruction) -> Decoded:
    """ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16 (PTX ISA 9.7.14.5.15).

    Lanes 8i..8i+7 give the row addresses of matrix i (16 bytes each); lane l receives in
    destination register i the two b16 elements at row l//4, columns 2(l%4) and 2(l%4)+1
    of matrix i (of its transpose with .trans), the lower column in the low half.
    """
    if not (ins.has(".sync") and ins.has(".aligned") and ins.has(".m8n8")):
        raise unsupported(f"{ins.mnemonic}", ins)
    if not ins.has(".b16"):
        raise unsupported(f"{ins.mnemonic}: only .b16 elements", ins)
    count = next((int(m[2:]) for m in ins.modifiers if m in (".x1", ".x2", ".x4")), None)
    if count is None:
        raise unsupported(f"{ins.mnemonic} without .x1/.x2/.x4", ins)
    trans = ins.has(".trans")
    space = ".shared" if any(m.startswith(".shared") for m in ins.modifiers) else ".generic"
    ops = d.ops(ins, 2)
    dsts = split_vector(ops[0])
    if len(dsts) != count:
        raise unsupported(f"ldmatrix .x{count} needs {count} destinations", ins)
    writers = [d.write(x, U32) for x in dsts]
    addr = d.address(ops[1])
    warps_of = _warp_collective(ins)
    lane = _LANE
    row, col = lane // 4, 2 * (lane % 4)

    def fn(m: Any, mask: np.ndarray | None) -> None:
        warps = warps_of(m, mask)
        if not warps.size:
            return
        a = addr(m, None).reshape(-1, 32)[warps]
        owners = (warps[:, None] * 32 + lane[None, : 8 * count]).ravel()
        rows = m.load(space, a[:, : 8 * count].ravel(), owners, np.dtype(np.uint16), 8, 16)
        # mats[w, i, r, c]: element (r, c) of matrix i of warp w.
        mats = np.stack(rows, axis=-1).reshape(len(warps), count, 8, 8)
        if trans:
            mats = mats.transpose(0, 1, 3, 2)
        threads = (warps[:, None] * 32 + lane[None, :]).ravel()
        for i, w in enumerate(writers):
            lo = mats[:, i, row, col].astype(np.uint32)
            hi = mats[:, i, row, col + 1].astype(np.uint32)
            w.scatter(m, threads, (lo | (hi << np.uint32(16))).ravel())

    # One 16-byte row per lane.
    return Decoded(fn, "ld.shared", mem=MemAccess(space, True, False, 16, 1))


def _mma_shape(ins: Instruction) -> tuple[int, int, int]:
    """(M, N, K) of the one mma form emulated; unsupported for any other."""
    shape = next((MMA_SHAPES[m] for m in ins.modifiers if m in MMA_SHAPES), None)
    types = [m for m in ins.modifiers if m in DTYPES]
    if (
        shape is None
        or not (ins.has(".sync") and ins.has(".aligned") and ins.has(".row") and ins.has(".col"))
        or types != [".f32", ".f16", ".f16", ".f32"]
        or any(m in (".satfinite",) for m in ins.modifiers)
    ):
        raise unsupported(f"{ins.mnemonic}", ins)
    return shape


def _f16_halves(m: Any, reader: Reader, threads: np.ndarray, nw: int) -> list[np.ndarray]:
    """The (low, high) f16 halves of a b32 fragment register, as float64 (warps, 32)."""
    v = np.broadcast_to(np.asarray(reader(m)), (m.N,))[threads].reshape(nw, 32)
    lo = (v & 0xFFFF).astype(np.uint16).view(np.float16).astype(np.float64)
    hi = (v >> 16).astype(np.uint16).view(np.float16).astype(np.float64)
    return [lo, hi]


def _mma(d: Decoder, ins: Instruction) -> Decoded:
    """mma.sync.aligned.m16n8k{8,16}.row.col.f32.f16.f16.f32 (PTX ISA 9.7.14.5.x).

    Fragments, with g = lane//4 and t = lane%4: A (16 x K, row-major) element pairs at
    rows g / g+8, columns 2t + {0,1} (+8 for the second half of K); B (K x 8) pairs at
    rows 2t + {0,1} (+8), column g; C and D (16 x 8) pairs at rows g / g+8, columns
    2t + {0,1}. The products of f16 values are exact; the sum is formed in float64 and
    rounded once to f32 (the hardware's internal order may differ in the last bit for
    inexact sums: docs/emulator.md).
    """
    mm, nn, kk = _mma_shape(ins)
    ops = d.ops(ins, 4)
    d_regs, a_regs, b_regs, c_regs = (split_vector(o) for o in ops[:4])
    na, nb = mm * kk // 64, kk * nn // 64
    if (len(d_regs), len(a_regs), len(b_regs), len(c_regs)) != (4, na, nb, 4):
        raise unsupported("mma operand counts do not match its shape", ins)
    wd = [d.write(r, F32) for r in d_regs]
    ra = [d.read(r, U32) for r in a_regs]
    rb = [d.read(r, U32) for r in b_regs]
    rc = [d.read(r, F32) for r in c_regs]
    warps_of = _warp_collective(ins)
    lane = _LANE
    g, t = lane // 4, lane % 4
    # (row, col) of each fragment element: register r, half h.
    a_rc = [[(g + 8 * (r % 2), 2 * t + h + 8 * (r // 2)) for h in (0, 1)] for r in range(na)]
    b_rc = [[(2 * t + h + 8 * r, g) for h in (0, 1)] for r in range(nb)]
    c_rc = [(g + 8 * (r // 2), 2 * t + r % 2) for r in range(4)]

    def fn(m: Any, mask: np.ndarray | None) -> None:
        warps = warps_of(m, mask)
        if not warps.size:
            return
        nw = len(warps)
        threads = (warps[:, None] * 32 + lane[None, :]).ravel()
        wi = np.arange(nw)[:, None]
        A = np.zeros((nw, mm, kk))
        B = np.zeros((nw, kk, nn))
        C = np.zeros((nw, mm, nn))
        for reader, places in zip(ra, a_rc, strict=True):
            for val, (r, c) in zip(_f16_halves(m, reader, threads, nw), places, strict=True):
                A[wi, r, c] = val
        for reader, places in zip(rb, b_rc, strict=True):
            for val, (r, c) in zip(_f16_halves(m, reader, threads, nw), places, strict=True):
                B[wi, r, c] = val
        for reader, (r, c) in zip(rc, c_rc, strict=True):
            v = np.broadcast_to(np.asarray(reader(m)), (m.N,))[threads].reshape(nw, 32)
            C[wi, r, c] = v.astype(np.float64)
        D = nx.f64_to_f32(np.matmul(A, B) + C, "rn")
        for w, (r, c) in zip(wd, c_rc, strict=True):
            w.scatter(m, threads, np.asarray(D[wi, r, c], np.float32).ravel())

    return Decoded(fn, "mma")


HANDLERS: dict[str, Handler] = {"ldmatrix": _ldmatrix, "mma": _mma}
