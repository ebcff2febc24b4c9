"""A fingerprint of everything the `emulated` backend computes, to prove a speed-up changed
nothing.

    python benchmarks/emulated_fingerprint.py [--per-family 4] [--out hashes.txt] [--smoke]

For a spread of corpus kernels of every family, and for each the untransformed PTX, two
seeded single transforms and one seeded random episode: a cold EmulatedBackend report and
measure (backend `emulated`), hashed field by field: the verdict (kind, error, max_abs_err,
mismatches, bit_exact, approx runs), the outputs' bytes, the step count, the trace the cost
model reads (pcs, warp activity, per-step memory stats, global sectors, last accesses, the
width ratios of every pc), the cost estimate's fields and the Measurement. One line per
state, then a total; run it before and after a change and diff the files. `--smoke`: the
states of gemm_tile_2_2_2 only, each fingerprinted twice (a fingerprint must repeat).
"""

from __future__ import annotations

import argparse
import hashlib
import zlib
from collections import defaultdict
from typing import Any

import numpy as np

import kernels
from chronos.assemble import cache_clear
from chronos.caching import clear_all
from chronos.emulate.decode import cache_clear as decode_cache_clear
from chronos.measure.backends.emulated import EmulatedBackend

ALWAYS = ("gemm_tile_6_8_6",)
"""Kernels sampled whatever the spread: the slowest cold report of issue 29's sample."""


def _feed(h: Any, value: Any) -> None:
    """Hash `value` with its type and shape, so that no two different values collide."""
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for k in sorted(value, key=repr):
            _feed(h, k)
            _feed(h, value[k])
        h.update(b"}")
    elif isinstance(value, (list, tuple)):
        h.update(f"[{len(value)}".encode())
        for v in value:
            _feed(h, v)
        h.update(b"]")
    else:
        h.update(f"{type(value).__name__}:{value!r};".encode())


def _trace_parts(trace: Any, n_pcs: int) -> dict[str, Any]:
    mem = {s: (m.lines, m.sectors, m.wavefronts, m.bytes) for s, m in trace.mem.items()}
    ratios = {(pc, w): trace.width_ratio(pc, w) for pc in trace.last for w in (1, 2, 4, 8, 16)}
    return {
        "pcs": trace.pcs,
        "activity": trace.warp_activity(),
        "mem": mem,
        "sectors": trace.sectors,
        "last": trace.last,
        "ratios": ratios,
        "n": (trace.n_warps, trace.warps_per_block, n_pcs),
    }


def fingerprint(spec: Any, ptx: str) -> str:
    """sha256 of one state's cold report and Measurement (see the module docstring)."""
    clear_all()
    cache_clear()
    decode_cache_clear()
    backend = EmulatedBackend(arch="sm_90")
    rep = backend.report(spec, ptx)
    parts: dict[str, Any] = {
        "report": (rep.valid, rep.error, rep.registers, rep.spills, rep.sass_instructions),
        "sass": (rep.sass_sha256, rep.step_budget, rep.stopped_by, rep.bit_exact),
    }
    v = rep.verify
    if v is not None:
        parts["verify"] = (v.ok, v.kind, v.error, v.max_abs_err, v.mismatches, v.bit_exact)
        parts["approx_runs"] = v.approx_runs
        if v.run is not None:
            run = v.run
            parts["run"] = (run.outputs, run.steps, run.grid, run.block, run.approx_executed)
            if run.trace is not None:
                parts["trace"] = _trace_parts(run.trace, len(run.program.ops))
    if rep.cost is not None:
        parts["cost"] = rep.cost.as_dict()
    clear_all()
    cache_clear()
    decode_cache_clear()
    m = backend.measure(spec, ptx)
    parts["measure"] = (m.cycles, m.valid, m.error, m.regs, m.spills, m.time_ns, m.extra)
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


def states(spec: Any) -> list[tuple[str, str]]:
    """(label, PTX): the kernel as shipped, two seeded single transforms, a random episode."""
    from chronos.transforms import CATALOGUE, apply_action
    from chronos.transforms.semantics import random_episode

    rng = np.random.default_rng([29, zlib.crc32(spec.id.encode())])
    out = [("orig", spec.ptx())]
    changed = []
    for i, t in enumerate(CATALOGUE):
        res = apply_action(spec, spec.ptx(), i)
        if res.changed:
            changed.append((t.name, res.ptx))
    for j in sorted(rng.choice(len(changed), size=min(2, len(changed)), replace=False)):
        out.append(changed[int(j)])
    ptx, applied = random_episode(spec, rng, 4)
    if applied:
        out.append(("+".join(CATALOGUE[a].name for a in applied), ptx))
    return out


def sample(per_family: int) -> list[str]:
    """`per_family` kernels of each family, spread over its sorted ids, plus ALWAYS."""
    fams: dict[str, list[str]] = defaultdict(list)
    for k in kernels.list_kernels():
        kid = k if isinstance(k, str) else k.id
        fams[kernels.load(kid).family].append(kid)
    ids = set(ALWAYS)
    for members in fams.values():
        members.sort()
        n = min(per_family, len(members))
        ids.update(members[round(i * (len(members) - 1) / max(1, n - 1))] for i in range(n))
    return sorted(ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-family", type=int, default=4)
    ap.add_argument("--out", default=None, help="also write the lines to this file")
    ap.add_argument("--smoke", action="store_true", help="gemm_tile_2_2_2's states, twice")
    args = ap.parse_args()
    lines = []
    for kid in ["gemm_tile_2_2_2"] if args.smoke else sample(args.per_family):
        spec = kernels.load(kid)
        for label, ptx in states(spec):
            lines.append(f"{kid} {label} {fingerprint(spec, ptx)}")
            print(lines[-1], flush=True)
            if args.smoke and fingerprint(spec, ptx) != lines[-1].rsplit(" ", 1)[1]:
                raise SystemExit(f"{kid} {label}: the fingerprint does not repeat")
    total = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    print(f"total {len(lines)} states {total}")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + f"\ntotal {len(lines)} states {total}\n")


if __name__ == "__main__":
    main()
