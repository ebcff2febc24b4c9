"""The 25 named kernel features that make up the first part of the observation.

Counts are `log1p`-scaled and mixes are fractions of the static instruction count, so every
feature sits in a small range an MLP can use without further normalization. Two features come
from ptxas (registers, spill bytes); extraction never runs ptxas itself (that costs ~100 ms):
callers that already assembled the PTX, such as the measurement backends, pass the figures in,
and without them the two features hold the documented sentinel -1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from chronos.ptx import Function, Module, parse


@dataclass(frozen=True)
class Feature:
    name: str
    doc: str


FEATURES: tuple[Feature, ...] = (
    Feature("log_instructions", "log1p of the static instruction count of the entry"),
    Feature("global_load_frac", "ld.global instructions / instructions"),
    Feature("global_store_frac", "st.global instructions / instructions"),
    Feature("shared_load_frac", "ld.shared instructions / instructions"),
    Feature("shared_store_frac", "st.shared instructions / instructions"),
    Feature("global_load_width", "mean vector width of global loads / 4 (0 when none)"),
    Feature("global_store_width", "mean vector width of global stores / 4 (0 when none)"),
    Feature("shared_access_width", "mean vector width of shared loads and stores / 4"),
    Feature("fma_frac", "floating-point fma/mad instructions / instructions"),
    Feature("alu_frac", "other arithmetic and logic (add, mul, shl, setp, ...) / instructions"),
    Feature("move_frac", "mov, cvt and cvta instructions / instructions"),
    Feature("log_branches", "log1p of the number of bra instructions"),
    Feature("log_barriers", "log1p of the number of bar/barrier instructions"),
    Feature("load_cache_hint_frac", "global loads with a cache operator or L2 hint / global loads"),
    Feature("store_cache_hint_frac", "global stores with a cache operator / global stores"),
    Feature("async_copy_frac", "cp.async / (cp.async + ld.global)"),
    Feature("log_prefetches", "log1p of the number of prefetch instructions"),
    Feature("log_registers_declared", "log1p of the number of virtual registers declared"),
    Feature("f32_register_frac", "declared .f32 registers / declared registers"),
    Feature("log_loops", "log1p of the number of loops (CFG back edges)"),
    Feature("loop_body_frac", "instructions inside a loop / instructions"),
    Feature("maxnreg", ".maxnreg value / 255 (0 when absent)"),
    Feature("launch_bounds", "1 when .maxntid/.reqntid is set, plus .minnctapersm / 16"),
    Feature("ptxas_registers", "registers per thread from ptxas / 255 (-1 when unknown)"),
    Feature("ptxas_spill_bytes", "log1p of spill store + load bytes from ptxas (-1 when unknown)"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
N_FEATURES = len(FEATURES)

_ARITH = frozenset(
    "add sub mul mad mul24 mad24 sad div rem abs neg min max shl shr and or xor not cnot "
    "setp selp set slct popc clz bfe bfi brev prmt lop3 shf rcp sqrt rsqrt sin cos ex2 lg2 "
    "tanh testp copysign fns bfind dp4a dp2a".split()
)
_MOVES = frozenset("mov cvt cvta".split())
_LOAD_HINTS = frozenset(".nc .ca .cg .cs .lu .cv .L1::no_allocate .L1::evict_last".split())
_STORE_HINTS = frozenset(".wb .cg .cs .wt".split())


def _loops(fn: Function) -> tuple[int, int]:
    """(number of back edges, instructions inside some loop) from the basic-block CFG."""
    blocks = fn.basic_blocks()
    in_loop = [False] * len(blocks)
    back_edges = 0
    for i, b in enumerate(blocks):
        for s in b.successors:
            if s <= i:
                back_edges += 1
                for k in range(s, i + 1):
                    in_loop[k] = True
    inside = sum(len(b.instructions) for b, flag in zip(blocks, in_loop, strict=True) if flag)
    return back_edges, inside


def _directive_int(fn: Function, name: str) -> int:
    value = fn.directives.get(name, "")
    try:
        return int(value.split(",")[0])
    except ValueError:
        return 0


def extract(
    ptx: str | Module,
    entry: str | None = None,
    registers: int | None = None,
    spill_bytes: int | None = None,
) -> np.ndarray:
    """Feature vector (float32, shape (25,)) of one entry of a PTX module.

    `registers` and `spill_bytes` are ptxas's figures for this PTX when the caller has them.
    """
    module = parse(ptx) if isinstance(ptx, str) else ptx
    fn = module.entry(entry)
    ins = fn.instructions()
    n = max(len(ins), 1)

    gl = [i for i in ins if i.opcode == "ld" and i.space == ".global"]
    gs = [i for i in ins if i.opcode == "st" and i.space == ".global"]
    sl = [i for i in ins if i.opcode == "ld" and i.space == ".shared"]
    ss = [i for i in ins if i.opcode == "st" and i.space == ".shared"]
    fma = sum(1 for i in ins if i.opcode in ("fma", "mad") and (i.type or "").startswith(".f"))
    arith = sum(1 for i in ins if i.opcode in _ARITH) + sum(
        1 for i in ins if i.opcode in ("fma", "mad") and not (i.type or "").startswith(".f")
    )
    moves = sum(1 for i in ins if i.opcode in _MOVES)
    branches = sum(1 for i in ins if i.opcode == "bra")
    barriers = sum(1 for i in ins if i.opcode in ("bar", "barrier"))
    cp_async = sum(1 for i in ins if i.opcode == "cp" and ".async" in i.modifiers)
    prefetch = sum(1 for i in ins if i.opcode in ("prefetch", "prefetchu"))

    def width(group: list) -> float:
        return sum(i.vector_width for i in group) / (4 * len(group)) if group else 0.0

    def hinted(group: list, hints: frozenset[str]) -> float:
        if not group:
            return 0.0
        count = sum(
            1 for i in group if any(m in hints or m.startswith(".L2::") for m in i.modifiers)
        )
        return count / len(group)

    decls = fn.reg_decls()
    declared = sum(d.count if d.count is not None else 1 for d in decls)
    f32 = sum((d.count if d.count is not None else 1) for d in decls if d.type == ".f32")
    loops, in_loop = _loops(fn)
    bounded = 1.0 if (".maxntid" in fn.directives or ".reqntid" in fn.directives) else 0.0

    values = [
        math.log1p(len(ins)),
        len(gl) / n,
        len(gs) / n,
        len(sl) / n,
        len(ss) / n,
        width(gl),
        width(gs),
        width(sl + ss),
        fma / n,
        arith / n,
        moves / n,
        math.log1p(branches),
        math.log1p(barriers),
        hinted(gl, _LOAD_HINTS),
        hinted(gs, _STORE_HINTS),
        cp_async / (cp_async + len(gl)) if (cp_async + len(gl)) else 0.0,
        math.log1p(prefetch),
        math.log1p(declared),
        f32 / declared if declared else 0.0,
        math.log1p(loops),
        in_loop / n,
        _directive_int(fn, ".maxnreg") / 255.0,
        bounded + _directive_int(fn, ".minnctapersm") / 16.0,
        registers / 255.0 if registers is not None else -1.0,
        math.log1p(spill_bytes) if spill_bytes is not None else -1.0,
    ]
    return np.asarray(values, dtype=np.float32)


def feature_table() -> str:
    """The features as a markdown table (the documentation's single source)."""
    rows = ["| # | name | meaning |", "|---|---|---|"]
    rows += [f"| {i} | `{f.name}` | {f.doc} |" for i, f in enumerate(FEATURES)]
    return "\n".join(rows)
