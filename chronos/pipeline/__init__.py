"""The pipeline layer: configuration, stages, runner, command line and the entry points.

    config     the TrainConfig schema (values in conf/), `to_config`, `config_hash`
    stages     greedy data set → BC → GRPO → eval over one `Context`
    runner     `run`: the stages of a config in order
    cli        the Hydra entry body: run dir choice, resume, status, signals
    train      `python -m chronos.train`
    eval       `python -m chronos.eval`: LOKO / LOFO, the run report, sweep summaries
    optimize   `python -m chronos.optimize`: one kernel, one search
    validate   `python -m chronos.validate`: the GPU validation run

Imports point down (pipeline → agents → envs → library → kernels); no library package imports
this one (chronos/layers.py, tests/test_layering.py). The modules `chronos.train`,
`chronos.eval`, `chronos.optimize` and `chronos.validate` are thin `python -m` shims over these.
"""
