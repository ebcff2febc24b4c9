"""Held-out kernels for the whole catalogue: every legal transform alone keeps semantics."""

from __future__ import annotations

import numpy as np

from chronos.transforms import CATALOGUE, STOP, action_mask, apply_action
from chronos.transforms.semantics import check, sizes_of
from kernels import KernelSpec


def check_every_legal_transform(spec: KernelSpec) -> int:
    """Apply each action the mask allows (stop aside) to the untransformed kernel; each one
    that changes it must pass `check` on every problem size with seeds 0 and 1. Returns how
    many changed it."""
    changed = 0
    for i in np.flatnonzero(action_mask(spec, spec.ptx(), [])):
        if i == STOP:
            continue
        res = apply_action(spec, spec.ptx(), int(i))
        if not res.changed:
            continue
        changed += 1
        for size in sizes_of(spec):
            for seed in (0, 1):
                err = check(spec, res.ptx, CATALOGUE[i].exact, size=size, seed=seed)
                assert err is None, f"{spec.id} [{CATALOGUE[i].name}] {size} seed {seed}: {err}"
    return changed
