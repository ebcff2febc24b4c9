"""The full fuzz run of the validity pipeline (CI runs a sample: tests/test_fuzz_ptx.py).

    python benchmarks/fuzz.py [--examples 500] [--env-episodes 100] [--seed 0] [--smoke]

Mutated corpus PTX (tests/helpers/fuzz.py: dropped, duplicated, swapped lines, perturbed
operands) through parse -> print -> parse, through ptxas + emulation + verification with the
`emulated` backend (a verdict, never an exception; a valid kernel bit-exact; bounded time), and
random masked-legal episodes through the env (`step` never raises). Prints the verdicts by
kind, the slowest measurement and the wall time; exits 1 on the first property that fails
(hypothesis shrinks it and prints the smallest failing mutation).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers

import kernels  # noqa: E402
from chronos.measure.backends.emulated import EmulatedBackend  # noqa: E402
from envs.ptx_env import PtxTransformEnv  # noqa: E402
from tests.helpers.fuzz import (  # noqa: E402
    MAX_STEPS,
    check,
    check_env_episode,
    check_parse,
    mutations,
)

SMALL = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2", "gemm_tile_4_4_8"]
"""Kernels that emulate in milliseconds; every family's first kernel joins them."""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="mutated kernels measured")
    ap.add_argument("--parse-examples", type=int, default=5000, help="mutated kernels parsed")
    ap.add_argument("--env-episodes", type=int, default=100, help="random env episodes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="a tiny run (CI)")
    args = ap.parse_args()
    if args.smoke:
        args.examples, args.parse_examples, args.env_episodes = 3, 20, 2
    every = [kernels.list_kernels(f)[0] for f in kernels.list_families()]
    ids = list(dict.fromkeys(SMALL + every))
    opts = {
        "deadline": None,
        "database": None,
        "derandomize": False,
        "suppress_health_check": list(HealthCheck),
    }
    t0 = time.perf_counter()

    parsed: Counter[str] = Counter()

    @seed(args.seed)
    @settings(max_examples=args.parse_examples, **opts)
    @given(case=mutations(ids))
    def parse_one(case: tuple[str, str, list[str]]) -> None:
        parsed["parsed" if check_parse(case[1], case[2]) else "PtxParseError"] += 1

    verdicts: Counter[str] = Counter()
    seconds: list[float] = []
    backend = EmulatedBackend(max_steps=MAX_STEPS)

    @seed(args.seed)
    @settings(max_examples=args.examples, **opts)
    @given(case=mutations(ids))
    def measure_one(case: tuple[str, str, list[str]]) -> None:
        kind, s = check(*case, backend)
        verdicts[kind] += 1
        seconds.append(s)

    steps: Counter[str] = Counter()
    env = PtxTransformEnv(kernels=SMALL, backend="emulated", store=None)

    @seed(args.seed)
    @settings(max_examples=args.env_episodes, **opts)
    @given(reset=st.integers(0, 2**16), picks=st.lists(st.integers(0, 63), min_size=1, max_size=6))
    def episode(reset: int, picks: list[int]) -> None:
        steps.update(o.split(":")[0] for o in check_env_episode(env, reset, picks))

    try:
        parse_one()
        print(f"parse -> print -> parse over {len(ids)} kernels: {dict(parsed)}", flush=True)
        measure_one()
        print(
            f"emulated backend (estimates) on mutated PTX: {dict(verdicts)}; measurement "
            f"median {statistics.median(seconds):.2f} s, slowest {max(seconds):.2f} s",
            flush=True,
        )
        episode()
        print(f"env steps on masked-legal actions: {dict(steps)}", flush=True)
    finally:
        env.close()
    print(f"no property failed; {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
