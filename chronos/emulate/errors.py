"""Exceptions of the emulator: each says which PTX instruction (and line) went wrong.

A verifier that guessed would be worse than none, so anything the emulator cannot model
exactly (an unsupported instruction, a misaligned or out-of-bounds access, a runaway loop)
stops the run with one of these instead of producing plausible numbers.
"""

from __future__ import annotations


class EmulationError(Exception):
    """The kernel could not be emulated to completion; `line` is the PTX line when known."""

    def __init__(self, message: str, line: int | None = None, instruction: str | None = None):
        super().__init__(message, line, instruction)
        self.message = message
        self.line = line
        self.instruction = instruction

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.instruction:
            where.append(f"`{self.instruction}`")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class UnsupportedInstruction(EmulationError):
    """An instruction (or form of one) outside the emulated subset."""


class MemoryFault(EmulationError):
    """A misaligned or out-of-bounds access, a store to a read-only buffer, or a bad space.

    `thread` is the linear thread id over the grid, `block`/`tid` its coordinates, `address`
    the faulting address as the kernel computed it.
    """

    def __init__(
        self,
        message: str,
        line: int | None = None,
        instruction: str | None = None,
        thread: int | None = None,
        block: tuple[int, int, int] | None = None,
        tid: tuple[int, int, int] | None = None,
        address: int | None = None,
    ):
        super().__init__(message, line, instruction)
        self.args = (message, line, instruction, thread, block, tid, address)
        self.thread = thread
        self.block = block
        self.tid = tid
        self.address = address

    def __str__(self) -> str:
        parts = [self.message]
        if self.address is not None:
            parts.append(f"address 0x{self.address:x}")
        if self.block is not None and self.tid is not None:
            parts.append(f"thread {self.thread} (block {self.block}, tid {self.tid})")
        head = ", ".join(parts)
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.instruction:
            where.append(f"`{self.instruction}`")
        return f"{head} ({', '.join(where)})" if where else head


class StepLimitExceeded(EmulationError):
    """The kernel ran more steps than allowed: most likely a loop a transform broke."""


class TrapExecuted(EmulationError):
    """A thread executed `trap` (or `brkpt`)."""


class SharedMemoryRace(EmulationError):
    """Two threads of a block touched one shared byte, one of them writing, with no barrier
    between: the lockstep emulator got an answer, a GPU need not (chronos.emulate.races)."""


class TimeLimitExceeded(StepLimitExceeded):
    """The kernel ran past the wall-clock limit of its `emulation_budget`: a runaway loop whose
    step budget alone would take too long to reach (a timeout like StepLimitExceeded)."""
