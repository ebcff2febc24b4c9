"""examples/maskable_ppo.py trains MaskablePPO on the emulated backend and beats random play."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # ~5-6 min cold on 2 CPU cores: ~2,500 new states to emulate
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
    assert result["ppo_mean_return"] > result["random_masked_mean_return"] + 0.1
