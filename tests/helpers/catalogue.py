"""The real transform catalogue plus one made-up transform, inserted before stop; and the
shared assertion that a masked transform says why in one line."""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import numpy as np

import chronos.transforms as tx
import kernels


def catalogue_with(name: str, rewrite: Callable[[str], tuple[str, bool]]) -> types.SimpleNamespace:
    """A stand-in for `chronos.transforms` whose action `name` (just before stop) is
    `rewrite(ptx) -> (new ptx, changed)`, allowed once; every other action is the real one."""
    names = (*tx.ACTION_NAMES[:-1], name, "stop")
    extra = len(names) - 2

    def apply_action(spec: Any, ptx: str, action: int) -> Any:
        if action == extra:
            new, changed = rewrite(ptx)
            return types.SimpleNamespace(ptx=new, changed=changed, reason="")
        return tx.apply_action(spec, ptx, action)

    def action_mask(spec: Any, ptx: str, applied: Any) -> np.ndarray:
        real = tx.action_mask(spec, ptx, [a for a in applied if a != extra])
        return np.concatenate([real[:-1], [extra not in applied], [True]])

    return types.SimpleNamespace(
        ACTION_NAMES=names, N_ACTIONS=len(names), STOP=len(names) - 1,
        apply_action=apply_action, action_mask=action_mask,
    )  # fmt: skip


def assert_refused(kernel_id: str, action: str, words: str) -> None:
    """`action` stays masked on the registered kernel, its reason one line containing `words`."""
    spec = kernels.load(kernel_id)
    r = tx.apply_action(spec, spec.ptx(), action)
    assert not r.changed, f"{action} now applies to {kernel_id}"
    assert words in r.reason, r.reason
    assert "\n" not in r.reason
