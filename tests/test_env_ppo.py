"""examples/maskable_ppo.py trains MaskablePPO on the emulated backend and beats random play."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # ~7-9 min cold on 2 shared CPU cores: ~2,500 new states to emulate
    pytest.mark.requires_ptxas,
]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "maskable_ppo.py"


def test_maskable_ppo_improves_over_random(tmp_path: Path) -> None:
    pytest.importorskip("sb3_contrib")
    spec = importlib.util.spec_from_file_location("maskable_ppo_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--steps", "9000", "--store", str(tmp_path / "m.sqlite")])
    assert result["backend"] == "emulated" and result["estimate"] is True
    # One seed's greedy return is bimodal (0.13 to 0.43 over seeds and observation changes,
    # random 0.05; docs/env.md), so a margin on it tests the seed. Learning is asserted on the
    # sampling policy's returns over hundreds of training episodes instead: the last quarter's
    # mean exceeds the first quarter's by three standard errors; the greedy policy beats random.
    gain = result["train_return_last_quarter"] - result["train_return_first_quarter"]
    assert gain > 3 * result["train_return_gain_se"], result
    assert result["ppo_mean_return"] > result["random_masked_mean_return"], result
