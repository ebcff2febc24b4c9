"""`python -m chronos.eval +exp=loko`: the pipeline with the LOKO stages (same configs as train)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from chronos.train import CONF_DIR


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from chronos.train import run, to_config

    tc = to_config(cfg)
    out = run(tc, tc.run_dir or HydraConfig.get().runtime.output_dir)
    if "report" in out:
        print(f"report: {out['report']}")


if __name__ == "__main__":
    main()
