"""Per-kernel resource figures parsed from `ptxas -v`.

ptxas 12.x and 13.x print, for each entry (info lines on stdout):

    ptxas info    : Compiling entry function 'vadd' for 'sm_80'
    ptxas info    : Function properties for vadd
        64 bytes stack frame, 8 bytes spill stores, 8 bytes spill loads
    ptxas info    : Used 32 registers, used 1 barriers, 64 bytes cumulative stack size,
                    1024 bytes smem, 380 bytes cmem[0]          (one line in the real output)
    ptxas info    : Compile time = 0.917 ms

Items after "Used N registers" appear only when they apply (sm_90+ leaves out cmem[0]; no
smem item without shared memory), so they are matched one by one and default to 0. Non-inlined
device functions get a "Function properties" block of their own, outside any entry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_COMPILING = re.compile(r"^ptxas info\s*: Compiling entry function '(?P<name>[^']+)'")
_PROPERTIES = re.compile(r"^ptxas info\s*: Function properties for (?P<name>.+?)\s*$")
_FRAME = re.compile(
    r"^\s*(?P<frame>\d+) bytes stack frame, (?P<st>\d+) bytes spill stores, "
    r"(?P<ld>\d+) bytes spill loads"
)
_USED = re.compile(r"^ptxas info\s*: Used (?P<regs>\d+) registers(?P<rest>.*)$")
_BARRIERS = re.compile(r"used (\d+) barriers")
_CUMULATIVE_STACK = re.compile(r"(\d+) bytes cumulative stack size")
_SMEM = re.compile(r"(\d+)(?:\+(\d+))? bytes smem")
_CMEM = re.compile(r"(\d+) bytes cmem\[\d+\]")


@dataclass(frozen=True)
class Resources:
    """What ptxas allocated for one entry; byte counts are per thread except shared/const."""

    registers: int
    spill_stores: int
    spill_loads: int
    stack_bytes: int
    shared_bytes: int
    const_bytes: int
    barriers: int

    @property
    def spill_bytes(self) -> int:
        return self.spill_stores + self.spill_loads


def parse_resources(log: str) -> dict[str, Resources]:
    """Entry name -> Resources, in the order ptxas compiled them.

    `stack_bytes` is the cumulative stack size (the entry's frame plus its callees') when ptxas
    reports one, else the entry's frame. `const_bytes` adds up every cmem bank on the "Used"
    line. `shared_bytes` is static shared memory only (dynamic shared memory is a launch value).
    """
    frames: dict[str, tuple[int, int, int]] = {}
    used: dict[str, re.Match[str]] = {}
    order: list[str] = []
    entry: str | None = None
    props_for: str | None = None
    for line in log.splitlines():
        if m := _COMPILING.match(line):
            entry = m["name"]
            order.append(entry)
            props_for = None
        elif m := _PROPERTIES.match(line):
            props_for = m["name"]
        elif (m := _FRAME.match(line)) and props_for is not None:
            frames[props_for] = (int(m["frame"]), int(m["st"]), int(m["ld"]))
            props_for = None
        elif (m := _USED.match(line)) and entry is not None:
            used[entry] = m
            entry = None
    result = {}
    for name in order:
        m = used.get(name)
        if m is None:
            continue
        rest = m["rest"]
        frame, spill_st, spill_ld = frames.get(name, (0, 0, 0))
        cumulative = _first_int(_CUMULATIVE_STACK, rest)
        smem = _SMEM.search(rest)
        result[name] = Resources(
            registers=int(m["regs"]),
            spill_stores=spill_st,
            spill_loads=spill_ld,
            stack_bytes=max(frame, cumulative),
            shared_bytes=int(smem[1]) + int(smem[2] or 0) if smem else 0,
            const_bytes=sum(int(c) for c in _CMEM.findall(rest)),
            barriers=_first_int(_BARRIERS, rest),
        )
    return result


def _first_int(pattern: re.Pattern[str], text: str) -> int:
    m = pattern.search(text)
    return int(m[1]) if m else 0
