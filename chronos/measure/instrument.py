"""The SM-clock instrumentation: a pure PTX text transform.

CUDA events time a launch from the host (launch overhead, ~µs resolution); the reward needs
the kernel's own duration in SM cycles. So the `cupy` backend times an instrumented build:

* the module gains two `.visible .global .align 8 .u64` variables, `chronos_cycles` and
  `chronos_ns`, which the harness zeroes before each launch and reads after it;
* each instrumented entry reads `%clock64` and `%globaltimer` before its first instruction;
* before every `ret`/`exit` it computes both deltas, and lane 0 of each warp folds them into
  the globals with `red.global.max.u64`: after the launch `chronos_cycles` holds the lifetime
  of the longest-lived warp in SM cycles and `chronos_ns` that warp's wall time, whose ratio is
  the SM clock the launch ran at (nvbench's throttle check).

A guarded exit `@%p ret;` becomes `@!%p bra skip; <record>; ret; skip:` so that the record
runs exactly when the exit does. The transform never changes what the kernel computes, only
adds registers (which can change ptxas's allocation: hence the uninstrumented build is timed
with CUDA events too).
"""

from __future__ import annotations

from dataclasses import dataclass

from chronos.ptx import Brace, Instruction, Label, parse

CYCLES_SYMBOL = "chronos_cycles"
NS_SYMBOL = "chronos_ns"
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
    cycles_symbol: str = CYCLES_SYMBOL
    ns_symbol: str = NS_SYMBOL


def _negate(guard: str) -> str:
    return "@" + guard[2:] if guard.startswith("@!") else "@!" + guard[1:]


def _record_lines() -> list[str]:
    r = PREFIX
    return [
        f"mov.u64 {r}t1, %clock64;",
        f"mov.u64 {r}g1, %globaltimer;",
        f"sub.u64 {r}d, {r}t1, {r}t0;",
        f"mov.u32 {r}lane, %laneid;",
        f"setp.eq.u32 {r}p, {r}lane, 0;",
        f"@{r}p red.global.max.u64 [{CYCLES_SYMBOL}], {r}d;",
        f"sub.u64 {r}d, {r}g1, {r}g0;",
        f"@{r}p red.global.max.u64 [{NS_SYMBOL}], {r}d;",
    ]


def _declarations() -> list[str]:
    r = PREFIX
    return [
        f".reg .u64 {r}t0, {r}g0, {r}t1, {r}g1, {r}d;",
        f".reg .u32 {r}lane;",
        f".reg .pred {r}p;",
    ]


def _start_lines() -> list[str]:
    r = PREFIX
    return [f"mov.u64 {r}t0, %clock64;", f"mov.u64 {r}g0, %globaltimer;"]


def instrument(ptx: str, entries: str | list[str] | None = None) -> InstrumentedPtx:
    """Instrument `entries` (default: every entry) of `ptx`; see the module docstring."""
    if CYCLES_SYMBOL in ptx or NS_SYMBOL in ptx or PREFIX in ptx:
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
    decls = [
        f".visible .global .align 8 .u64 {CYCLES_SYMBOL};",
        f".visible .global .align 8 .u64 {NS_SYMBOL};",
    ]
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
