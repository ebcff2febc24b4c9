"""Evaluation: leave-one-kernel-out (`python -m chronos.eval +exp=loko`) and run reports.

`main` is the entry point: the pipeline with the LOKO stages (the same configs as train).
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from chronos.pipeline.config import CONF_DIR


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    from chronos.pipeline.cli import cli
    from chronos.pipeline.eval.stages import EVAL_STAGES

    cli(cfg, EVAL_STAGES, "chronos.eval")
