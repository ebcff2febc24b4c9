"""The `emulated` measurement backend: ptxas figures + CPU emulation + the cost model.

For a GPU-less machine. Each measurement assembles the PTX with ptxas (with `-lineinfo` and a
`.loc` per instruction, which leaves the SASS unchanged: registers, spills, the SASS and its
PTX lines), runs it in the emulator on the kernel's small problem and verifies the outputs,
then turns the SASS and the dynamic trace into a cycle estimate (chronos.measure.costmodel).
The result is always labelled an estimate: `estimate=True`, `backend="emulated"`,
`device="cpu-emulator (estimate)"`. A kernel that ptxas rejects, that faults, that the
emulator does not support or whose outputs differ yields an invalid Measurement whose `error`
says why (and `extra["kind"]` the emulator's verdict); only a missing ptxas (a setup problem)
raises.

Bounded work: a runaway kernel (a broken loop bound) costs one invalid measurement of kind
`timeout` naming the PTX line, in bounded time. The emulator stops after `step_factor` times the
untransformed kernel's dynamic step count on the same problem, or after `time_limit_s` of wall
clock, whichever comes first. A step-budget timeout repeats exactly and is stored; a wall-clock
one depends on the machine's load and is marked `transient` (never stored).

A new state's ptxas and nvdisasm (subprocesses) run in a thread while this one emulates and
verifies, so a cold measurement costs about the longer of the two plus the cost model, not
their sum (issue 29: near the ptxas floor).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronos.arch import arch_profile, ptxas_arch
from chronos.assemble import ptxas_version_for
from chronos.assemble.disasm import SassInstruction, sass_function, with_line_info
from chronos.caching import BoundedCache
from chronos.emulate.errors import EmulationError, TimeLimitExceeded
from chronos.emulate.executor import DEFAULT_MAX_STEPS, emulation_budget
from chronos.emulate.launch import emulate
from chronos.emulate.verify import VERIFY_VERSION, VerifyResult, verify
from chronos.measure.backends.registry import BackendBase
from chronos.measure.costmodel import MODEL_VERSION, CostEstimate, estimate
from chronos.measure.launch import L2_MODES
from chronos.measure.measurement import Measurement
from chronos.ptx import PtxParseError, ptx_sha256
from kernels.spec import spec_fingerprint

BACKEND = "emulated"
DEVICE = "cpu-emulator (estimate)"
STEP_FACTOR = 20
"""A transformed kernel may run this many times the untransformed kernel's steps."""
MIN_STEP_BUDGET = 1_000
"""The step budget of a kernel whose untransformed version runs very few steps."""
TIME_LIMIT_S = 3.0
"""Wall clock per emulator run; the slowest corpus kernel runs in ~0.4 s on one idle core."""

_baseline_steps: BoundedCache[int] = BoundedCache(1024, name="baseline steps")
"""Dynamic steps of each untransformed kernel per (spec, problem, seed, step cap)."""

_sass_cache: BoundedCache[list[SassInstruction]] = BoundedCache(1024, name="sass")
"""Decoded SASS per distinct (cubin, function, arch): the cubin carries the PTX lines."""


def _sass(cubin: bytes, function: str, arch: str) -> list[SassInstruction]:
    key = (hashlib.sha256(cubin).hexdigest(), function, arch)
    return _sass_cache.get(key, lambda: sass_function(cubin, function, arch))


def sass_sha256(sass: list[SassInstruction]) -> str:
    """sha256 of a function's SASS words (control codes included, line info not): two PTX
    texts with one hash run the same machine code, whatever their text or line numbers."""
    h = hashlib.sha256()
    for ins in sass:
        h.update(ins.word0.to_bytes(8, "little") + ins.word1.to_bytes(8, "little"))
    return h.hexdigest()


