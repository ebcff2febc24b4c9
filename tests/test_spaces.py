"""The action/observation layout is derived from the catalogue: add a transform, all follow."""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest
import torch

import chronos.transforms as tx
from agents.bc import BCConfig, train_mlp
from agents.greedy import greedy_kernel, to_bcdata
from agents.policy import PolicyMLP
from chronos.features import FEATURE_NAMES
from chronos.measure import Measurement
from envs.mdp import TransformMDP
from envs.ptx_env import PtxTransformEnv
from envs.reward import LinearSpeedup, LogSpeedup, make_reward
from envs.spaces import LAYOUT, Layout, layout_of
from envs.wrappers import ForbidEarlyStop
from tests.helpers.catalogue import catalogue_with

KERNEL = "gemm_tile_2_2_2"
MARK = "// dummy transform\n"


def _catalogue_with_dummy() -> types.SimpleNamespace:
    """The real catalogue plus one transform, `dummy`, inserted before stop."""
    return catalogue_with("dummy", lambda ptx: (ptx + MARK, MARK not in ptx))


class DummyAwareBackend:
    """1000 cycles, 900 once the dummy transform's marker is in the PTX; every PTX is valid."""

    name = "fake"

    def measure(self, spec: Any, ptx: str) -> Measurement:
        cycles = 900.0 if MARK in ptx else 1000.0
        return Measurement(
            cycles=cycles, cycles_q1=None, cycles_q3=None, time_ns=None, n=1, valid=True,
            error=None, backend="fake", device="none", clock_mhz=None, regs=32, spills=0,
            harness_version="test", estimate=True, kernel_id=spec.id,
        )  # fmt: skip

    def close(self) -> None:
        pass


def test_default_layout_is_the_design() -> None:
    assert LAYOUT.n_actions == len(tx.ACTION_NAMES) == 21 and LAYOUT.stop == tx.STOP == 20
    assert LAYOUT.n_features == len(FEATURE_NAMES) == 59 and LAYOUT.obs_size == 101
    assert (LAYOUT.features, LAYOUT.mask, LAYOUT.history) == (
        slice(0, 59),
        slice(59, 80),
        slice(80, 101),
    )
    assert [r[0] for r in LAYOUT.rows()] == ["0-58", "59-79", "80-100"]


def test_layout_rejects_inconsistent_catalogues() -> None:
    with pytest.raises(ValueError, match="last action must be stop"):
        Layout(("a", "b"))
    with pytest.raises(ValueError, match="duplicate"):
        Layout(("a", "a", "stop"))
    bad = types.SimpleNamespace(ACTION_NAMES=("a", "stop"), N_ACTIONS=3)
    with pytest.raises(ValueError, match="N_ACTIONS=3"):
        layout_of(bad)


def test_env_policy_and_greedy_follow_an_added_transform() -> None:
    cat = _catalogue_with_dummy()
    lay = layout_of(cat)
    assert lay.n_actions == 22 and lay.stop == 21 and lay.obs_size == 59 + 44

    env = ForbidEarlyStop(
        PtxTransformEnv(kernels=KERNEL, backend=DummyAwareBackend(), transforms=cat), min_steps=1
    )
    assert env.action_space.n == 22 and env.observation_space.shape == (103,)
    obs, info = env.reset(seed=0)
    assert obs.shape == (103,) and info["action_mask"].shape == (22,)
    assert not info["action_mask"][lay.stop], "the wrapper masks stop at step 0"
    obs, reward, terminated, truncated, info = env.step(lay.stop - 1)
    assert info["applied"] == ["dummy"] and obs[lay.history][lay.stop - 1] == 1.0
    assert reward == pytest.approx(np.log(1000 / 900) - 0.005)
    assert not terminated and not truncated

    mdp = TransformMDP(DummyAwareBackend(), max_steps=2, transforms=cat)
    res = greedy_kernel(mdp, env.unwrapped.kernel_spec)
    assert res.actions == ["dummy"] and res.labels == [20, 21] and res.final_cycles == 900.0
    data = to_bcdata([res], lay)
    assert data.obs.shape == (2, 103) and data.mask.shape == (2, 22)

    policy = train_mlp(data, BCConfig(epochs=5), seed=0)
    assert (policy.obs_dim, policy.n_actions, policy.n_features) == (103, 22, 59)
    logits = policy(torch.as_tensor(data.obs), torch.as_tensor(data.mask))
    assert logits.shape == (2, 22)
    again = PolicyMLP(**policy.arch())
    assert (
        again.arch()
        == policy.arch()
        == PolicyMLP.for_layout(lay).arch()
        | {
            "hidden": list(BCConfig().hidden),
            "dropout": BCConfig().dropout,
        }
    )


def test_rewards_are_named_objects() -> None:
    log, lin = make_reward("log_speedup"), make_reward("linear_speedup", step_cost=0.0)
    assert isinstance(log, LogSpeedup) and isinstance(lin, LinearSpeedup)
    assert log.applied(1000, 800, 1000) == pytest.approx(np.log(1.25) - 0.005)
    assert lin.applied(800, 600, 1000) == pytest.approx(0.2)
    assert log.stop() == -0.005 and log.invalid() == -1.0
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        make_reward("nope")


def test_the_env_uses_the_configured_reward() -> None:
    cat = _catalogue_with_dummy()
    env = PtxTransformEnv(
        kernels=KERNEL, backend=DummyAwareBackend(), transforms=cat, reward="linear_speedup"
    )
    env.reset(seed=0)
    _, reward, *_ = env.step(env.layout.stop - 1)
    assert reward == pytest.approx(0.1 - 0.005)
    with pytest.raises(ValueError, match="through the reward object"):
        TransformMDP(DummyAwareBackend(), reward=LogSpeedup(), step_cost=0.1)
