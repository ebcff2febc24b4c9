"""The named kernel features that make up the first part of the observation.

Four groups, each a set of the observation's columns that an ablation can switch off
(`FEATURE_GROUPS`; `bc.feature_groups`):

- `ptx`: the static PTX (instruction mix, widths, registers declared, loops);
- `hints`: what the kernel already carries (cache operators, async copies, prefetches,
  register caps, launch bounds), so a policy can tell an applied hint from a missing one;
- `sass`: what ptxas made of it (registers, spills, the SASS instruction mix per warp);
- `memory`: how it uses the machine, in family-independent terms (occupancy and its limiter,
  DRAM bytes per FLOP, coalescing, reuse, cache hit rates, the share of the time each bound
  takes).

Counts are `log1p`-scaled and mixes are fractions, so every feature sits in a small range an
MLP can use without further normalization. Extraction never runs ptxas or the emulator (they
cost 100 ms and more): the `sass` and `memory` groups read the figures of the measurement the
caller already has (`registers`, `spill_bytes`, and `profile`, an emulated measurement's
`extra`: the cost model's report of its trace). Without them those features hold the sentinel
-1 ("unknown"); a `cupy` measurement carries no trace, so there they are -1 too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from chronos.ptx import Function, Module, parse

UNKNOWN = -1.0
"""The value of a feature whose source (ptxas's figures, the trace's profile) is missing."""


@dataclass(frozen=True)
class Feature:
    name: str
    doc: str
    group: str = "ptx"


SASS_MIX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fp32", ("fp32",)),
    ("fp16", ("fp16",)),
    ("fp64", ("fp64",)),
    ("int", ("imad", "alu")),
    ("sfu", ("sfu", "conv")),
    ("ld_global", ("ld.global",)),
    ("st_global", ("st.global",)),
    ("shared", ("ld.shared", "st.shared")),
    ("local", ("ld.local", "st.local")),
    ("atom", ("atom",)),
    ("async", ("cp.async", "cp.async.commit", "cp.async.wait")),
    ("prefetch", ("prefetch",)),
    ("shfl", ("shfl",)),
    ("mma", ("mma",)),
    ("sync", ("barrier", "membar")),
    ("control", ("branch", "s2r", "ld.const", "nop")),
)
"""SASS instruction classes (the cost model's, `costmodel.warp.SASS_CLASS`) folded into the
mix the `sass` group reports: executions per warp of each, over all executions per warp."""

BOUNDS: tuple[str, ...] = ("latency", "issue", "lsu", "l1", "l2", "dram")
"""The cost model's per-wave bounds; the `memory` group gives each as a share of the wave."""

LIMITERS: tuple[str, ...] = ("registers", "shared", "warps", "blocks")
"""What caps the resident blocks per SM (the CUDA occupancy calculator's resources)."""


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
    Feature(
        "load_cache_hint_frac",
        "global loads with a cache operator or L2 hint / global loads",
        "hints",
    ),
    Feature(
        "store_cache_hint_frac", "global stores with a cache operator / global stores", "hints"
    ),
    Feature("async_copy_frac", "cp.async / (cp.async + ld.global)", "hints"),
    Feature("log_prefetches", "log1p of the number of prefetch instructions", "hints"),
    Feature("log_registers_declared", "log1p of the number of virtual registers declared"),
    Feature("f32_register_frac", "declared .f32 registers / declared registers"),
    Feature("log_loops", "log1p of the number of loops (CFG back edges)"),
    Feature("loop_body_frac", "instructions inside a loop / instructions"),
    Feature("maxnreg", ".maxnreg value / 255 (0 when absent)", "hints"),
    Feature("launch_bounds", "1 when .maxntid/.reqntid is set, plus .minnctapersm / 16", "hints"),
    Feature("ptxas_registers", "registers per thread from ptxas / 255 (-1 when unknown)", "sass"),
    Feature(
        "ptxas_spill_bytes",
        "log1p of spill store + load bytes from ptxas (-1 when unknown)",
        "sass",
    ),
    Feature(
        "log_sass_per_warp", "log1p of SASS instructions executed per warp (-1: unknown)", "sass"
    ),
    *(
        Feature(
            f"sass_{name}_frac",
            f"SASS {'/'.join(classes)} executions / all executions, per warp (-1: unknown)",
            "sass",
        )
        for name, classes in SASS_MIX
    ),
    Feature("occupancy", "resident warps / the SM's maximum (-1: unknown)", "memory"),
    *(
        Feature(f"limited_by_{lim}", f"1 when {lim} cap the blocks per SM (-1: unknown)", "memory")
        for lim in LIMITERS
    ),
    Feature(
        "log_dram_bytes_per_flop",
        "log1p of DRAM bytes per FLOP (64 per fp32/fp64 and 128 per fp16 warp instruction, "
        "at least 1), per warp (-1: unknown)",
        "memory",
    ),
    Feature(
        "sectors_per_request",
        "32-byte sectors per warp-level global access / 32 (coalescing; -1: unknown)",
        "memory",
    ),
    Feature(
        "log2_accesses_per_sector",
        "log2 of global sector accesses per distinct sector (reuse: 0 for a stream; -1: unknown)",
        "memory",
    ),
    Feature("l1_hit_rate", "global sector accesses served by L1 / all (-1: unknown)", "memory"),
    Feature("l2_hit_rate", "L1 misses served by L2 / all L1 misses (-1: unknown)", "memory"),
    Feature(
        "dram_efficiency",
        "the share of the DRAM peak its read/write mix reaches (-1: unknown)",
        "memory",
    ),
    *(
        Feature(f"{b}_share", f"the {b} bound / the wave's estimate (-1: unknown)", "memory")
        for b in BOUNDS
    ),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
N_FEATURES = len(FEATURES)
FEATURE_GROUPS: tuple[str, ...] = tuple(dict.fromkeys(f.group for f in FEATURES))

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
    profile: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Feature vector (float32, shape (N_FEATURES,)) of one entry of a PTX module.

    `registers` and `spill_bytes` are ptxas's figures for this PTX when the caller has them;
    `profile` is the cost model's report of this PTX's trace (an emulated `Measurement.extra`).
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
        *profile_features(profile),
    ]
    return np.asarray(values, dtype=np.float32)


