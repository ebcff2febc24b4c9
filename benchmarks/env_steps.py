"""PtxTransformEnv steps per second with a cold and a warm measurement store.

    python benchmarks/env_steps.py --steps 300 --backend emulated

Plays the same seeded random masked-action trajectory three times:
  cold        a fresh SQLite store and empty in-process transform/mask caches: every new state
              is transformed and measured (what the first epochs of training pay);
  warm store  the same store, now holding every state, but empty transform/mask caches
              (a new process reusing a store from an earlier run);
  warm all    the store and the in-process caches both warm (a long-running trainer that
              revisits states).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from envs import mdp
from envs.ptx_env import PtxTransformEnv

KERNELS = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_4_4", "gemm_tile_4_6_8"]


def play(env: PtxTransformEnv, steps: int, seed: int) -> float:
    """Steps per second over `steps` random masked actions (resets included)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        action = int(rng.choice(np.flatnonzero(env.action_masks())))
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - t0)


def clear_process_caches() -> None:
    for cache in (mdp.APPLY_CACHE, mdp.MASK_CACHE, mdp.FEATURE_CACHE):
        cache.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--backend", default="emulated")
    parser.add_argument("--kernels", nargs="+", default=KERNELS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.kernels = 4, KERNELS[:1]

    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "measurements.sqlite")
        results = {}
        for label in ("cold", "warm store", "warm all"):
            if label != "warm all":
                clear_process_caches()
            env = PtxTransformEnv(kernels=args.kernels, backend=args.backend, store=store)
            rate = play(env, args.steps, args.seed)
            _, info = env.reset(seed=args.seed)
            stats = dict(env.backend.stats)
            env.close()
            results[label] = rate
            print(
                f"{label:>10}: {rate:8.1f} steps/s  backend={info['backend']} "
                f"device={info['device']!r} estimate={info['estimate']} "
                f"hits={stats.get('hits')} misses={stats.get('misses')}"
            )
    print(
        f"kernels={args.kernels} steps={args.steps} "
        f"warm-store speed-up x{results['warm store'] / results['cold']:.1f}, "
        f"warm-all x{results['warm all'] / results['cold']:.1f}"
    )


if __name__ == "__main__":
    main()
