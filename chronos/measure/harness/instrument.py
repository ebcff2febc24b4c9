"""The SM-clock instrumentation: a pure PTX text transform.

CUDA events time a launch from the host (~µs resolution); the reward needs the kernel's own
duration in SM cycles. So the `cupy` backend times an instrumented build:

* the module gains one `.visible .global .align 8 .u64 chronos_sm[4 * SM_SLOTS]` array, which
  the harness zeroes before each launch and copies out after it;
* each instrumented entry reads `%clock64` and `%globaltimer` before its first instruction;
* before every `ret`/`exit` the leader (lowest active lane) of each exiting group of threads
  folds, into the slot of its SM (`%smid`), with `red.global.max.u64`: the complement of its
  start clock (so the max of complements is the SM's earliest start), its end clock, and the
  same two for `%globaltimer`.

After the launch each SM's row holds [~min start cycle, max end cycle, ~min start ns, max end
ns] over every warp that ran there, in every wave: `%clock64` is a per-SM counter, so a span
is only meaningful within one SM. The kernel's cycles are the longest per-SM span (the busiest
SM's first-warp-in to last-warp-out), which tracks the kernel's duration through several CTAs
per SM and several waves, so lowering occupancy (shorter warps, more waves) is not rewarded;
that SM's ns span gives the clock the launch ran at (nvbench's throttle check), and the
global ns span (min start to max end over all SMs) the kernel's wall time.

A guarded exit `@%p ret;` becomes `@!%p bra skip; <record>; ret; skip:` so that the record
runs exactly when the exit does. The transform never changes what the kernel computes, only
adds registers (which can change ptxas's allocation, and its spills: hence the uninstrumented
build is timed with CUDA events too, and the instrumented build's spills are reported).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chronos.ptx import Brace, Instruction, Label, parse

TIMER_SYMBOL = "chronos_sm"
SM_SLOTS = 256
"""Rows of the timer array; an SM id at or above it shares the last row (no GPU has as many)."""
TIMER_FIELDS = 4
"""Per SM: ~start cycle, end cycle, ~start ns, end ns."""
TIMER_BYTES = 8 * TIMER_FIELDS * SM_SLOTS
PREFIX = "%chronos_"
LABEL_PREFIX = "$chronos_skip_"
EXITS = ("ret", "exit")


class InstrumentError(ValueError):
    """The PTX cannot be instrumented (already instrumented, no such entry, name clash)."""


@dataclass(frozen=True)
class InstrumentedPtx:
    """An instrumented module and where its timers are."""

    ptx: str
    entries: tuple[str, ...]
    exits: int
    timer_symbol: str = TIMER_SYMBOL
    sm_slots: int = SM_SLOTS


def _negate(guard: str) -> str:
    return "@" + guard[2:] if guard.startswith("@!") else "@!" + guard[1:]


def _record_lines() -> list[str]:
    r = PREFIX
    row = 8 * SM_SLOTS  # bytes between the four fields
    return [
        f"mov.u64 {r}t1, %clock64;",
        f"mov.u64 {r}g1, %globaltimer;",
        f"activemask.b32 {r}m;",
        f"neg.s32 {r}low, {r}m;",
        f"and.b32 {r}low, {r}low, {r}m;",
        f"mov.u32 {r}lane, %lanemask_eq;",
        f"setp.eq.b32 {r}p, {r}low, {r}lane;",
        f"mov.u32 {r}sm, %smid;",
        f"min.u32 {r}sm, {r}sm, {SM_SLOTS - 1};",
        f"mul.wide.u32 {r}a, {r}sm, 8;",
        f"mov.u64 {r}d, {TIMER_SYMBOL};",
        f"add.u64 {r}a, {r}a, {r}d;",
        f"not.b64 {r}d, {r}t0;",
        f"@{r}p red.global.max.u64 [{r}a], {r}d;",
        f"@{r}p red.global.max.u64 [{r}a+{row}], {r}t1;",
        f"not.b64 {r}d, {r}g0;",
        f"@{r}p red.global.max.u64 [{r}a+{2 * row}], {r}d;",
        f"@{r}p red.global.max.u64 [{r}a+{3 * row}], {r}g1;",
    ]


def _declarations() -> list[str]:
    r = PREFIX
    return [
        f".reg .u64 {r}t0, {r}g0, {r}t1, {r}g1, {r}d, {r}a;",
        f".reg .u32 {r}lane, {r}m, {r}low, {r}sm;",
        f".reg .pred {r}p;",
    ]


def _start_lines() -> list[str]:
    r = PREFIX
    return [f"mov.u64 {r}t0, %clock64;", f"mov.u64 {r}g0, %globaltimer;"]


def instrument(ptx: str, entries: str | list[str] | None = None) -> InstrumentedPtx:
    """Instrument `entries` (default: every entry) of `ptx`; see the module docstring."""
    if TIMER_SYMBOL in ptx or PREFIX in ptx:
        raise InstrumentError("PTX is already instrumented (or uses chronos_* names)")
    module = parse(ptx)
    all_entries = [f.name for f in module.entries]
    if entries is None:
        names = all_entries
    else:
        names = [entries] if isinstance(entries, str) else list(entries)
        missing = [n for n in names if n not in all_entries]
        if missing:
            raise InstrumentError(f"no entry {missing} in the PTX; entries: {all_entries}")
    if not names:
        raise InstrumentError("the PTX has no .entry to instrument")

    nl = module.newline
    editor = module.edit()
    anchor = module.directive(".address_size") or module.directive(".target")
    decls = [f".visible .global .align 8 .u64 {TIMER_SYMBOL}[{TIMER_FIELDS * SM_SLOTS}];"]
    if anchor is None:
        raise InstrumentError("the PTX has no .target/.address_size directive")
    editor.insert_after(anchor, ["", *decls], indent="")

    exits = 0
    for func in module.entries:
        if func.name not in names:
            continue
        instructions = func.instructions()
        if not instructions:
            raise InstrumentError(f"entry {func.name} has no instructions")
        first = instructions[0]
        indent = editor.indent_of(first) or "\t"
        # Declarations at function scope (the first instruction may sit in a nested { }
        # block); the clock reads before the first label or instruction, so that a loop
        # whose label opens the body does not re-read them.
        editor.insert_after(func.open_brace, _declarations(), indent=indent)
        start = next(st for st in func.body if isinstance(st, Instruction | Label | Brace))
        editor.insert_before(start, _start_lines(), indent=indent)
        last_is_exit = False
        for ins in instructions:
            if ins.opcode not in EXITS:
                last_is_exit = False
                continue
            ind = editor.indent_of(ins) or "\t"
            record = _record_lines()
            if ins.guard is None:
                editor.insert_before(ins, record, indent=ind)
                last_is_exit = True
            else:
                label = f"{LABEL_PREFIX}{exits}"
                body = [f"{_negate(ins.guard)} bra {label};", *record, _unguarded(ins)]
                text = (nl + ind).join(body) + nl + f"{label}:"
                editor.replace(ins, text)
                last_is_exit = False
            exits += 1
        if not last_is_exit:
            # An entry may fall off its closing brace: record there too.
            editor.insert_before(func.close_brace, [*_record_lines(), "ret;"], indent=indent)
            exits += 1
    return InstrumentedPtx(editor.text(), tuple(names), exits)


def _unguarded(ins: Instruction) -> str:
    return ins.with_(guard=None).render()


@dataclass(frozen=True)
class Spans:
    """Per-launch figures decoded from the timer array (see the module docstring)."""

    cycles: np.ndarray
    """The longest per-SM %clock64 span of each launch."""
    ns: np.ndarray
    """The %globaltimer span of the same SM: cycles / ns is the clock that SM ran at."""
    wall_ns: np.ndarray
    """The %globaltimer span over every SM: the kernel's duration."""
    sms: np.ndarray
    """How many SMs ran at least one warp."""


