"""Does a transformed kernel compute what the original computes? (the CPU emulator decides)

Exact transforms are held to the UNTRANSFORMED kernel's outputs bit for bit on the same
inputs (a reference may itself be approximate: softmax's `ex2.approx`), rounding-changing
ones to the spec's reference within `spec.tolerance`, also with every approximate
instruction pushed to its PTX ISA bound (chronos.emulate.verify); an exact transform feeds
the approximations the same inputs, so its perturbed runs would repeat the original's. Both
also fail on a fault, a shared memory race, a trap or a step-limit overrun. The sweeps
(tests/test_transforms_semantics.py sampled, benchmarks/transforms_semantics.py in full) call
`check` on two problem sizes and two seeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chronos.caching import BoundedCache
from chronos.emulate import emulate, verify
from chronos.transforms.catalogue import CATALOGUE, STOP, action_mask, apply_action

SIZES = ("small", "check")
"""The problems a sweep verifies on; a family without a `check` problem uses `small` only."""

_BASE: BoundedCache[dict[str, np.ndarray]] = BoundedCache(256, name="transforms.semantics")


def sizes_of(spec: Any) -> tuple[str, ...]:
    """The sweep's problem sizes this spec defines."""
    return tuple(s for s in SIZES if s in spec.problems)


def _base_outputs(spec: Any, size: str, seed: int) -> dict[str, np.ndarray]:
    key = (spec.id, spec.ptx_path, size, seed)
    return _BASE.get(key, lambda: emulate(spec, spec.ptx(), size=size, seed=seed).outputs)


def check(spec: Any, ptx: str, exact: bool, size: str = "small", seed: int = 0) -> str | None:
    """None when `ptx` keeps `spec`'s semantics on problem `size` with inputs `seed`, else
    what went wrong."""
    v = verify(spec, ptx, exact=False, seed=seed, size=size, approx=not exact)
    if not v.ok:
        return f"{v.kind}: {v.error}"
    if not exact:
        return None
    base = _base_outputs(spec, size, seed)
    new = emulate(spec, ptx, size=size, seed=seed).outputs
    for name, ref in base.items():
        a = np.ascontiguousarray(ref).view(np.uint8)
        b = np.ascontiguousarray(new[name]).view(np.uint8)
        if a.shape != b.shape or not np.array_equal(a, b):
            n = int(np.count_nonzero(np.asarray(ref) != np.asarray(new[name])))
            return f"mismatch: {name} differs from the untransformed kernel in {n} elements"
    return None


def random_episode(spec: Any, rng: np.random.Generator, max_len: int = 6) -> tuple[str, list[int]]:
    """(PTX, actions) after up to `max_len` mask-respecting actions drawn at random, as an
    agent ignoring rewards would. A legal action that changes nothing is a mask defect and
    raises."""
    ptx, applied = spec.ptx(), []
    for _ in range(max_len):
        legal = [int(a) for a in np.flatnonzero(action_mask(spec, ptx, applied)) if a != STOP]
        if not legal:
            break
        a = int(rng.choice(legal))
        res = apply_action(spec, ptx, a)
        if not res.changed:
            raise RuntimeError(
                f"{spec.id}: {CATALOGUE[a].name} is legal by the mask but changed nothing "
                f"({res.reason})"
            )
        ptx = res.ptx
        applied.append(a)
    return ptx, applied
