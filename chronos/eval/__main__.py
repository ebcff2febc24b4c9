"""`python -m chronos.eval +exp=loko`: the pipeline with the LOKO stages (same configs as train)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from chronos import pipeline
from chronos.eval.stages import EVAL_STAGES
from chronos.pipeline import CONF_DIR


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    pipeline.cli(cfg, EVAL_STAGES, "chronos.eval")


if __name__ == "__main__":
    main()