def profile_features(profile: Mapping[str, Any] | None) -> list[float]:
    """The trace-derived features (the `sass` mix on, then the `memory` group), in FEATURES
    order; all UNKNOWN when `profile` is not a cost-model report."""
    n = sum(1 for f in FEATURES if f.group in ("sass", "memory")) - 2  # less ptxas's two
    counts = (profile or {}).get("counts_per_warp")
    if not isinstance(counts, Mapping) or "wave" not in profile:  # type: ignore[operator]
        return [UNKNOWN] * n
    p: Mapping[str, Any] = profile  # type: ignore[assignment]
    executed = sum(float(v) for v in counts.values())
    mix = [
        sum(float(counts.get(c, 0.0)) for c in classes) / executed if executed else 0.0
        for _, classes in SASS_MIX
    ]
    # An FMA's two operations on 32 lanes (fp16x2: twice that): an upper bound per warp.
    flops = 64.0 * (float(counts.get("fp32", 0.0)) + float(counts.get("fp64", 0.0)))
    flops += 128.0 * float(counts.get("fp16", 0.0))
    dram = float(p.get("dram_bytes_per_warp", 0.0))
    wave = max(float(p["wave"]), 1e-9)
    bound_keys = {"latency": "latency", **{b: f"{b}_bound" for b in BOUNDS[1:]}}
    limiter = p.get("occupancy_limiter")
    reuse = float(p.get("accesses_per_sector", 0.0))
    return [
        math.log1p(executed),
        *mix,
        float(p.get("occupancy", UNKNOWN)),
        *(float(limiter == lim) for lim in LIMITERS),
        math.log1p(dram / max(flops, 1.0)),
        float(p.get("sectors_per_request", 0.0)) / 32.0,
        math.log2(reuse) if reuse >= 1.0 else 0.0,
        float(p.get("l1_hit_rate", 0.0)),
        float(p.get("l2_hit_rate", 0.0)),
        float(p.get("dram_efficiency", 1.0)),
        *(float(p.get(bound_keys[b], 0.0)) / wave for b in BOUNDS),
    ]


def group_mask(groups: Sequence[str]) -> np.ndarray:
    """bool (N_FEATURES,): the features of the named groups (the ablation's switch)."""
    unknown = sorted(set(groups) - set(FEATURE_GROUPS))
    if unknown:
        raise ValueError(f"unknown feature group(s) {unknown}; known: {list(FEATURE_GROUPS)}")
    return np.asarray([f.group in groups for f in FEATURES], dtype=bool)


def feature_table() -> str:
    """The features as a markdown table (the documentation's single source)."""
    rows = ["| # | name | group | meaning |", "|---|---|---|---|"]
    rows += [f"| {i} | `{f.name}` | {f.group} | {f.doc} |" for i, f in enumerate(FEATURES)]
    return "\n".join(rows)
