"""`python -m chronos.train +exp=grpo`: greedy → BC → GRPO → eval → report.

`python -m chronos.train --help` lists the config groups, options and common invocations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from chronos.pipeline import runner
from chronos.pipeline.cli import cli
from chronos.pipeline.config import CONF_DIR, TrainConfig, to_config
from chronos.pipeline.eval.stages import EVAL_STAGES

__all__ = ["main", "run", "to_config"]


def run(cfg: TrainConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """The pipeline with the LOKO and report stages of chronos.pipeline.eval."""
    return runner.run(cfg, run_dir, evals=EVAL_STAGES)


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    cli(cfg, EVAL_STAGES, "chronos.train")
