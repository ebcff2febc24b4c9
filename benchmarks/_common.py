"""What several benchmark scripts print (not a script: `python benchmarks/<script>.py` finds it
beside itself)."""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path
from typing import Any


def machine() -> str:
    """The CPU model, CPU count and Python version the figures were taken on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def add_study_args(p: argparse.ArgumentParser, out: Path) -> None:
    """The options of a LOKO/LOFO study script (feature_ablation, stop_safety)."""
    p.add_argument("--group", choices=("family", "kernel"), default="family")
    p.add_argument("--kernels", default="small", help="kernel set (conf/kernels): small, all")
    p.add_argument("--backend", default="emulated")
    p.add_argument("--store", default=None, help="measurement store (default: the default)")
    p.add_argument("--out", type=Path, default=out, help="run dir (json, md)")
    p.add_argument("--override", action="append", default=[], help="a Hydra override")


def study_context(args: argparse.Namespace) -> Any:
    """The pipeline Context of a study script: `+exp=lofo` or `+exp=loko` with its options; a
    smoke run uses the CI kernels and keeps greedy's data inside its own run dir."""
    from hydra import compose, initialize_config_dir

    from chronos.pipeline.config import CONF_DIR, to_config
    from chronos.pipeline.stages import open_context

    exp = "+exp=lofo" if args.group == "family" else "+exp=loko"
    overrides = [exp, f"backend={args.backend}", "progress=false"]
    overrides += ["kernels=ci"] if args.smoke else [f"kernels={args.kernels}"]
    if args.store:
        overrides.append(f"backend.store={args.store}")
    if args.smoke:  # nothing outside its own run dir
        overrides.append(f"greedy.dataset_dir={args.out.resolve() / 'greedy_cache'}")
    overrides += args.override
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = to_config(compose("config", overrides=overrides))
    return open_context(cfg, args.out.resolve())