@dataclass
class EmulatedReport:
    """Everything one emulated measurement found; `measure` condenses it to a Measurement."""

    ptx_sha256: str
    valid: bool
    error: str | None
    registers: int | None = None
    spills: int | None = None
    sass_instructions: int | None = None
    verify: VerifyResult | None = None
    cost: CostEstimate | None = None
    bit_exact: bool | None = None
    sass_sha256: str | None = None
    step_budget: int | None = None
    stopped_by: str | None = None
    """"steps" or "time" when a budget stopped the emulator (kind `timeout`), else None."""


def _buffer_bytes(spec: Any, problem: Any) -> dict[str, int]:
    """Bytes of each of the kernel's buffers in `problem`."""
    return {
        b.name: int(np.prod(problem.shapes[b.name])) * b.storage.itemsize
        for b in spec.buffers
        if b.name in problem.shapes
    }


def _footprint(spec: Any, problem: Any) -> int:
    """Bytes of the kernel's buffers in `problem` (what DRAM must deliver at least once)."""
    return sum(_buffer_bytes(spec, problem).values())


def _buffer_ranges(spec: Any, run: Any, full: Any) -> dict[str, tuple[int, int, int]]:
    """Buffer -> (base address in the emulated run, its bytes there, its bytes in `full`)."""
    full_bytes = _buffer_bytes(spec, full)
    return {
        name: (run.addresses[name], run.outputs[name].nbytes, n)
        for name, n in full_bytes.items()
        if name in run.addresses and name in run.outputs
    }


