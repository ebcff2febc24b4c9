"""ISA lowering keeps the kernel: a sample of benchmarks/isa_lowering.py (the full sweep: every
corpus kernel and every mask-legal transform on two kernels per family, 505 texts)."""

from __future__ import annotations

import pytest

from chronos.assemble.ptxas import candidates, cuda_major
from tests.helpers.scripts import load_script

bench = load_script("benchmarks/isa_lowering.py", "bench_isa_lowering")
TRANSFORMED = ["gemm_tile_2_2_2", "elementwise_saxpy_256_4"]


@pytest.fixture(scope="module")
def cases():
    return bench.make_cases(bench.family_heads(1), TRANSFORMED)


@pytest.mark.skipif(
    not any(cuda_major(e) == 12 for e in candidates()),
    reason="needs a CUDA 12 ptxas (pip install nvidia-cuda-nvcc-cu12: the cuda12/dev extras)",
)
def test_lowered_sample_assembles_with_a_cuda12_ptxas(cases) -> None:
    assert len(cases) > 20 and {c.action for c in cases} > {"", "ld_l2_256B", "vec_ld"}
    exe = bench.cuda12_ptxas()
    assert bench.assemble_failures(cases, bench.ARCHS, exe) == []


@pytest.mark.requires_ptxas
def test_lowering_changes_neither_sass_nor_outputs(cases) -> None:
    assert all(c.lowered != c.ptx for c in cases)  # 9.0 -> 7.x everywhere
    assert bench.sass_differences(cases) == []
    assert bench.emulator_differences(cases) == []
