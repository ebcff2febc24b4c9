"""What every step of `python -m chronos.validate` shares: its config, budget and constants."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
STEPS = ("environment", "pytest_gpu", "latency", "repeatability", "sanity", "greedy", "fidelity")
RESULTS_JSON = "gpu-validation.json"
PAGE = Path("docs") / "gpu-validation.md"
REPLAY_DIR = Path("data") / "replay"
FIDELITY_SCRIPT = ROOT / "benchmarks" / "fidelity.py"
REQUIRE_GPU = "CHRONOS_REQUIRE_GPU"
CV_TARGET = 0.005
"""The repeatability goal: CV of the median over fresh processes <= 0.5%."""
DESIGN_KERNEL = "gemm_tile_4_6_8"
DESIGN_SEQUENCE = ("maxnreg_128", "vec_ld", "vec_st", "reorder_cp")
DESIGN_L4_CYCLES = (1829.0, 1103.0, 909.0, 841.0, 835.0)
"""docs/design.md §3.1: gemm_tile_4_6_8 on an L4, baseline then after each transform."""
SANITY_TRANSFORMS = ("maxnreg_128", "vec_ld", "vec_st")
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


class Refused(RuntimeError):
    """The run must not go on (no usable GPU backend): exit 2 with the reason."""


class OutOfBudget(RuntimeError):
    """The time budget is spent (or the run was told to stop)."""


@dataclass
class ValidateConfig:
    """What one run does; `for_mode` fills the device or dry-run defaults."""

    out: Path
    budget_s: float = 420.0
    dry_run: bool = False
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    repeats: int = 200
    warmup: int = 20
    greedy_repeats: int = 30
    greedy_warmup: int = 3
    greedy_max_steps: int = 4
    gemm_kernels: int = 64
    per_family: int = 2
    processes: int = 5
    repeat_kernels: tuple[str, ...] = ("gemm_tile_4_4_4", "gemm_tile_8_8_8", "gemm_tile_2_2_2")
    sanity_kernels: tuple[str, ...] = (DESIGN_KERNEL, "gemm_tile_4_4_4", "gemm_tile_8_8_8")
    latency_kernels: int = 4
    pytest_timeout_s: float = 150.0
    fidelity_depth: int = 1
    fidelity_timeout_s: float = 60.0
    steps: tuple[str, ...] = STEPS
    reserve_s: float = 10.0

    @classmethod
    def for_mode(cls, out: Path, budget_s: float, dry_run: bool, **overrides: Any) -> Any:
        base: dict[str, Any] = {}
        if dry_run:
            base = {
                "repeats": 3,
                "warmup": 1,
                "greedy_repeats": 2,
                "greedy_warmup": 0,
                "greedy_max_steps": 1,
                "gemm_kernels": 1,
                "per_family": 0,
                "repeat_kernels": ("gemm_tile_2_2_2",),
                "sanity_kernels": ("gemm_tile_2_2_2",),
                "latency_kernels": 1,
                "pytest_timeout_s": 60.0,
                "reserve_s": 3.0,
            }
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(out=Path(out), budget_s=float(budget_s), dry_run=dry_run, **base)


class Budget:
    """Wall-clock budget of the run; steps ask before starting what they cannot finish."""

    def __init__(self, seconds: float, reserve_s: float):
        self.t0 = time.monotonic()
        self.seconds = float(seconds)
        self.reserve_s = float(reserve_s)
        self.stopped: str | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        """Seconds left for work (the reserve for saving is kept back)."""
        return self.seconds - self.reserve_s - self.elapsed()

    def check(self, need_s: float = 0.0) -> None:
        if self.stopped:
            raise OutOfBudget(self.stopped)
        if self.left() < need_s:
            raise OutOfBudget(f"{self.left():.0f} s left of the budget, {need_s:.0f} s needed")


# --- backends ---------------------------------------------------------------------------------


def cupy_options(cfg: ValidateConfig, repeats: int, warmup: int) -> dict[str, Any]:
    """make_backend("cupy", ...) options of this run (the fake CuPy in a dry run)."""
    opts: dict[str, Any] = {"repeats": repeats, "warmup": warmup, "assemble_workers": cfg.jobs}
    if cfg.dry_run:
        from chronos.measure.harness import fake_cupy

        # The fake runs each cubin as the PTX it came from, in the emulator: small problems.
        opts.update(worker_target=fake_cupy.TARGET, problem="small", timeout_s=120)
    return opts


def device_slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200' (the replay store's file name)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


# --- steps ------------------------------------------------------------------------------------
