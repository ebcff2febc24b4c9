"""The pipeline both entry points run: greedy → BC → GRPO → eval → LOKO → report.

`python -m chronos.train` and `python -m chronos.eval` are thin Hydra entries over
`chronos.pipeline.cli.cli`, which calls `run`. Each stage (chronos.pipeline.stages) writes into
the run dir and is skipped when its output is already there, so re-running the same command
resumes an interrupted run: the greedy data set is reused from its cache, `bc.pt` is reloaded,
GRPO continues after the last checkpointed epoch, and the trajectory log keeps every row it
ever got. LOKO and the report (chronos.pipeline.eval) are passed in as `EvalStages`. See
docs/training.md.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.bc import BCData
from agents.policy import PolicyMLP
from chronos.pipeline.config import TrainConfig
from chronos.pipeline.stages import (
    EvalStages,
    open_context,
    stage_bc,
    stage_eval,
    stage_greedy,
    stage_grpo,
)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run(
    cfg: TrainConfig, run_dir: str | Path | None = None, *, evals: EvalStages
) -> dict[str, Any]:
    """The pipeline over `cfg.stages`; returns the eval summary (or what ran)."""
    seed_everything(cfg.seed)
    torch.set_num_threads(max(cfg.torch_threads, 1))
    rdir = Path(run_dir or cfg.run_dir or os.getcwd()).resolve()
    ctx = open_context(cfg, rdir)
    timing_path = rdir / "stage_times.json"
    if timing_path.exists():
        ctx.times.update(json.loads(timing_path.read_text()))
    out: dict[str, Any] = {"run_dir": str(rdir)}
    bc_policy: PolicyMLP | None = None
    bc_metrics: dict[str, float] = {}
    grpo_state: Any = None
    data: BCData | None = None
    greedy: dict[str, Any] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            ctx.times[name] = ctx.times.get(name, 0.0) + time.perf_counter() - t0
            timing_path.write_text(json.dumps(ctx.times, indent=2))

    try:
        if {"greedy", "bc", "grpo", "eval", "loko"} & set(cfg.stages):
            data, greedy = timed("greedy", stage_greedy, ctx)
            out["greedy"] = greedy
        if {"bc", "grpo", "eval"} & set(cfg.stages):
            assert data is not None
            bc_policy, bc_metrics = timed("bc", stage_bc, ctx, data)
            out["bc"] = bc_metrics
        if "grpo" in cfg.stages:
            assert bc_policy is not None and data is not None
            _, grpo_state = timed("grpo", stage_grpo, ctx, bc_policy, data, greedy)
        if "eval" in cfg.stages:
            assert data is not None and bc_policy is not None
            out["eval"] = timed(
                "eval", stage_eval, ctx, data, greedy, bc_policy, bc_metrics, grpo_state, evals
            )
        if "loko" in cfg.stages:
            assert data is not None
            out["loko"] = timed("loko", evals.run_loko, ctx, data)
        if "report" in cfg.stages:
            out["report"] = str(evals.write_report(rdir))
    finally:
        ctx.mdp.backend.close()
    return out
