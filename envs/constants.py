"""The design's MDP constants (docs/design.md §3), defined once.

`TransformMDP`, `PtxTransformEnv`, the rewards (envs.reward), the pipeline's `EnvConfig` and
`python -m chronos.optimize --max-steps` take their defaults from here; the `env:` block of
conf/config.yaml must hold the same values (tests/test_config_defaults.py checks it).
"""

MAX_STEPS = 6
"""Transforms per episode before it is cut (truncated)."""
STEP_COST = 0.005
"""Reward charged per step taken (stop and no-op transforms included)."""
INVALID_PENALTY = -1.0
"""Reward of a step that breaks the kernel (it ends the episode)."""
