"""Test data kept as files under tests/data/ (nvcc output with the CUDA source it came from)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
NVCC = DATA / "nvcc"
"""PTX made by `nvcc -ptx -arch=sm_80 -O3` (CUDA 13.0), beside its `.cu` source."""


def nvcc_text(name: str) -> str:
    """The text of tests/data/nvcc/<name> (a `.ptx` or its `.cu` source)."""
    return (NVCC / name).read_text()
