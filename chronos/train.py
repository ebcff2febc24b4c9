"""`python -m chronos.train +exp=grpo`: greedy → BC → GRPO → eval → report (chronos.pipeline).

`python -m chronos.train --help` lists the config groups, options and common invocations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from agents.config import TrainConfig
from chronos import pipeline
from chronos.eval.stages import EVAL_STAGES
from chronos.pipeline import CONF_DIR, to_config

__all__ = ["main", "run", "to_config"]


def run(cfg: TrainConfig, run_dir: str | Path | None = None) -> dict[str, Any]:
    """The pipeline with the LOKO and report stages of chronos.eval."""
    return pipeline.run(cfg, run_dir, evals=EVAL_STAGES)


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    pipeline.cli(cfg, EVAL_STAGES, "chronos.train")


if __name__ == "__main__":
    main()
