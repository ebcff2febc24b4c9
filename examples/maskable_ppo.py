"""Train sb3-contrib's MaskablePPO on PtxTransformEnv and compare it with a random masked policy.

    pip install -e '.[sb3]'    # stable-baselines3 + sb3-contrib (not in the base install)
    python examples/maskable_ppo.py --steps 9000 --store runs/ppo_measurements.sqlite

Runs on the emulated backend by default (CPU only: ptxas + the PTX emulator's cycle estimate),
so the numbers are estimates; pass `--backend cupy` on a GPU machine. A measurement store makes
repeated states free, and a rerun with the same --store is much faster.

The policy sees the observation through SB3's `VecNormalize` (running mean and variance per
column), as SB3 recommends for PPO on vector observations: the feature columns mix log counts
near 5-7 with fractions whose useful differences are a few hundredths (docs/env.md), and
`MlpPolicy` does not rescale them. The greedy evaluation normalizes with the same frozen
statistics. `--no-normalize` trains on the raw observation (the ablation).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

TRAIN_KERNELS = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2", "gemm_tile_4_4_2"]


def run_episode(env: Any, policy: Any, rng: np.random.Generator, kernel: str) -> float:
    """Return of one episode on `kernel`; `policy(obs, mask, rng) -> action`."""
    obs, _ = env.reset(options={"kernel": kernel})
    total, done = 0.0, False
    while not done:
        action = policy(obs, env.action_masks(), rng)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total


def random_masked(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(mask)))


def evaluate(env: Any, policy: Any, kernels: list[str], episodes: int, seed: int) -> list[float]:
    """Mean episode return per kernel over `episodes` episodes each."""
    rng = np.random.default_rng(seed)
    return [
        float(np.mean([run_episode(env, policy, rng, k) for _ in range(episodes)])) for k in kernels
    ]


def training_returns(monitor: Any, steps: int) -> tuple[float, float, float]:
    """Mean return of the training episodes that ended in the first and in the last quarter of
    the steps, and the standard error of their difference: hundreds of episodes of the sampling
    policy each, so learning shows even where the greedy policy's four episodes land on a poor
    choice (one seed's greedy return varies 0.13-0.43 here, docs/env.md)."""
    returns = np.asarray(monitor.get_episode_rewards(), dtype=float)
    ends = np.cumsum(monitor.get_episode_lengths())
    first, last = returns[ends <= steps / 4], returns[ends > steps * 3 / 4]
    se = np.sqrt(first.var(ddof=1) / len(first) + last.var(ddof=1) / len(last))
    return float(first.mean()), float(last.mean()), float(se)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=9000, help="PPO training timesteps")
    parser.add_argument("--kernels", nargs="+", default=TRAIN_KERNELS)
    parser.add_argument("--backend", default="emulated")
    parser.add_argument("--store", default=None, help="measurement store (default: in memory)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-episodes", type=int, default=20, help="per kernel")
    parser.add_argument(
        "--no-normalize", action="store_true", help="train on the raw observation (no VecNormalize)"
    )
    args = parser.parse_args(argv)

    import torch

    try:
        from sb3_contrib import MaskablePPO
    except ImportError:
        raise SystemExit(
            "this example needs sb3-contrib: pip install -e '.[sb3]' "
            "(or pip install stable-baselines3 sb3-contrib)"
        ) from None

    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from envs.ptx_env import PtxTransformEnv

    torch.set_num_threads(1)  # a 20k-parameter MLP: threads cost more than they give
    env = PtxTransformEnv(kernels=args.kernels, backend=args.backend, store=args.store)
    env.reset(seed=args.seed)
    # Rewards are log speed-ups already (small, and PPO normalizes advantages): only the
    # observation is normalized. MaskablePPO reads the masks through env_method("action_masks").
    monitor = Monitor(env)
    venv = DummyVecEnv([lambda: monitor])
    normalize = None if args.no_normalize else VecNormalize(venv, norm_reward=False, gamma=1.0)
    train_env = venv if normalize is None else normalize
    t0 = time.perf_counter()
    model = MaskablePPO(
        "MlpPolicy", train_env, n_steps=256, batch_size=64, n_epochs=10, learning_rate=1e-3,
        gamma=1.0, ent_coef=0.01, seed=args.seed,
        policy_kwargs={"net_arch": [128, 128]}, verbose=0,
    )  # fmt: skip
    model.learn(total_timesteps=args.steps)
    train_s = time.perf_counter() - t0
    if normalize is not None:
        normalize.training = False  # evaluate with the statistics the policy was trained on

    def ppo(obs: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> int:
        if normalize is not None:
            obs = normalize.normalize_obs(obs)
        action, _ = model.predict(obs, action_masks=mask, deterministic=True)
        return int(action)

    # The emulated backend is deterministic, so one greedy PPO episode per kernel is exact.
    backend_name = env.backend.__class__.__name__
    ppo_returns = evaluate(env, ppo, args.kernels, episodes=1, seed=args.seed)
    random_returns = evaluate(env, random_masked, args.kernels, args.random_episodes, args.seed)
    first, last, gain_se = training_returns(monitor, args.steps)
    _, info = env.reset(options={"kernel": args.kernels[0]})
    result = {
        "backend": info["backend"],
        "device": info["device"],
        "estimate": info["estimate"],
        "backend_class": backend_name,
        "kernels": args.kernels,
        "timesteps": args.steps,
        "seed": args.seed,
        "normalize_obs": normalize is not None,
        "train_seconds": round(train_s, 1),
        "ppo_mean_return": round(float(np.mean(ppo_returns)), 4),
        "random_masked_mean_return": round(float(np.mean(random_returns)), 4),
        "ppo_returns": [round(r, 4) for r in ppo_returns],
        "random_masked_returns": [round(r, 4) for r in random_returns],
        "train_return_first_quarter": round(first, 4),
        "train_return_last_quarter": round(last, 4),
        "train_return_gain_se": round(gain_se, 4),
        "measurement_stats": {
            k: v for k, v in dict(env.backend.stats).items() if k in ("hits", "misses")
        },
    }
    env.close()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
