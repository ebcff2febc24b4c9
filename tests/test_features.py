"""Features: 25 documented floats that respond to the PTX changes the transforms make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chronos.features import FEATURE_NAMES, FEATURES, N_FEATURES, extract, feature_table
from chronos.ptx import parse

DATA = Path(__file__).parent / "data"


TRITON = (DATA / "triton_add.ptx").read_text()
NVCC = (DATA / "nvcc_printf_launch_bounds.ptx").read_text()


def feature(vec: np.ndarray, name: str) -> float:
    return float(vec[FEATURE_NAMES.index(name)])


def test_shape_names_and_docs() -> None:
    assert N_FEATURES == 59 == len(set(FEATURE_NAMES))
    assert all(f.doc for f in FEATURES)
    table = feature_table()
    assert all(f"`{name}`" in table for name in FEATURE_NAMES)
    vec = extract(TRITON)
    assert vec.dtype == np.float32 and vec.shape == (N_FEATURES,)
    assert np.all(np.isfinite(vec))


def test_values_on_triton_kernel() -> None:
    vec = extract(TRITON)
    n = 17  # instructions in the add_kernel body
    assert feature(vec, "log_instructions") == pytest.approx(np.log1p(n))
    assert feature(vec, "global_load_frac") == pytest.approx(1 / n)
    assert feature(vec, "global_load_width") == pytest.approx(1.0)  # one v4 load
    assert feature(vec, "global_store_width") == pytest.approx(0.5)  # one v2 store
    assert feature(vec, "launch_bounds") == pytest.approx(1.0)  # .reqntid
    assert feature(vec, "maxnreg") == 0.0
    assert feature(vec, "ptxas_registers") == -1.0 and feature(vec, "ptxas_spill_bytes") == -1.0


def test_loops_branches_and_launch_bounds_on_nvcc_output() -> None:
    vadd = extract(NVCC, entry="vadd")
    assert feature(vadd, "log_loops") > 0 and 0 < feature(vadd, "loop_body_frac") < 1
    assert feature(vadd, "log_branches") > 0
    f2 = extract(NVCC, entry="_Z2f2Pf")
    assert feature(f2, "launch_bounds") == pytest.approx(1 + 2 / 16)  # .maxntid + minnctapersm 2
    assert feature(f2, "log_loops") == 0


def test_ptxas_figures_are_passed_through() -> None:
    vec = extract(TRITON, registers=51, spill_bytes=0)
    assert feature(vec, "ptxas_registers") == pytest.approx(51 / 255)
    assert feature(vec, "ptxas_spill_bytes") == 0.0


def test_features_respond_to_cache_hints_and_maxnreg() -> None:
    module = parse(TRITON)
    ins = module.entry().instructions()
    load = [i for i in ins if i.opcode == "ld" and i.space == ".global"][0]
    hinted = module.edit().replace(load, load.text.replace("ld.global.", "ld.global.nc.")).apply()
    assert feature(extract(hinted), "load_cache_hint_frac") == 1.0
    capped = TRITON.replace(".reqntid 128, 1, 1", ".reqntid 128, 1, 1\n.maxnreg 128")
    assert feature(extract(capped), "maxnreg") == pytest.approx(128 / 255)


def test_module_and_text_give_the_same_vector() -> None:
    np.testing.assert_array_equal(extract(TRITON), extract(parse(TRITON)))


@pytest.mark.requires_ptxas
def test_cli_prints_ptxas_figures_and_features(tmp_path: Path, capsys) -> None:
    from chronos.assemble import assemble
    from chronos.features.__main__ import main
    from kernels import load

    out_csv = tmp_path / "features.csv"
    kernels = ["gemm_tile_2_2_2", "gemm_tile_8_8_4"]
    assert main([*kernels, "--arch", "sm_80,sm_90", "--csv", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "2 kernels; round trip + ptxas failures: 0" in printed
    # the feature table's columns are named, not f0..f24
    assert ["kernel", *FEATURE_NAMES] in [line.split() for line in printed.splitlines()]
    rows = out_csv.read_text().splitlines()
    header = rows[0].split(",")
    assert header[:3] == ["kernel", "roundtrip", "sm_80_regs"]
    assert len(header) == 2 + 8 + N_FEATURES
    spec = load("gemm_tile_8_8_4")
    row = dict(zip(header, rows[2].split(","), strict=True))
    regs = assemble(spec.ptx(), "sm_90").resources[spec.entry].registers
    assert int(row["sm_90_regs"]) == regs
    assert float(row["ptxas_registers"]) == pytest.approx(int(row["sm_80_regs"]) / 255.0, abs=1e-3)


def test_cli_table_lists_every_feature(capsys) -> None:
    from chronos.features.__main__ import main

    assert main(["--table"]) == 0
    printed = capsys.readouterr().out
    assert all(name in printed for name in FEATURE_NAMES)
