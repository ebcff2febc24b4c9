"""Sweep summary: mean and spread over a `--multirun`'s jobs of each success-criteria metric.

A Hydra callback (`hydra.callbacks.sweep_summary` in conf/config.yaml) writes
`sweep_summary.md` and `sweep_summary.json` into the multirun dir when the sweep ends; it reads
only the jobs' run dirs, so `python -m chronos.pipeline.eval.sweep <multirun dir>` rebuilds it.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from chronos.fmt import backend_label, speedup
from chronos.pipeline.eval.report import loko_best_accuracy

# (key, label, reader, kind): kind "speedup" values are final/base - 1, "rate" are shares.
Metric = tuple[str, str, Callable[[dict[str, Any]], float | None], str]


def _get(*keys: str) -> Callable[[dict[str, Any]], float | None]:
    def read(job: dict[str, Any]) -> float | None:
        v: Any = job
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return None if v is None else float(v)

    return read


def _loko(job: dict[str, Any]) -> float | None:
    best = loko_best_accuracy(job.get("loko") or {})
    return None if best is None else best[1]


def _minutes(job: dict[str, Any]) -> float | None:
    times = job.get("stage_times") or {}
    return sum(times.get(k, 0.0) for k in ("greedy", "bc", "grpo")) / 60 if times else None


METRICS: list[Metric] = [
    (
        "greedy_mean_improvement",
        "Mean speed-up, greedy v2",
        _get("greedy_mean_improvement"),
        "speedup",
    ),
    (
        "grpo_mean_improvement",
        "Mean speed-up, GRPO argmax (guarded)",
        _get("grpo_mean_improvement"),
        "speedup",
    ),
    (
        "first_action_accuracy",
        "First-action accuracy (GRPO)",
        _get("first_action_accuracy", "grpo"),
        "rate",
    ),
    ("loko_accuracy", "LOKO accuracy (best learner)", _loko, "rate"),
    ("novel_sequences", "Novel sequences greedy missed", _get("n_novel"), "count"),
    ("training_minutes", "Training time (greedy + BC + GRPO), min", _minutes, "count"),
]


def _fmt(value: float, kind: str) -> str:
    if kind == "speedup":
        return speedup(value)
    return f"{value:.1%}" if kind == "rate" else f"{value:.1f}"


def _spread(sd: float, kind: str) -> str:
    return f"{sd * 100:.1f} pp" if kind in ("speedup", "rate") else f"{sd:.1f}"


def read_job(run_dir: Path) -> dict[str, Any] | None:
    """A job's eval summary plus its LOKO result and stage times (None if it has no summary)."""
    path = run_dir / "eval" / "summary.json"
    if not path.exists():
        return None
    job = json.loads(path.read_text())
    loko = run_dir / "loko" / "loko.json"
    job["loko"] = json.loads(loko.read_text()) if loko.exists() else job.get("loko", {})
    times = run_dir / "stage_times.json"
    job["stage_times"] = json.loads(times.read_text()) if times.exists() else {}
    job["n_novel"] = len(job.get("novel_sequences", []))
    job["run_dir"] = str(run_dir)
    return job


def summarize(jobs: list[dict[str, Any]]) -> dict[str, dict[str, float | int | str]]:
    """Per metric: n runs, mean, sample standard deviation, min, max (NaNs skipped)."""
    out: dict[str, dict[str, float | int | str]] = {}
    for key, label, read, kind in METRICS:
        vals = [v for v in (read(j) for j in jobs) if v is not None and not math.isnan(v)]
        if not vals:
            continue
        out[key] = {
            "label": label,
            "kind": kind,
            "n": len(vals),
            "mean": statistics.fmean(vals),
            "sd": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals),
            "max": max(vals),
        }
    return out


def write_sweep_summary(sweep_dir: str | Path) -> Path | None:
    """sweep_summary.{md,json} in `sweep_dir` over its job dirs; None when no job finished."""
    sdir = Path(sweep_dir)
    jobs = [j for d in sorted(p for p in sdir.iterdir() if p.is_dir()) if (j := read_job(d))]
    if not jobs:
        return None
    stats = summarize(jobs)
    labels = sorted({backend_label(j.get("backend", "?"), j.get("device", "")) for j in jobs})
    lines = [
        f"# Sweep summary: {len(jobs)} runs",
        "",
        f"- Backend: **{'; '.join(labels)}**",
        f"- Runs: {', '.join(Path(j['run_dir']).name for j in jobs)} (under {sdir})",
        "",
        "Speed-up is base/final cycles (above 1x is faster); spread is the sample standard"
        " deviation over runs, in percentage points of cycles or of the rate.",
        "",
        "| metric | runs | mean | spread (sd) | min | max |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in stats.values():
        kind = str(s["kind"])
        lo, hi = float(s["min"]), float(s["max"])
        if kind == "speedup":  # the fastest run has the lowest final/base - 1
            lo, hi = hi, lo
        lines.append(
            f"| {s['label']} | {s['n']} | {_fmt(float(s['mean']), kind)} "
            f"| {_spread(float(s['sd']), kind)} | {_fmt(lo, kind)} | {_fmt(hi, kind)} |"
        )
    (sdir / "sweep_summary.json").write_text(
        json.dumps({"runs": [j["run_dir"] for j in jobs], "metrics": stats}, indent=2)
    )
    out = sdir / "sweep_summary.md"
    out.write_text("\n".join(lines) + "\n")
    return out


class SweepSummary(Callback):
    """Hydra callback: the sweep summary when a `--multirun` ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        out = write_sweep_summary(config.hydra.sweep.dir)
        if out is not None:
            print(f"sweep summary: {out}")


if __name__ == "__main__":
    print(write_sweep_summary(sys.argv[1] if len(sys.argv) > 1 else "."))