def decode_timers(timers: np.ndarray, sm_slots: int = SM_SLOTS) -> Spans:
    """(launches, 4 * sm_slots) or (launches, 4, sm_slots) uint64 timer arrays -> Spans.

    Raises ValueError when a launch recorded nothing (no warp reached an exit) or an end
    precedes its start (a corrupted sample).
    """
    t = np.asarray(timers)
    if t.dtype != np.uint64:
        t = t.astype(np.uint64)
    t = t.reshape(t.shape[0], TIMER_FIELDS, sm_slots)
    ran = t[:, 1, :] != 0
    if not ran.any(axis=1).all():
        raise ValueError("a launch recorded no warp (timer array all zero)")
    start_c, end_c = ~t[:, 0, :], t[:, 1, :]
    start_g, end_g = ~t[:, 2, :], t[:, 3, :]
    if np.any(ran & ((end_c < start_c) | (end_g < start_g))):
        raise ValueError("a timer ends before it starts")
    span_c = np.where(ran, end_c - start_c, 0).astype(np.float64)
    span_g = np.where(ran, end_g - start_g, 0).astype(np.float64)
    busiest = np.argmax(span_c, axis=1)
    rows = np.arange(t.shape[0])
    big = np.iinfo(np.uint64).max
    wall = (np.where(ran, end_g, 0).max(axis=1) - np.where(ran, start_g, big).min(axis=1)).astype(
        np.float64
    )
    return Spans(span_c[rows, busiest], span_g[rows, busiest], wall, ran.sum(axis=1))
