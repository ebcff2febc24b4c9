"""PtxTransformEnv on the real transform catalogue and the emulated backend (ptxas + CPU)."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs
from envs.ptx_env import N_ACTIONS, OBS_SIZE, STOP, PtxTransformEnv
from envs.shared_backend import SharedMeasurementService

pytestmark = pytest.mark.requires_ptxas

# Small tiles: the emulator measures them in ~0.05 s, and the in-memory store makes repeats free.
SMALL = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2"]


@pytest.fixture(scope="module")
def backend(emulated_backend):  # type: ignore[no-untyped-def]
    return emulated_backend


def test_checkers_on_emulated(backend) -> None:  # type: ignore[no-untyped-def]
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A backend name, not the shared instance: the render check re-makes the env from its
        # EnvSpec, which deep-copies the kwargs (a live SQLite-backed backend cannot be copied).
        env = gym.make(envs.ENV_ID, kernels=SMALL[:1], backend="emulated", render_mode="ansi")
        gym_check(env.unwrapped, skip_render_check=False)
        env.close()
    sb3_check(PtxTransformEnv(kernels=SMALL, backend=backend), warn=True)


def test_design_sequence_rewards_telescope(backend) -> None:  # type: ignore[no-untyped-def]
    """The design's best sequence on its example kernel: rewards sum to log(c0/cT) - 0.005 n."""
    env = PtxTransformEnv(kernels="gemm_tile_4_6_8", backend=backend, render_mode="ansi")
    _, info = env.reset(seed=0)
    assert info["backend"] == "emulated" and info["estimate"] is True
    c0, total, n = info["cycles_before"], 0.0, 0
    for name in ["maxnreg_128", "vec_ld", "vec_st", "reorder_cp"]:
        a = env.action_names.index(name)
        if not env.action_masks()[a]:
            continue
        _, r, term, _, info = env.step(a)
        total, n = total + r, n + 1
        if term:
            break
    if not term:
        _, r, term, _, info = env.step(STOP)
        total, n = total + r, n + 1
    assert term and info["valid"]
    assert total == pytest.approx(math.log(c0 / info["cycles_after"]) - 0.005 * n, abs=1e-9)
    assert info["cycles_after"] < c0  # the design's sequence speeds this kernel up
    assert "maxnreg_128" in env.render()


def fuzz(backend, steps: int, seed: int) -> int:  # type: ignore[no-untyped-def]
    """Random legal actions (and every 50th an arbitrary one); returns the episode count.

    A new state costs ~0.15 s cold on the emulated backend (transforms + emulation), and random
    play mostly finds new states, so 1,000 steps take ~2.5 min cold (marked slow).
    """
    env = PtxTransformEnv(kernels=SMALL, backend=backend)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    invalid = episodes = 0
    for t in range(steps):
        mask = env.action_masks()
        legal = np.flatnonzero(mask)
        a = int(rng.integers(N_ACTIONS)) if t % 50 == 49 else int(rng.choice(legal))
        obs, r, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs) and math.isfinite(r)
        assert not mask[a] or info["invalid"] != "masked action"
        if not info["valid"]:
            invalid += 1
            assert r == -1.0 and term
        if term or trunc:
            episodes += 1
            obs, info = env.reset()
    env.close()
    return episodes


def test_random_masked_fuzz_200_steps(backend) -> None:  # type: ignore[no-untyped-def]
    assert fuzz(backend, 200, seed=0) > 20


@pytest.mark.slow
def test_random_masked_fuzz_1000_steps(backend) -> None:  # type: ignore[no-untyped-def]
    assert fuzz(backend, 1000, seed=1) > 100


def test_make_vec_sync_emulated(backend) -> None:  # type: ignore[no-untyped-def]
    vec = gym.make_vec(
        envs.ENV_ID, num_envs=2, vectorization_mode="sync", kernels=SMALL, backend=backend
    )
    obs, info = vec.reset(seed=0)
    assert obs.shape == (2, OBS_SIZE)
    for _ in range(8):
        masks = np.stack(vec.call("action_masks"))
        acts = np.array([int(np.flatnonzero(m)[0]) for m in masks])
        obs, rew, term, trunc, info = vec.step(acts)
        assert rew.dtype == np.float64 and obs.dtype == np.float32
    vec.close()


def test_make_vec_async_with_shared_service() -> None:
    with SharedMeasurementService("emulated") as service:
        vec = gym.make_vec(
            envs.ENV_ID, num_envs=2, vectorization_mode="async",
            vector_kwargs={"context": "fork"}, kernels=SMALL, backend=service.client(),
        )  # fmt: skip
        try:
            obs, info = vec.reset(seed=0)
            assert obs.shape == (2, OBS_SIZE) and set(info["kernel_id"]) <= set(SMALL)
            rng = np.random.default_rng(1)
            for _ in range(6):
                masks = np.stack(vec.call("action_masks"))
                acts = np.array([int(rng.choice(np.flatnonzero(m))) for m in masks])
                obs, rew, term, trunc, info = vec.step(acts)
                assert np.isfinite(rew).all()
            assert set(info["backend"]) == {"emulated"}
        finally:
            vec.close()
        stats = service.stats
        assert stats["calls"] >= 2 and stats["misses"] >= 1
