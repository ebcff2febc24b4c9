"""Test data kept as files under tests/data/ (nvcc output with the CUDA source it came from)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "data"
NVCC = DATA / "nvcc"
"""PTX made by `nvcc -ptx -arch=sm_80 -O3` (CUDA 13.0), beside its `.cu` source."""


def nvcc_text(name: str) -> str:
    """The text of tests/data/nvcc/<name> (a `.ptx` or its `.cu` source)."""
    return (NVCC / name).read_text()


def nvcc_args(entry: str, buffers: Iterable[str]) -> dict[str, str]:
    """`run_kernel` args of an nvcc entry whose parameters are the buffers, in order:
    {"<entry>_param_0": first buffer, ...}."""
    return {f"{entry}_param_{i}": name for i, name in enumerate(buffers)}


def ptx_text(name: str) -> str:
    """The text of tests/data/ptx/<name>: small hand-written kernels (`.ptx.in`: a template
    for `str.format`)."""
    return (DATA / "ptx" / name).read_text()


def run_nvcc(ptx: str, entry: str, grid: tuple, block: tuple, buffers: dict, **kw: Any) -> Any:
    """`chronos.emulate.run_kernel` of an nvcc entry whose parameters are the pointers of
    `buffers`, in order (`nvcc_args`); `kw` its other options."""
    from chronos.emulate import run_kernel

    args = nvcc_args(entry, buffers)
    return run_kernel(ptx, grid=grid, block=block, buffers=buffers, args=args, **kw)
