"""Specs registered only for the duration of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import kernels
from kernels import KernelSpec


@contextlib.contextmanager
def registered(*specs: KernelSpec) -> Iterator[tuple[KernelSpec, ...]]:
    """`specs` registered for the block's duration (other tests never see them)."""
    for s in specs:
        kernels.register(s, replace=True)
    try:
        yield specs
    finally:
        for s in specs:
            kernels.unregister(s.id)
