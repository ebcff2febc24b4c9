"""PtxTransformEnv's MDP with a fake transform catalogue and a fake backend: exact rewards.

The fakes make cycles a known function of the applied transforms, so the reward maths can be
checked to the last bit; tests/test_env_emulated.py runs the real catalogue and backend.
"""

from __future__ import annotations

import math
import types
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import envs
from chronos.measure import Measurement
from envs import ptx_env
from envs.ptx_env import N_ACTIONS, OBS_SIZE, STOP, PtxTransformEnv
from envs.spaces import LAYOUT

KERNELS = ["gemm_tile_2_2_2", "gemm_tile_4_6_8", "gemm_tile_8_8_8"]
NOOP, BAD, MASKED = 7, 8, 19  # fake catalogue: 7 changes nothing, 8 breaks the kernel
BASE = 1000.0
FACTOR = {a: 1.0 - 0.03 * (a + 1) if a % 2 == 0 else 1.0 + 0.02 * a for a in range(20)}


def _fake_apply(spec: Any, ptx: str, action: int) -> Any:
    if action == NOOP:
        return types.SimpleNamespace(ptx=ptx, changed=False, reason="nothing to do")
    marker = "// BAD\n" if action == BAD else f"// a{action}\n"
    return types.SimpleNamespace(ptx=ptx + marker, changed=True, reason="")


def _fake_mask(spec: Any, ptx: str, applied: Any) -> np.ndarray:
    mask = np.ones(N_ACTIONS, dtype=np.bool_)
    mask[list(applied)] = False
    mask[MASKED] = False
    return mask


FAKE_TX = types.SimpleNamespace(
    N_ACTIONS=N_ACTIONS,
    STOP=STOP,
    ACTION_NAMES=tuple(f"t{i}" for i in range(20)) + ("stop",),
    apply_action=_fake_apply,
    action_mask=_fake_mask,
)


def fake_cycles(ptx: str) -> float:
    c = BASE
    for a in range(20):
        if f"// a{a}\n" in ptx:
            c *= FACTOR[a]
    return c


