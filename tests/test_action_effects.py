"""benchmarks/action_effects.py's two pieces of arithmetic: the roofline estimate of what a
transform's static effect is worth, and the share of the best gain a top-k contains."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chronos.features import FEATURE_NAMES, N_FEATURES
from tests.helpers.scripts import load_script


@pytest.fixture(scope="module")
def effects():  # type: ignore[no-untyped-def]
    return load_script("benchmarks/action_effects.py", "action_effects_script")


def _state(effects, instructions: float, load_frac: float, **shares: float):  # type: ignore[no-untyped-def]
    obs = np.zeros((1, N_FEATURES), np.float32)
    for bound, v in shares.items():
        obs[0, FEATURE_NAMES.index(f"{bound}_share")] = v
    static = np.zeros((1, len(effects.STATIC_NAMES)), np.float32)
    static[0, effects.STATIC_NAMES.index("log_instructions")] = math.log1p(instructions)
    static[0, effects.STATIC_NAMES.index("global_load_frac")] = load_frac
    return obs, static


def _effect(effects, static, instructions: float, load_frac: float):  # type: ignore[no-untyped-def]
    child = static.copy()
    child[0, effects.STATIC_NAMES.index("log_instructions")] = math.log1p(instructions)
    child[0, effects.STATIC_NAMES.index("global_load_frac")] = load_frac
    return child - static


def test_the_roofline_estimate_follows_the_binding_bound(effects) -> None:  # type: ignore[no-untyped-def]
    # 100 instructions, 40 of them loads; merging loads in pairs leaves 80 with 20 loads
    obs, static = _state(effects, 100, 0.4, lsu=1.0, issue=0.5, dram=0.3)
    merge = _effect(effects, static, 80, 0.25)
    # LSU work halves (1.0 -> 0.5), issue falls by a fifth (0.5 -> 0.4): bound 1.0 -> 0.5
    assert effects.relief(obs, static, merge)[0] == pytest.approx(math.log(2.0), rel=1e-5)
    nothing = np.zeros_like(static)
    assert effects.relief(obs, static, nothing)[0] == pytest.approx(0.0, abs=1e-6)
    # the same merge on a DRAM-bound kernel: the LSU bound was not the one that counted
    obs_dram, _ = _state(effects, 100, 0.4, lsu=0.6, issue=0.5, dram=1.0)
    assert effects.relief(obs_dram, static, merge)[0] == pytest.approx(0.0, abs=1e-6)
    # unknown shares (-1, a cupy measurement) estimate nothing
    obs_unknown, _ = _state(effects, 100, 0.4, lsu=-1.0, issue=-1.0, dram=-1.0)
    assert effects.relief(obs_unknown, static, merge)[0] == 0.0


def test_capture_counts_the_best_gain_inside_the_top_k(effects) -> None:  # type: ignore[no-untyped-def]
    nan = np.nan
    # 3 transforms + stop; row 2's best child gains less than the step cost: not counted
    target = np.array([[0.30, 0.10, -1.0, nan], [0.02, 0.20, nan, nan], [0.001, 0.0, 0.0, nan]])
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 1], [1, 1, 1, 1]], dtype=bool)
    pred = np.array([[0.0, 0.5, 0.4], [0.3, 0.1, 9.0], [0.1, 0.2, 0.3]])
    # top 1: row 0 takes transform 1 (0.10 of 0.30); row 1 transform 0 (0.02 of 0.20; 2 is illegal)
    got, best, n = effects.captured(target, mask, pred, 1, 0.005)
    assert n == 2 and best == pytest.approx(0.5) and got == pytest.approx(0.12)
    # top 2 reaches row 1's best; row 0's top 2 (transforms 1, 2) still misses transform 0
    got, best, n = effects.captured(target, mask, pred, 2, 0.005)
    assert got == pytest.approx(0.30)
