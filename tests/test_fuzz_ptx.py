"""Property-based fuzz of the validity pipeline on mutated corpus PTX (issues 13 and 29).

The mutations and the properties are tests/helpers/fuzz.py's: parse -> print -> parse reaches
a fixed point or raises PtxParseError naming the line; `verify` and the emulated backend's
`measure` return a verdict in bounded time instead of raising, and a kernel they call valid
computes the reference outputs bit for bit; the env's `step` never raises on a masked-legal
action. CI runs a seeded sample on small kernels; the `slow` profile and benchmarks/fuzz.py
(the full run, with counts per verdict) run many more.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernels
from chronos.measure.backends.emulated import EmulatedBackend
from envs.ptx_env import PtxTransformEnv
from tests.helpers.fuzz import MAX_STEPS, check, check_env_episode, check_parse, mutations

pytestmark = pytest.mark.requires_ptxas

CI_KERNELS = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2"]
SLOW_KERNELS = [*CI_KERNELS, "gemm_tile_4_4_8", "gemm_tile_2_8_4"]
PARSE_KERNELS = [kernels.list_kernels(f)[0] for f in kernels.list_families()]
"""One kernel per family: parsing is cheap, so the parser sees every family's syntax."""
ENV_KERNELS = ["gemm_tile_2_2_2", "reduce_rows_f16_b256_i2_tree", "transpose_f16_t16x4"]


@pytest.fixture(scope="module")
def backend() -> EmulatedBackend:
    return EmulatedBackend(max_steps=MAX_STEPS)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=mutations(PARSE_KERNELS))
def test_mutated_ptx_parses_to_a_fixed_point_or_names_its_line(case) -> None:  # type: ignore[no-untyped-def]
    _, ptx, done = case
    check_parse(ptx, done)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutations(CI_KERNELS))
def test_mutated_ptx_is_refused_or_exactly_right(case, backend: EmulatedBackend) -> None:  # type: ignore[no-untyped-def]
    check(*case, backend)


@pytest.mark.slow
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=mutations(SLOW_KERNELS))
def test_mutated_ptx_is_refused_or_exactly_right_long(case, backend: EmulatedBackend) -> None:  # type: ignore[no-untyped-def]
    check(*case, backend)


@pytest.fixture(scope="module")
def env():  # type: ignore[no-untyped-def]
    e = PtxTransformEnv(kernels=ENV_KERNELS, backend="emulated", store=None)
    yield e
    e.close()


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.integers(0, 2**16), picks=st.lists(st.integers(0, 63), min_size=1, max_size=6))
def test_env_step_never_raises_on_a_masked_legal_action(env, seed: int, picks: list[int]) -> None:  # type: ignore[no-untyped-def]
    outcomes = check_env_episode(env, seed, picks)
    assert 1 <= len(outcomes) <= len(picks)
