"""The shared-memory race detector: the CUDA ordering rule on hand-made access patterns and on
PTX whose races the lockstep emulator would otherwise hide."""

from __future__ import annotations

import numpy as np
import pytest

from chronos.emulate.errors import SharedMemoryRace
from chronos.emulate.launch import run_kernel
from chronos.emulate.races import SharedRaceDetector

PADDED = 32  # threads per block slot, as the executor lays them out


def detector(blocks: int = 2) -> SharedRaceDetector:
    return SharedRaceDetector(nbytes=64 * blocks, stride=64, n_blocks=blocks, padded=PADDED)


def at(*offsets: int) -> np.ndarray:
    return np.asarray(offsets, np.int64)


def test_same_thread_never_races_with_itself() -> None:
    d = detector()
    assert d.write(at(0), at(3), 4) is None
    assert d.read(at(0), at(3), 4) is None
    assert d.write(at(0), at(3), 4) is None


def test_write_then_read_by_another_thread_needs_a_barrier() -> None:
    d = detector()
    assert d.write(at(8), at(1), 4) is None
    race = d.read(at(8), at(2), 4)
    assert race is not None and race.kind == "write-read"
    assert (race.offset, race.block, race.thread, race.other) == (8, 0, 2, 1)
    d = detector()
    d.write(at(8), at(1), 4)
    d.barrier()
    assert d.read(at(8), at(2), 4) is None


def test_reads_never_race_but_a_later_write_does() -> None:
    d = detector()
    assert d.read(at(0, 0, 0), at(1, 2, 3), 4) is None  # a broadcast read
    race = d.write(at(0), at(1), 4)  # thread 1 was one of three readers
    assert race is not None and race.kind == "read-write"
    d = detector()
    d.read(at(0), at(1), 4)
    assert d.write(at(0), at(1), 4) is None  # its only reader is itself


def test_two_writers_in_one_instruction_and_partial_overlap() -> None:
    d = detector()
    race = d.write(at(0, 2), at(1, 2), 4)  # bytes 2-3 written by both
    assert race is not None and race.kind == "write-write" and race.offset in (2, 3)
    d = detector()
    assert d.write(at(0, 4), at(1, 2), 4) is None  # adjacent words: no overlap


def test_barriers_are_per_block() -> None:
    d = detector()
    d.write(at(0, 64), at(0, PADDED), 4)  # thread 0 of block 0, thread 0 of block 1
    d.barrier(np.asarray([0]))  # only block 0 passed a barrier
    assert d.read(at(0), at(5), 4) is None
    race = d.read(at(64), at(PADDED + 5), 4)
    assert race is not None and race.block == 1


HEADER = ".version 8.0\n.target sm_80\n.address_size 64\n"


def exchange_kernel(barrier: bool) -> str:
    """Each thread writes its id to shared memory, then reads its neighbour's slot."""
    sync = "\tbar.sync 0;\n" if barrier else ""
    return (
        HEADER
        + ".visible .entry k(.param .u64 out)\n{\n"
        + "\t.reg .b32 %r<6>;\n\t.reg .b64 %rd<4>;\n"
        + "\t.shared .align 4 .b8 buf[128];\n"
        + "\tld.param.u64 %rd1, [out];\n\tcvta.to.global.u64 %rd1, %rd1;\n"
        + "\tmov.u32 %r1, %tid.x;\n\tshl.b32 %r2, %r1, 2;\n"
        + "\tmov.u32 %r3, buf;\n\tadd.s32 %r4, %r3, %r2;\n"
        + "\tst.shared.u32 [%r4], %r1;\n"
        + sync
        + "\tadd.s32 %r5, %r2, 4;\n\tand.b32 %r5, %r5, 127;\n\tadd.s32 %r5, %r3, %r5;\n"
        + "\tld.shared.u32 %r5, [%r5];\n"
        + "\tmul.wide.u32 %rd2, %r1, 4;\n\tadd.s64 %rd3, %rd1, %rd2;\n"
        + "\tst.global.u32 [%rd3], %r5;\n\tret;\n}\n"
    )


def run(ptx: str, races: bool) -> np.ndarray:
    out = np.zeros(32, np.uint32)
    res = run_kernel(
        ptx, grid=(1, 1, 1), block=(32, 1, 1), buffers={"out": out}, args={"out": "out"},
        entry="k", races=races,
    )  # fmt: skip
    return res.outputs["out"]


def test_missing_barrier_is_reported_even_though_lockstep_gets_it_right() -> None:
    expected = (np.arange(32, dtype=np.uint32) + 1) % 32
    assert np.array_equal(run(exchange_kernel(barrier=True), races=True), expected)
    racy = exchange_kernel(barrier=False)
    assert np.array_equal(run(racy, races=False), expected)  # lockstep hides the race
    with pytest.raises(SharedMemoryRace, match=r"write-read race.*ld\.shared\.u32"):
        run(racy, races=True)


def test_same_value_writes_are_no_race_different_values_are() -> None:
    """Issue 13, item 3: the bytes each thread writes decide (the memory holds zeros)."""
    memory = np.zeros(128, np.uint8)
    same = np.tile(np.frombuffer(np.float32(2.5).tobytes(), np.uint8), (3, 1))
    d = detector()
    assert d.write(at(0, 0, 0), at(1, 2, 3), 4, same, memory) is None  # one instruction
    memory[0:4] = same[0]
    assert d.write(at(0), at(4), 4, same[:1], memory) is None  # a later instruction
    differ = same.copy()
    differ[2] = np.frombuffer(np.float32(3.5).tobytes(), np.uint8)
    race = detector().write(at(0, 0, 0), at(1, 2, 3), 4, differ, np.zeros(128, np.uint8))
    assert race is not None and race.kind == "write-write"
    race = d.write(at(0), at(5), 4, differ[2:], memory)  # another value after thread 4's
    assert race is not None and race.kind == "write-write"


def broadcast_kernel(value: str) -> str:
    """All 32 lanes store `value` to one shared slot, barrier, then each reads it back
    (Triton's cross-warp reduction stores a warp's partial sum this way)."""
    return (
        HEADER
        + ".visible .entry k(.param .u64 out)\n{\n"
        + "\t.reg .b32 %r<6>;\n\t.reg .b64 %rd<4>;\n"
        + "\t.shared .align 4 .b8 buf[4];\n"
        + "\tld.param.u64 %rd1, [out];\n\tcvta.to.global.u64 %rd1, %rd1;\n"
        + "\tmov.u32 %r1, %tid.x;\n\tmov.u32 %r3, buf;\n"
        + f"\tmov.u32 %r2, {value};\n"
        + "\tst.shared.u32 [%r3], %r2;\n\tbar.sync 0;\n\tld.shared.u32 %r5, [%r3];\n"
        + "\tmul.wide.u32 %rd2, %r1, 4;\n\tadd.s64 %rd3, %rd1, %rd2;\n"
        + "\tst.global.u32 [%rd3], %r5;\n\tret;\n}\n"
    )


def test_all_lanes_storing_one_value_to_one_slot_is_no_race() -> None:
    assert np.array_equal(run(broadcast_kernel("7"), races=True), np.full(32, 7, np.uint32))
    with pytest.raises(SharedMemoryRace, match="write-write race"):
        run(broadcast_kernel("%r1"), races=True)  # each lane its own id: a real race
