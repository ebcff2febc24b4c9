"""What several benchmark scripts print (not a script: `python benchmarks/<script>.py` finds it
beside itself)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
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
    """The options of a LOKO/LOFO study script (feature_ablation, stop_safety, action_effects)."""
    p.add_argument("--group", choices=("family", "kernel"), default="family")
    p.add_argument("--kernels", default="small", help="kernel set (conf/kernels): small, all")
    p.add_argument("--backend", default="emulated")
    p.add_argument("--store", default=None, help="measurement store (default: the default)")
    p.add_argument("--out", type=Path, default=out, help="run dir (json, md)")
    p.add_argument("--override", action="append", default=[], help="a Hydra override")


def smoke_defaults(args: argparse.Namespace, default_out: Path, name: str) -> None:
    """What a study's `--smoke` (CI) means: leave one kernel out (`study_context` picks the 2
    CI kernels), no measurement store unless one is given, a fresh run dir unless --out is."""
    args.group, args.store = "kernel", args.store or "null"
    if args.out == default_out:
        args.out = Path(tempfile.mkdtemp(prefix=f"{name}_smoke_"))


def write_study(out: Path, stem: str, lines: list[str], payload: dict[str, Any]) -> None:
    """Print a study's markdown and save it and its JSON as `<out>/<stem>.md` and `.json`
    (an object JSON has no type for is written as its `str`)."""
    print("\n".join(lines))
    out = out.resolve()
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=2, default=str))
    print(f"wrote {out / stem}.md and {stem}.json")


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
