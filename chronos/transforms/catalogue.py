"""The action catalogue: the single source of action ids, names, groups and exactness.

Action id = index in CATALOGUE; STOP (= len(CATALOGUE) = 20) ends an episode. Members of an
exclusive group exclude each other within an episode, and every action is applied at most
once, which `action_mask` enforces together with each transform's precondition.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chronos.caching import BoundedCache
from chronos.ptx import Module, parse, ptx_sha256

from . import (
    accumulate,
    async_copy,
    cache,
    fastmath,
    launch,
    prefetch,
    regcap,
    schedule,
    vectorize,
)
from .base import Transform, TransformContext, TransformResult

CATALOGUE: tuple[Transform, ...] = (
    *regcap.TRANSFORMS,  # 0-2   maxnreg_32/64/128
    *launch.TRANSFORMS,  # 3-4   occupancy_75, reqntid
    *cache.LDCACHE,  # 5-9   ld_nc, ld_cg, ld_cs, ld_evict_last, ld_na
    *cache.STCACHE,  # 10    st_cs
    *vectorize.TRANSFORMS,  # 11-12 vec_ld, vec_st
    *schedule.TRANSFORMS,  # 13    reorder_cp
    *async_copy.TRANSFORMS,  # 14    cp_async
    *prefetch.TRANSFORMS,  # 15    prefetch_l2
    cache.LdL2Prefetch(256),  # 16    ld_l2_256B
    cache.LdL2Prefetch(128),  # 17    ld_l2_128B
    *fastmath.TRANSFORMS,  # 18    fast_math (rounding)
    *accumulate.TRANSFORMS,  # 19    split_acc (rounding)
)
STOP: int = len(CATALOGUE)
N_ACTIONS: int = STOP + 1
ACTION_NAMES: tuple[str, ...] = (*(t.name for t in CATALOGUE), "stop")
ACTION_IDS: dict[str, int] = {n: i for i, n in enumerate(ACTION_NAMES)}

assert STOP == 20 and len(set(ACTION_NAMES)) == N_ACTIONS


_CONTEXTS: BoundedCache[tuple[Any, TransformContext]] = BoundedCache(1024, name="contexts")
_PARSED: BoundedCache[Module] = BoundedCache(512, name="transforms.parse")


def transform_context(spec: Any, arch: str | None = None) -> TransformContext:
    """The TransformContext of a KernelSpec (memoized per spec object and arch)."""
    hit = _CONTEXTS.get(
        (id(spec), arch), lambda: (spec, TransformContext.from_spec(spec, arch=arch))
    )
    if hit[0] is not spec:  # the id of a spec that no longer exists was reused
        return TransformContext.from_spec(spec, arch=arch)
    return hit[1]


def _parse(ptx: str) -> Module:
    return _PARSED.get(ptx_sha256(ptx), lambda: parse(ptx))


def action_id(action: int | str) -> int:
    """An action id from an id or a name."""
    if isinstance(action, str):
        if action not in ACTION_IDS:
            raise KeyError(f"unknown action {action!r}; known: {', '.join(ACTION_NAMES)}")
        return ACTION_IDS[action]
    a = int(action)
    if not 0 <= a < N_ACTIONS:
        raise IndexError(f"action id {a} out of range 0..{N_ACTIONS - 1}")
    return a


def apply_action(
    spec: Any, ptx: str, action: int | str, arch: str | None = None
) -> TransformResult:
    """Apply one action to `ptx`; STOP and failed preconditions return the PTX unchanged."""
    a = action_id(action)
    if a == STOP:
        return TransformResult(ptx, False, "stop")
    return CATALOGUE[a].run(_parse(ptx), transform_context(spec, arch))


def apply_sequence(
    spec: Any, ptx: str, actions: Sequence[int | str], arch: str | None = None
) -> str:
    """Apply actions in order (inapplicable ones leave the PTX as it is); returns the PTX."""
    for action in actions:
        ptx = apply_action(spec, ptx, action, arch).ptx
    return ptx


def conflicts(a: int, b: int) -> bool:
    """Do actions a and b exclude each other (same action, or same exclusive group)?"""
    if a == b:
        return True
    if STOP in (a, b):
        return False
    ta, tb = CATALOGUE[a], CATALOGUE[b]
    return ta.exclusive and tb.exclusive and ta.group == tb.group


def action_mask(
    spec: Any, ptx: str, applied: Sequence[int] = (), arch: str | None = None
) -> np.ndarray:
    """bool (21,): applicable now, not applied yet, no exclusive-group conflict; STOP always."""
    done = [action_id(a) for a in applied]
    module = _parse(ptx)
    ctx = transform_context(spec, arch)
    mask = np.zeros(N_ACTIONS, dtype=bool)
    for i, t in enumerate(CATALOGUE):
        if any(conflicts(i, d) for d in done):
            continue
        mask[i] = t.applicable(module, ctx)
    mask[STOP] = True
    return mask
