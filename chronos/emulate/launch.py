"""Launching a kernel in the emulator: buffers into the arena, arguments into .param, run.

`run_kernel` is the general entry point (any PTX, any buffers); `emulate` launches a
KernelSpec's problem with its seeded inputs and alignment contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronos.emulate.approx import Approx
from chronos.emulate.decode import decode
from chronos.emulate.executor import DEFAULT_MAX_STEPS, Machine
from chronos.emulate.memory import GLOBAL_BASE, POISON, Arena
from chronos.emulate.program import Program
from chronos.emulate.trace import Trace
from kernels.params import encode_scalar

DEFAULT_ALIGNMENT = 256
"""What cudaMalloc guarantees; used for pointers the caller gives no alignment for."""


@dataclass
class RunResult:
    """Buffers after the run, and what the cost model needs from it."""

    outputs: dict[str, np.ndarray]
    steps: int
    trace: Trace | None
    program: Program
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    warps_per_block: int
    addresses: dict[str, int]
    approx_executed: int = 0
    """Approximate instruction executions (chronos.emulate.approx): 0 means the outputs do
    not depend on how the hardware approximates."""


def param_values(
    program: Program, args: Mapping[str, Any], addresses: Mapping[str, int]
) -> dict[str, bytes]:
    """The bytes of each parameter in the .param space: buffer addresses, and scalars from
    the one encoder the GPU harness uses too (`kernels.params.encode_scalar`)."""
    values: dict[str, bytes] = {}
    for slot in program.params:
        if slot.name not in args:
            continue
        v = args[slot.name]
        if isinstance(v, str):
            values[slot.name] = addresses[v].to_bytes(8, "little")
        else:
            values[slot.name] = encode_scalar(v, slot.type, slot.size, slot.name)
    return values


def run_kernel(
    ptx: str,
    *,
    grid: Sequence[int],
    block: Sequence[int],
    buffers: Mapping[str, np.ndarray],
    args: Mapping[str, Any],
    entry: str | None = None,
    alignment: Mapping[str, int] | None = None,
    read_only: frozenset[str] | set[str] = frozenset(),
    dynamic_shared: int = 0,
    trace: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    races: bool = False,
    approx: Approx | None = None,
) -> RunResult:
    """Run `entry` of `ptx` on copies of `buffers`.

    `args` maps each PTX parameter name to a buffer name (a pointer to that buffer) or a
    number. `alignment` gives a buffer's guaranteed alignment (default 256); buffers named in
    `read_only` fault on any store. Raises EmulationError (MemoryFault, UnsupportedInstruction,
    StepLimitExceeded, TrapExecuted) when the kernel cannot be run to completion, and
    SharedMemoryRace with `races=True` when two threads race on shared memory. `approx` says
    how approximate instructions compute (default: nominally, correctly rounded).
    """
    program = decode(ptx, entry)
    alignment = dict(alignment or {})
    arena = Arena(GLOBAL_BASE, "global")
    addresses: dict[str, int] = {}
    for name, arr in buffers.items():
        raw = np.ascontiguousarray(arr).tobytes()
        addresses[name] = arena.allocate(
            name, len(raw), alignment.get(name, DEFAULT_ALIGNMENT), name in read_only, raw
        )
    values = param_values(program, args, addresses)
    m = Machine(
        program, grid, block, arena, values, dynamic_shared, trace, races=races, approx=approx
    )
    steps = m.run(max_steps)
    outputs = {}
    for name, arr in buffers.items():
        start, size = arena.region_bytes(name)
        a = np.asarray(arr)
        outputs[name] = arena.data[start : start + size].copy().view(a.dtype).reshape(a.shape)
    return RunResult(
        outputs=outputs,
        steps=steps,
        trace=m.trace,
        program=program,
        grid=m.grid,  # type: ignore[arg-type]
        block=m.block,  # type: ignore[arg-type]
        warps_per_block=m.warps_per_block,
        addresses=addresses,
        approx_executed=m.approx.executed,
    )


def emulate(
    spec: Any,
    ptx: str | None = None,
    size: str = "small",
    seed: int = 0,
    inputs: Mapping[str, np.ndarray] | None = None,
    trace: bool = False,
    max_steps: int = DEFAULT_MAX_STEPS,
    races: bool = False,
    approx: Approx | None = None,
) -> RunResult:
    """Launch `spec`'s problem `size` on its seeded inputs (or `inputs`), running `ptx`.

    Buffers with role "out" start filled with 0xFF bytes rather than the zeros `make_inputs`
    gives them, so an element the kernel never writes cannot match a zero reference.
    """
    problem = spec.problem(size)
    if inputs is None:
        inputs = spec.make_inputs(problem, seed)
    args: dict[str, Any] = {}
    alignment: dict[str, int] = {}
    buffers = dict(inputs)
    for b in spec.buffers:
        if b.role == "out":
            # Like cudaMalloc'd memory, outputs start as garbage: unwritten elements show up.
            a = np.asarray(inputs[b.name])
            buffers[b.name] = np.full(a.nbytes, POISON, np.uint8).view(a.dtype).reshape(a.shape)
    for p in spec.params:
        if p.kind == "buffer":
            args[p.name] = p.buffer
            alignment[p.buffer] = int(spec.alignment.get(p.name, DEFAULT_ALIGNMENT))
        else:
            args[p.name] = problem.scalars[p.name]
    return run_kernel(
        spec.ptx() if ptx is None else ptx,
        grid=problem.grid,
        block=problem.block,
        buffers=buffers,
        args=args,
        entry=spec.entry,
        alignment=alignment,
        read_only=frozenset(spec.read_only or ()),
        dynamic_shared=problem.dynamic_shared_bytes,
        trace=trace,
        max_steps=max_steps,
        races=races,
        approx=approx,
    )
