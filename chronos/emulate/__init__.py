"""CPU PTX emulator: exact execution and verification against NumPy references.

    from chronos.emulate import verify, emulate
    res = verify(spec, ptx, exact=True)          # VerifyResult(ok, max_abs_err, mismatches, error,
                                                 # kind: mismatch / fault / race / ...)
    run = emulate(spec, ptx, trace=True)         # RunResult: outputs, steps, dynamic trace

The `emulated` measurement backend (ptxas + this emulator + the cost model) lives in
chronos.measure.backends.emulated; this package only executes and verifies.

Without a GPU this is the only way to know that a transform kept a kernel correct, so it is
strict: unsupported instructions, misaligned or out-of-bounds accesses and runaway loops
stop the run with an error that names the PTX line (see docs/emulator.md).
"""

from chronos.emulate.decode import decode
from chronos.emulate.errors import (
    EmulationError,
    MemoryFault,
    SharedMemoryRace,
    StepLimitExceeded,
    TimeLimitExceeded,
    TrapExecuted,
    UnsupportedInstruction,
)
from chronos.emulate.executor import Budget, emulation_budget
from chronos.emulate.launch import RunResult, emulate, run_kernel
from chronos.emulate.trace import Trace
from chronos.emulate.verify import VerifyResult, compare, verify

__all__ = [
    "Budget",
    "EmulationError",
    "MemoryFault",
    "RunResult",
    "SharedMemoryRace",
    "StepLimitExceeded",
    "TimeLimitExceeded",
    "Trace",
    "TrapExecuted",
    "UnsupportedInstruction",
    "VerifyResult",
    "compare",
    "decode",
    "emulation_budget",
    "emulate",
    "run_kernel",
    "verify",
]
