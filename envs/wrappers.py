"""Wrappers for PtxTransformEnv."""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

from envs.mdp import forbid_early_stop


class ForbidEarlyStop(gym.Wrapper[np.ndarray, np.int64, np.ndarray, np.int64]):
    """Mask out stop for the first `min_steps` steps of an episode.

    The design's fix for an always-stop policy (docs/design.md §6.1: "forced >= 2 steps before
    epoch 50"): the agent must try transforms before it may stop. Stop stays legal when no
    transform is, so an episode can always end. The mask is changed everywhere the agent sees
    it: `action_masks()`, `info["action_mask"]` and the mask block of the observation (choosing
    stop anyway is then a masked action for the policy, but the env itself still accepts it).
    """

    def __init__(self, env: gym.Env[np.ndarray, np.int64], min_steps: int = 2) -> None:
        super().__init__(env)
        self.min_steps = int(min_steps)
        self._steps = 0

    def _rule(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = self.env.unwrapped.action_masks()  # type: ignore[attr-defined]
        layout = self.env.unwrapped.layout  # type: ignore[attr-defined]
        return forbid_early_stop(obs, mask, self._steps, self.min_steps, layout)

    def _patch(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        obs, mask = self._rule(obs)
        info["action_mask"] = mask.astype(np.int8)
        return obs

    def action_masks(self) -> np.ndarray:
        layout = self.env.unwrapped.layout  # type: ignore[attr-defined]
        return self._rule(np.zeros(layout.obs_size, dtype=np.float32))[1]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._steps = 0
        return self._patch(obs, info), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._steps += 1
        return self._patch(obs, info), reward, terminated, truncated, info
