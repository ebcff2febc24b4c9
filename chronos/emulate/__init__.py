"""CPU PTX emulator: exact execution, verification against references, and a cost estimate.

    from chronos.emulate import verify, emulate, EmulatedBackend
    res = verify(spec, ptx, exact=True)          # VerifyResult(ok, max_abs_err, mismatches, error,
                                                 # kind: mismatch / fault / race / ...)
    run = emulate(spec, ptx, trace=True)         # RunResult: outputs, steps, dynamic trace
    EmulatedBackend(arch="sm_90").measure(spec, ptx)   # Measurement with estimate=True

Without a GPU this is the only way to know that a transform kept a kernel correct, so it is
strict: unsupported instructions, misaligned or out-of-bounds accesses and runaway loops
stop the run with an error that names the PTX line (see docs/emulator.md).
"""

from chronos.emulate.backend import BACKEND, DEVICE, EmulatedBackend, EmulatedReport, register
from chronos.emulate.costmodel import ARCHS, MODEL_VERSION, CostEstimate, arch_profile, estimate
from chronos.emulate.decode import decode
from chronos.emulate.errors import (
    EmulationError,
    MemoryFault,
    SharedMemoryRace,
    StepLimitExceeded,
    TrapExecuted,
    UnsupportedInstruction,
)
from chronos.emulate.launch import RunResult, emulate, run_kernel
from chronos.emulate.trace import Trace
from chronos.emulate.verify import VerifyResult, compare, verify

__all__ = [
    "ARCHS",
    "BACKEND",
    "DEVICE",
    "MODEL_VERSION",
    "CostEstimate",
    "EmulatedBackend",
    "EmulatedReport",
    "EmulationError",
    "MemoryFault",
    "RunResult",
    "SharedMemoryRace",
    "StepLimitExceeded",
    "Trace",
    "TrapExecuted",
    "UnsupportedInstruction",
    "VerifyResult",
    "arch_profile",
    "compare",
    "decode",
    "emulate",
    "estimate",
    "register",
    "run_kernel",
    "verify",
]

register()
