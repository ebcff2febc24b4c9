"""Gymnasium environments for Chronos; importing this package registers them.

    import gymnasium as gym
    import envs  # noqa: F401  (registers Chronos/PtxTransform-v0)
    env = gym.make("Chronos/PtxTransform-v0", kernels="gemm_tile_4_6_8", backend="emulated")

`gym.make("envs:Chronos/PtxTransform-v0", ...)` imports the package itself. See docs/env.md.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_ID = "Chronos/PtxTransform-v0"

if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="envs.ptx_env:PtxTransformEnv",
        # Hardware timing: the same state can measure differently from one step to the next.
        nondeterministic=True,
        # The env truncates at its own max_steps (6); no TimeLimit wrapper on top.
        max_episode_steps=None,
    )


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """Import the env lazily so that `import envs` stays cheap (no torch, no SQLite)."""
    if name == "PtxTransformEnv":
        from envs.ptx_env import PtxTransformEnv

        return PtxTransformEnv
    if name in ("SharedMeasurementService", "SharedBackendClient"):
        from envs import shared_backend

        return getattr(shared_backend, name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["ENV_ID", "PtxTransformEnv", "SharedBackendClient", "SharedMeasurementService"]
