"""Specs registered only for the duration of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import kernels
from kernels import KernelSpec
from tests.helpers.data import ptx_text


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


@contextlib.contextmanager
def user_ptx_file(directory: Path, name: str, kernel_id: str) -> Iterator[Path]:
    """tests/data/ptx/<name> copied into `directory`, as a user's PTX; the kernel `kernel_id`
    a test registers from it is unregistered afterwards."""
    path = directory / name
    path.write_text(ptx_text(name))
    try:
        yield path
    finally:
        kernels.unregister(kernel_id)