class EmulatedBackend(BackendBase):
    """Estimate a kernel's cycles without a GPU.

    `arch` is the ptxas target and the SM profile of the cost model; `size` the problem the
    emulator runs ("small"); `occupancy_size` the problem whose grid sets how many blocks
    share an SM ("full", as timed on the GPU). `exact=None` accepts outputs that are bit-exact
    or, failing that, within the kernel's tolerance (reported in `extra["bit_exact"]`);
    True/False force one comparison. Where approximate instructions execute, runs with them
    pushed to their PTX ISA bounds must be within the tolerance too (chronos.emulate.verify).
    `races` (default on) also rejects kernels whose shared memory accesses no barrier orders
    (chronos.emulate.races): the lockstep emulator would compute their outputs right, a GPU
    need not. `l2` is the `cupy` harness's L2 mode the estimate stands for: "cold" (the
    harness's default, L2 flushed before every timed launch: first touches come from DRAM) or
    "hot" (the previous launch's data stays resident).
    `step_factor` and `time_limit_s` bound a run (see the module docstring); `max_steps` caps
    the step budget, and is the budget when the untransformed kernel does not run.
    """

    name = BACKEND
    device = DEVICE
    harness_version = MODEL_VERSION
    verifier = VERIFY_VERSION
    """What a verdict means (chronos.emulate.verify); in the store key with the other fields."""
    config_fields = (
        "verifier",
        "arch",
        "size",
        "seed",
        "exact",
        "occupancy_size",
        "max_steps",
        "races",
        "l2",
        "step_factor",
    )

    def __init__(
        self,
        arch: str = "sm_90",
        size: str = "small",
        seed: int = 0,
        exact: bool | None = None,
        occupancy_size: str = "full",
        max_steps: int = DEFAULT_MAX_STEPS,
        races: bool = True,
        l2: str = "cold",
        step_factor: float = STEP_FACTOR,
        time_limit_s: float | None = TIME_LIMIT_S,
    ):
        if l2 not in L2_MODES:
            raise ValueError(f"l2 must be one of {L2_MODES}, got {l2!r}")
        if not step_factor >= 1:
            raise ValueError(f"step_factor must be at least 1, got {step_factor!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps!r}")
        if time_limit_s is not None and not time_limit_s > 0:
            raise ValueError(f"time_limit_s must be positive or None, got {time_limit_s!r}")
        self.arch = arch
        self.profile = arch_profile(arch)
        self.target = ptxas_arch(arch)
        self.size = size
        self.seed = seed
        self.exact = exact
        self.occupancy_size = occupancy_size
        self.max_steps = max_steps
        self.races = races
        self.l2 = l2
        self.step_factor = step_factor
        self.time_limit_s = time_limit_s

    def __repr__(self) -> str:
        return (
            f"EmulatedBackend(arch={self.arch!r}, size={self.size!r}, seed={self.seed}, "
            f"l2={self.l2!r})"
        )

    @property
    def clock_mhz(self) -> float:
        return self.profile.clock_mhz

    def step_budget(self, spec: Any, ptx: str | None = None) -> int:
        """Steps `spec`'s kernel may run: `step_factor` times its untransformed PTX's steps
        (at least MIN_STEP_BUDGET, at most `max_steps`), or `max_steps` when that PTX does not
        run to completion. `ptx` is the text about to be measured: when it is the untransformed
        PTX itself, its budget is `max_steps` (its own run then sets the others')."""
        key = (spec_fingerprint(spec), self.size, self.seed, self.max_steps)
        if _baseline_steps.peek(key):
            steps = _baseline_steps.get(key, lambda: self.max_steps)
        elif ptx is not None and ptx_sha256(ptx) == ptx_sha256(spec.ptx()):
            return self.max_steps
        else:
            try:
                steps = _baseline_steps.get(key, lambda: self._run_baseline(spec))
            except TimeLimitExceeded:  # the machine is busy: try again next time
                return self.max_steps
        budget = max(MIN_STEP_BUDGET, int(self.step_factor * steps))
        return min(self.max_steps, budget)

    def _run_baseline(self, spec: Any) -> int:
        """The untransformed kernel's steps (`max_steps` + 1 when it does not complete)."""
        try:
            with emulation_budget(self.time_limit_s):
                run = emulate(spec, size=self.size, seed=self.seed, max_steps=self.max_steps)
        except TimeLimitExceeded:
            raise
        except (EmulationError, PtxParseError):
            return self.max_steps + 1
        return run.steps

    def _verify_and_assemble(
        self, spec: Any, ptx: str
    ) -> tuple[VerifyResult, Any, Any, list[SassInstruction] | None, int]:
        """(the verification, how its budget ended, the assembly, the SASS, the step budget):
        ptxas and nvdisasm (subprocesses) run in a thread while this one emulates. Raises
        PtxasError when ptxas rejects the PTX."""
        from chronos.assemble import assemble

        def tools() -> tuple[Any, list[SassInstruction] | None]:
            asm = assemble(with_line_info(ptx), self.target, extra_args=("-lineinfo",))
            if spec.entry not in asm.resources:
                return asm, None
            return asm, _sass(asm.cubin, spec.entry, self.target)

        # One thread per report, not a shared pool: a pool's thread does not survive a fork
        # (Ray and multiprocessing workers fork).
        with ThreadPoolExecutor(1, thread_name_prefix="chronos-ptxas") as pool:
            tooling = pool.submit(tools)
            step_budget = self.step_budget(spec, ptx)
            with emulation_budget(self.time_limit_s) as budget:
                v = verify(
                    spec,
                    ptx,
                    exact=self.exact is True,
                    seed=self.seed,
                    size=self.size,
                    trace=True,
                    max_steps=step_budget,
                    races=self.races,
                )
            asm, sass = tooling.result()
        return v, budget, asm, sass, step_budget

    def report(self, spec: Any, ptx: str) -> EmulatedReport:
        """Assemble, emulate, verify and estimate; never raises for a bad kernel."""
        from chronos.assemble import PtxasError

        sha = ptx_sha256(ptx)
        try:
            v, budget, asm, sass_listing, step_budget = self._verify_and_assemble(spec, ptx)
        except PtxasError as exc:
            return EmulatedReport(sha, False, f"ptxas rejected the PTX: {exc}")
        res = asm.resources.get(spec.entry)
        regs = res.registers if res else None
        spills = (res.spill_stores + res.spill_loads) if res else None
        sass = asm.sass_instructions.get(spec.entry)
        base = EmulatedReport(sha, False, None, regs, spills, sass)
        base.step_budget = step_budget
        base.verify = v
        if v.kind == "timeout":
            base.stopped_by = budget.stopped
        elif v.ok and v.run is not None and base.step_budget == self.max_steps:
            # The untransformed kernel (or a budget from max_steps): remember its steps.
            if ptx_sha256(ptx) == ptx_sha256(spec.ptx()):
                key = (spec_fingerprint(spec), self.size, self.seed, self.max_steps)
                _baseline_steps.get(key, lambda: v.run.steps)  # type: ignore[union-attr]
        bit_exact = None if self.exact is False else v.bit_exact
        if not v.ok or v.run is None:
            base.error = f"emulator: {v.kind}: {v.error}"
            return base
        run = v.run
        assert run.trace is not None
        threads = run.block[0] * run.block[1] * run.block[2]
        try:
            occ_problem = spec.problem(self.occupancy_size)
        except KeyError:
            occ_problem = spec.problem(self.size)
        gx, gy, gz = occ_problem.grid
        shared = res.shared_bytes if res else None
        if shared is not None:
            shared += occ_problem.dynamic_shared_bytes
        footprint = _footprint(spec, occ_problem)
        emulated_footprint = _footprint(spec, spec.problem(self.size))
        sass = sass_listing if sass_listing is not None else []
        base.sass_sha256 = sass_sha256(sass)
        cost = estimate(
            run.program,
            run.trace,
            sass,
            threads,
            arch=self.arch,
            registers=regs or 0,
            shared_bytes=shared,
            total_blocks=gx * gy * gz,
            footprint_bytes=float(footprint),
            emulated_footprint_bytes=float(emulated_footprint),
            l2=self.l2,
            buffers=_buffer_ranges(spec, run, occ_problem),
        )
        base.valid = True
        base.cost = cost
        base.bit_exact = bit_exact
        return base

    def measure(self, spec: Any, ptx: str) -> Any:
        """A Measurement (chronos.measure) labelled as an estimate."""
        rep = self.report(spec, ptx)
        common: dict[str, Any] = {
            "backend": BACKEND,
            "device": DEVICE,
            "clock_mhz": self.clock_mhz,
            "regs": rep.registers,
            "spills": rep.spills,
            "harness_version": MODEL_VERSION,
            "estimate": True,
            "ptx_sha256": rep.ptx_sha256,
            "kernel_id": spec.id,
            "spec_fingerprint": spec_fingerprint(spec),
            "ptxas_version": ptxas_version_for(ptx),
        }
        if not rep.valid or rep.cost is None:
            extra: dict[str, Any] = {"sass_instructions": rep.sass_instructions}
            if rep.verify is None:
                extra["kind"] = "ptxas"
            else:
                extra["kind"] = rep.verify.kind
                extra["step_budget"] = rep.step_budget
            if rep.stopped_by is not None:
                extra["stopped_by"] = rep.stopped_by
                # A wall-clock stop depends on the machine's load: never store it.
                extra["transient"] = rep.stopped_by == "time"
            return Measurement.invalid(rep.error or "invalid", extra=extra, **common)
        c = rep.cost.estimate
        extra = rep.cost.as_dict()
        extra.update(
            {
                "sass_instructions": rep.sass_instructions,
                "sass_sha256": rep.sass_sha256,
                "bit_exact": rep.bit_exact,
                "emulated_problem": self.size,
                "l2": self.l2,
                "emulated_steps": rep.verify.run.steps if rep.verify and rep.verify.run else None,
            }
        )
        return Measurement(
            cycles=c,
            cycles_q1=c,
            cycles_q3=c,
            time_ns=c / self.clock_mhz * 1e3,
            n=1,
            valid=True,
            error=None,
            extra=extra,
            **common,
        )
