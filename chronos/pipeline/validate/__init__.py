"""`python -m chronos.validate`: validate Chronos on a GPU in one command, and keep the data.

GPU time comes in short windows, so this is one prepared process tree that cannot waste one:

    python -m chronos.validate --out DIR [--budget-s 420] [--dry-run]

Steps, in order (each saves its results before the next starts; docs/gpu-validation.md says
what each one checks):

1. `environment`: Python, NumPy, CuPy, driver, CUDA runtime and ptxas versions, the device, its
   SM clock, compute mode and the other processes on the GPU (nvidia-smi). It stops at once
   (exit 2) unless the `cupy` backend is usable: `auto` falling back to `emulated` is an error
   here, with its reason.
2. `pytest_gpu`: `pytest -m gpu` with CHRONOS_REQUIRE_GPU=1 (a skip would be an error).
3. `latency`: per-measurement split (assemble / load / verify / time) and store-hit latency.
4. `repeatability`: the median cycles of a few kernels in at least 5 fresh processes, their
   coefficient of variation, CUDA-event time beside the %clock64 cycles, throttled samples.
5. `sanity`: maxnreg_128, vec_ld, vec_st and the design's sequence on a few gemm_tile kernels,
   next to the design's L4 figures.
6. `greedy`: greedy on all 64 gemm_tile kernels and a sample of every other family, every
   measurement recorded into the replay store DIR/data/replay/<device>.sqlite.
7. `fidelity`: the cost model's fidelity check (chronos.pipeline.validate.fidelity, also
   `python benchmarks/fidelity.py`) on that store (CPU work: it gets at most a minute here; the
   same command reruns on any machine from the committed store).

Everything lands under DIR: gpu-validation.json (every figure), docs/gpu-validation.md (the
page, generated from the JSON), data/replay/<device>.sqlite, logs. Copy DIR/docs and DIR/data
into the repository to publish a run. The run stops cleanly at `--budget-s`: a step that does
not fit is skipped (and says so), greedy stops between kernels, and what was measured is saved.

`--dry-run` runs the same steps on CPU: the real cupy backend and GPU harness, with CuPy
replaced by chronos.measure.harness.fake_cupy (launches run in the emulator; "small" problems, few
repeats and sampled kernels). Its figures are the emulator's and are labelled so; CI runs it.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from chronos.pipeline.validate.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REFUSED,
    PAGE,
    RESULTS_JSON,
    STEPS,
    Budget,
    OutOfBudget,
    Refused,
    ValidateConfig,
)
from chronos.pipeline.validate.steps import STEP_FUNCTIONS, child_repeat
from chronos.progress import Progress

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_REFUSED",
    "STEPS",
    "Budget",
    "ValidateConfig",
    "main",
    "run",
    "save",
]

log = logging.getLogger("chronos.validate")


def save(cfg: ValidateConfig, results: dict[str, Any]) -> None:
    """Write the JSON and the page generated from it (after every step)."""
    from chronos.pipeline.validate.report import render_page

    cfg.out.mkdir(parents=True, exist_ok=True)
    tmp = cfg.out / (RESULTS_JSON + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str))
    tmp.replace(cfg.out / RESULTS_JSON)
    page = cfg.out / PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_page(results))
    # Beside the page too: `cp -r OUT/docs OUT/data .` publishes the page with its data.
    (page.parent / RESULTS_JSON).write_text((cfg.out / RESULTS_JSON).read_text())


def run(cfg: ValidateConfig) -> tuple[int, dict[str, Any]]:
    """Every step of cfg.steps in order; returns (exit status, results)."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    budget = Budget(cfg.budget_s, cfg.reserve_s)
    results: dict[str, Any] = {
        "dry_run": cfg.dry_run,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": " ".join(["python -m chronos.validate", *sys.argv[1:]]),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "steps": {},
        "results": {},
    }
    state: dict[str, Any] = {"results": results["results"]}

    def stop(signum: int, _frame: Any) -> None:
        budget.stopped = f"signal {signum}"
        raise OutOfBudget(budget.stopped)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    status = EXIT_OK
    bar = Progress("validate", unit="step", total=len(cfg.steps))
    try:
        for name in cfg.steps:
            t0 = time.monotonic()
            entry: dict[str, Any] = {"status": "ok"}
            log.warning("chronos.validate: %s (%.0f s left)", name, budget.left())
            try:
                res = results["results"][name] = STEP_FUNCTIONS[name](cfg, budget, state)
                if res.get("skipped"):
                    entry = {"status": "skipped", "error": res["skipped"]}
            except Refused as exc:
                entry = {"status": "refused", "error": str(exc)}
                status = EXIT_REFUSED
            except OutOfBudget as exc:
                entry = {"status": "skipped", "error": f"out of budget: {exc}"}
                if "partial" in state:
                    results["results"][name] = {**state.pop("partial"), "stopped": str(exc)}
            except Exception as exc:  # noqa: BLE001 - a failed step is reported, the run goes on
                entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                entry["traceback"] = traceback.format_exc(limit=6)
                status = max(status, EXIT_FAILED)
            state.pop("partial", None)
            entry["seconds"] = round(time.monotonic() - t0, 1)
            results["steps"][name] = entry
            if name == "pytest_gpu" and entry["status"] == "ok":
                if not results["results"][name]["ok"]:
                    status = max(status, EXIT_FAILED)
            results["elapsed_s"] = round(budget.elapsed(), 1)
            save(cfg, results)
            bar.update(1, **{name: entry["status"]})
            if status == EXIT_REFUSED:
                break
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        bar.close(f"exit {status}")
    results["elapsed_s"] = round(budget.elapsed(), 1)
    results["exit_status"] = status
    save(cfg, results)
    return status, results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chronos.validate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--out", type=Path, default=Path("gpu-validation-out"), help="output folder"
    )
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop cleanly after this")
    parser.add_argument(
        "--dry-run", action="store_true", help="CPU only: fake CuPy on the emulator"
    )
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of steps")
    parser.add_argument("--jobs", type=int, default=None, help="ptxas threads (default: CPUs)")
    parser.add_argument(
        "--gemm-kernels", type=int, default=None, help="gemm_tile kernels for greedy"
    )
    parser.add_argument(
        "--per-family", type=int, default=None, help="greedy kernels per other family"
    )
    parser.add_argument("--child-repeat", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-repeats", type=int, default=200, help=argparse.SUPPRESS)
    parser.add_argument("--child-warmup", type=int, default=20, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.child_repeat:
        return child_repeat(args.child_repeat, args.dry_run, args.child_repeats, args.child_warmup)
    steps = tuple(s.strip() for s in args.steps.split(",") if s.strip())
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        parser.error(f"unknown steps {unknown}; steps are {', '.join(STEPS)}")
    cfg = ValidateConfig.for_mode(
        args.out, args.budget_s, args.dry_run, jobs=args.jobs, steps=steps,
        gemm_kernels=args.gemm_kernels, per_family=args.per_family,
    )  # fmt: skip
    status, results = run(cfg)
    for name, entry in results["steps"].items():
        print(
            f"{name:14s} {entry['status']:8s} {entry['seconds']:6.1f} s  {entry.get('error') or ''}"
        )
    print(f"results: {cfg.out / RESULTS_JSON}; page: {cfg.out / PAGE}; exit {status}")
    return status