class FakeBackend:
    """Cycles = BASE times one factor per applied transform; '// BAD' fails like ptxas would."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False

    def measure(self, spec: Any, ptx: str) -> Measurement:
        self.calls += 1
        if "// BAD" in ptx:
            return Measurement.invalid(
                "ptxas rejected the PTX",
                backend="fake",
                device="none",
                harness_version="test",
                kernel_id=spec.id,
            )
        return Measurement(
            cycles=fake_cycles(ptx), cycles_q1=None, cycles_q3=None, time_ns=None, n=1,
            valid=True, error=None, backend="fake", device="none", clock_mhz=None, regs=32,
            spills=0, harness_version="test", estimate=True, kernel_id=spec.id,
        )  # fmt: skip

    def close(self) -> None:
        self.closed = True


@pytest.fixture(autouse=True)
def fake_transforms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ptx_env, "_transforms", lambda: FAKE_TX)


def make(**kw: Any) -> PtxTransformEnv:
    kw.setdefault("kernels", "gemm_tile_4_6_8")
    kw.setdefault("backend", FakeBackend())
    return PtxTransformEnv(**kw)


def test_spaces_and_reset() -> None:
    env = make()
    assert env.action_space == gym.spaces.Discrete(N_ACTIONS)
    assert env.observation_space.shape == (OBS_SIZE,) == (LAYOUT.obs_size,)
    assert env.observation_space.dtype == np.float32
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    assert info["cycles_before"] == info["cycles_after"] == BASE
    assert info["kernel_id"] == "gemm_tile_4_6_8" and info["valid"] is True
    assert info["action_mask"].dtype == np.int8
    np.testing.assert_array_equal(obs[LAYOUT.mask], env.action_masks())
    assert not obs[LAYOUT.history].any()
    assert env.action_masks().dtype == np.bool_ and env.action_masks()[STOP]


def test_reward_maths_exact() -> None:
    env = make()
    env.reset(seed=0)
    seq, total, prev = [0, 3, 4], 0.0, BASE
    for i, a in enumerate(seq):
        obs, r, term, trunc, info = env.step(a)
        now = fake_cycles("".join(f"// a{b}\n" for b in seq[: i + 1]))
        assert r == math.log(prev / now) - 0.005
        assert type(r) is float and type(term) is bool and type(trunc) is bool
        assert (term, trunc) == (False, False)
        assert info["cycles_before"] == prev and info["cycles_after"] == now
        assert info["applied_ids"] == seq[: i + 1]
        assert info["applied"] == [f"t{b}" for b in seq[: i + 1]]
        # history set, mask cleared
        assert obs[LAYOUT.history.start + a] == 1.0 and obs[LAYOUT.mask.start + a] == 0.0
        total += r
        prev = now
    _, r, term, trunc, info = env.step(STOP)
    assert r == -0.005 and term and not trunc and info["reason"] == "stop"
    total += r
    assert total == pytest.approx(math.log(BASE / prev) - 0.005 * 4, abs=1e-12)


def test_noop_ends_episode() -> None:
    env = make()
    env.reset(seed=0)
    env.step(0)
    _, r, term, trunc, info = env.step(NOOP)
    assert r == -0.005 and term and not trunc
    assert info["valid"] and info["reason"].startswith("no-op") and info["invalid"] == ""
    assert info["applied_ids"] == [0]
    with pytest.raises(RuntimeError):
        env.step(0)


def test_invalid_step_penalty_and_rollback() -> None:
    env = make(invalid_penalty=-2.5)
    env.reset(seed=0)
    env.step(0)
    ptx, cycles = env.ptx, env.cycles
    obs, r, term, trunc, info = env.step(BAD)
    assert r == -2.5 and term and not trunc
    assert info["valid"] is False and "ptxas" in info["invalid"]
    assert env.ptx == ptx and env.cycles == cycles == info["cycles_after"]
    assert obs[LAYOUT.history.start + BAD] == 0.0 and info["applied_ids"] == [0]


def test_masked_action_is_invalid() -> None:
    env = make()
    env.reset(seed=0)
    calls = env.backend.calls
    _, r, term, _, info = env.step(MASKED)
    assert r == -1.0 and term and info["invalid"] == "masked action" and not info["valid"]
    assert env.backend.calls == calls  # nothing measured
    env.reset(seed=0)
    env.step(0)
    _, r, term, _, info = env.step(0)  # already applied: masked
    assert r == -1.0 and term and info["invalid"] == "masked action"


def test_truncates_after_max_steps() -> None:
    env = make(max_steps=6)
    env.reset(seed=0)
    for i, a in enumerate([0, 1, 2, 3, 4, 5]):
        _, _, term, trunc, info = env.step(a)
        assert not term and trunc == (i == 5) and info["step"] == i + 1


def test_seeding_and_kernel_selection() -> None:
    def episode_kernels(seed: int) -> list[str]:
        env = make(kernels=KERNELS)
        out = [env.reset(seed=seed)[1]["kernel_id"]]
        out += [env.reset()[1]["kernel_id"] for _ in range(11)]
        return out

    a, b = episode_kernels(3), episode_kernels(3)
    assert a == b and set(a) <= set(KERNELS) and len(set(a)) > 1
    env = make(kernels=lambda rng: KERNELS[int(rng.integers(2))])
    assert env.reset(seed=1)[1]["kernel_id"] in KERNELS[:2]
    assert env.reset(options={"kernel": "gemm_tile_8_8_8"})[1]["kernel_id"] == "gemm_tile_8_8_8"
    with pytest.raises(KeyError):
        make(kernels="no_such_kernel")


def test_render_ansi_shows_diff() -> None:
    env = make(render_mode="ansi")
    env.reset(seed=0)
    env.step(2)
    text = env.render()
    assert "gemm_tile_4_6_8" in text and "t2" in text and "+// a2" in text
    assert make().render() is None


def test_close_only_owned_backend() -> None:
    shared = FakeBackend()
    env = make(backend=shared)
    env.reset(seed=0)
    env.close()
    assert not shared.closed


def test_env_checkers() -> None:
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        env = gym.make(envs.ENV_ID, kernels=KERNELS, backend=FakeBackend(), render_mode="ansi")
        gym_check(env.unwrapped, skip_render_check=False)
    sb3_check(make(kernels=KERNELS), warn=True)


def test_registered_make() -> None:
    spec = gym.spec(envs.ENV_ID)
    assert spec.nondeterministic is True
    env = gym.make(envs.ENV_ID, kernels="gemm_tile_2_2_2", backend=FakeBackend())
    obs, info = env.reset(seed=0)
    assert obs.shape == (LAYOUT.obs_size,) and info["kernel_id"] == "gemm_tile_2_2_2"
    assert env.unwrapped.action_masks().shape == (N_ACTIONS,)
    env.close()


def test_make_vec_sync() -> None:
    vec = gym.make_vec(
        envs.ENV_ID, num_envs=3, vectorization_mode="sync", kernels=KERNELS,
        backend=FakeBackend(),
    )  # fmt: skip
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (3, OBS_SIZE)
    obs, rew, term, trunc, info = vec.step(np.array([0, STOP, NOOP]))
    assert rew.shape == (3,) and list(term) == [False, True, True]
    assert info["action_mask"].shape == (3, N_ACTIONS)
    vec.close()


def test_fuzz_400_steps_fake() -> None:
    """400 random steps (mostly legal, some illegal) keep the invariants; the real-backend fuzz
    is in test_env_emulated.py."""
    env = make(kernels=KERNELS)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for t in range(400):
        legal = np.flatnonzero(env.action_masks())
        a = int(rng.integers(N_ACTIONS)) if t % 7 == 0 else int(rng.choice(legal))
        obs, r, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs)
        assert info["cycles_after"] == pytest.approx(fake_cycles(env.ptx))
        applied = np.isin(np.arange(STOP), info["applied_ids"])
        assert np.array_equal(obs[LAYOUT.history][:STOP] == 1.0, applied)
        if term or trunc:
            obs, _ = env.reset()


def test_maskable_ppo_accepts_made_env() -> None:
    """sb3-contrib finds action_masks() through gymnasium.make's wrappers."""
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = gym.make(envs.ENV_ID, kernels=KERNELS, backend=FakeBackend())
    model = MaskablePPO("MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0)
    model.learn(64)
    masks = get_action_masks(model.get_env())
    assert masks.shape == (1, N_ACTIONS) and masks.dtype == np.bool_


def test_forbid_early_stop_wrapper() -> None:
    from envs.wrappers import ForbidEarlyStop

    env = ForbidEarlyStop(make(), min_steps=2)
    obs, info = env.reset(seed=0)
    stop_bit = LAYOUT.mask.start + STOP
    assert not env.action_masks()[STOP] and info["action_mask"][STOP] == 0 and obs[stop_bit] == 0
    obs, *_, info = env.step(0)
    assert not env.action_masks()[STOP]
    obs, *_, info = env.step(1)
    assert env.action_masks()[STOP] and info["action_mask"][STOP] == 1 and obs[stop_bit] == 1


class _Scripted:
    """A stand-in policy for agents.rollout: plays `actions` and records what it was shown."""

    training = False

    def __init__(self, actions: list[int]) -> None:
        self.actions = actions
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def eval(self) -> None:
        pass

    def act(self, obs: np.ndarray, mask: np.ndarray, *_: Any) -> tuple[np.ndarray, np.ndarray]:
        self.seen.append((obs[0].copy(), mask[0].copy()))
        return np.array([self.actions[len(self.seen) - 1]]), np.zeros(1, np.float32)


def test_the_wrapper_and_the_rollout_mask_stop_alike() -> None:
    """One stop-mask rule (envs.mdp.forbid_early_stop): for the same states, ForbidEarlyStop
    and the GRPO rollout's forced steps give the same action mask and the same observation."""
    from agents.rollout import rollout
    from envs.wrappers import ForbidEarlyStop

    actions = [0, 2, 4, STOP]
    env = ForbidEarlyStop(make(), min_steps=2)
    policy = _Scripted(actions)
    spec = ptx_env._load_spec("gemm_tile_4_6_8")
    rollout(env.unwrapped.mdp, [spec], policy, stop_masked_steps=2)  # type: ignore[arg-type]
    obs, info = env.reset(seed=0)
    assert len(policy.seen) == len(actions)
    for t, (action, (seen_obs, seen_mask)) in enumerate(zip(actions, policy.seen, strict=True)):
        mask = env.action_masks()
        assert np.array_equal(mask, seen_mask) and np.array_equal(obs, seen_obs), t
        assert mask[STOP] == (t >= 2) and np.array_equal(info["action_mask"], mask)
        obs, *_, info = env.step(action)


def test_forbid_early_stop_keeps_stop_when_nothing_else_is_legal() -> None:
    from envs.mdp import forbid_early_stop

    masks = np.zeros((2, N_ACTIONS), bool)
    masks[:, STOP] = True
    masks[0, 3] = True
    obs, out = forbid_early_stop(np.zeros((2, OBS_SIZE), np.float32), masks, 0, 2, LAYOUT)
    assert out[:, STOP].tolist() == [False, True] and masks[0, STOP], "a copy, not in place"
    assert np.array_equal(obs[:, LAYOUT.mask], out)
    assert np.array_equal(forbid_early_stop(obs, masks, 2, 2, LAYOUT)[1], masks)


def test_replaced_spec_is_never_served_stale(tmp_path: Any) -> None:
    """Issue 13, item 1: after `register(spec, replace=True)` with a weaker alignment
    contract (256 -> 4 bytes) neither the env's spec lookup nor the MDP's mask memo may offer
    vec_ld/vec_st from the old contract."""
    import dataclasses

    import chronos.transforms as tx
    from envs.mdp import TransformMDP
    from kernels import load, register, unregister

    base = load("gemm_tile_4_6_8")
    path = tmp_path / "stale.ptx"
    path.write_text(base.ptx())
    strong = register(dataclasses.replace(base, id="test_stale", family="test", ptx_path=path))
    try:
        mdp = TransformMDP(FakeBackend())
        vec = [tx.ACTION_IDS["vec_ld"], tx.ACTION_IDS["vec_st"]]
        first = mdp.initial(ptx_env._load_spec("test_stale"))
        assert first.spec is strong and mdp.mask(first)[vec].all()
        weak = register(
            dataclasses.replace(strong, alignment={k: 4 for k in strong.alignment}),
            replace=True,
        )
        assert ptx_env._load_spec("test_stale") is weak
        second = mdp.initial(ptx_env._load_spec("test_stale"))
        # vec_st has only global stores to widen: masked. vec_ld may still widen the
        # shared-memory loads (their alignment is the PTX's, not the spec's), never a global.
        assert second.spec is weak and not mdp.mask(second)[vec[1]]
        widened = tx.apply_action(weak, second.ptx, "vec_ld").ptx
        assert (
            "ld.global.v" not in widened
            and "ld.global.v" in tx.apply_action(strong, first.ptx, "vec_ld").ptx
        )
        assert mdp.mask(first)[vec].all()  # the old spec keeps its own verdicts
    finally:
        unregister("test_stale")
