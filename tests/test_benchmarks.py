"""Every script under benchmarks/ runs (issue 29, item 6): its `--smoke` mode here, or a tiny run
of its `main` in the test file named below, so a script that rots fails CI.

Each smoke run is a fresh process on this checkout; together they take well under a minute on
an idle 2-core machine. The full runs are what the scripts' docstrings show.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

SMOKE = {
    "action_effects": "| **mean over folds** (first) |",
    "assemble": "assemble_many",
    "budget": "| grpo |",
    "costmodel": "every figure is an ESTIMATE",
    "emulate": "emulated measurements per second",
    "emulate_sweep": "sequences over 2 kernels",
    "emulated_fingerprint": "total 4 states",
    "env_steps": "warm-all",
    "feature_ablation": "| ptx + hints (static) |",
    "features": "parse + features",
    "fuzz": "no property failed",
    "isa_lowering": '"assemble_failures": []',
    "physics": "## 6. Compute roofline",
    "measure": "3. repeatability",
    "sass_opcodes": "wrote",
    "scale": "same sequences and cycles in every configuration: yes",
    "search": "| gemm_tile_2_2_2 | exhaustive |",
    "stop_safety": "| BC, Q > 0 | 2 |",
    "structural": "gain >= 1% with a structural action",
    "transforms_coverage": "apply_action",
    "transforms_semantics": "0 failed",
}
"""Script -> a phrase its smoke run prints when it did its work."""

COVERED = {
    "fidelity": "tests/test_fidelity.py",  # needs a GPU store; main runs on synthetic ones
    "grpo_goals": "tests/test_grpo_goals.py",  # trains; main runs on a CI-sized run
}
"""Scripts whose `main` a test runs at a tiny size instead of a `--smoke` flag."""

SMOKE_TIMEOUT_S = 300


def test_every_benchmark_script_is_run_by_ci() -> None:
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")}  # _common
    assert scripts == set(SMOKE) | set(COVERED), (
        "a script under benchmarks/ needs a --smoke mode (add it to SMOKE) or a test running it "
        f"(COVERED): {sorted(scripts ^ (set(SMOKE) | set(COVERED)))}"
    )
    for test in COVERED.values():
        assert (ROOT / test).exists(), test


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.requires_ptxas
@pytest.mark.parametrize("script", sorted(SMOKE))
def test_benchmark_smoke(script: str) -> None:
    if script == "scale" and importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (the [ray] extra)")
    opcodes = ROOT / "chronos" / "assemble" / "opcodes.py"
    before = _digest(opcodes)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["RAY_AUTH_MODE"] = "disabled"
    proc = subprocess.run(
        [sys.executable, str(BENCH / f"{script}.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        cwd=ROOT,
        env=env,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert SMOKE[script] in proc.stdout, out[-3000:]
    assert _digest(opcodes) == before, "a smoke run must not rewrite the source tree"
