"""The action-value learner (agents/qvalue.py) and the per-child gains greedy now keeps."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agents.bc import BCData
from agents.greedy import greedy_kernel, load_dataset, save_dataset, to_bcdata
from agents.grpo import evaluate
from agents.qvalue import QConfig, QPolicy, q_predict, q_targets, train_q
from chronos.features import group_mask
from chronos.transforms import ACTION_NAMES as NAMES
from envs.mdp import State, TransformMDP
from envs.spaces import LAYOUT, N_ACTIONS, OBS_SIZE, STOP
from tests.test_search import FAKE_TX, SPEC, A, B, C, D, E, FakeBackend

N_FEATURES = OBS_SIZE - 2 * N_ACTIONS


class Backend(FakeBackend):
    """FakeBackend with the spread fields a rollout reads (none measured)."""

    def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
        m = super().measure(spec, ptx)
        m.cycles_q1 = m.cycles_q3 = None
        return m


@pytest.fixture
def mdp() -> TransformMDP:
    """tests/test_search.py's fake catalogue; its PTX ("k:ab") has no features, so the state is
    observed by its mask and history blocks alone."""
    m = TransformMDP(Backend(), max_steps=3, transforms=FAKE_TX)

    def observe(state: State) -> np.ndarray:
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[LAYOUT.mask] = m.mask(state)
        obs[LAYOUT.history.start + np.asarray(state.applied, dtype=int)] = 1.0
        return obs

    m.observe = observe  # type: ignore[method-assign]
    return m


def test_greedy_trace_records_every_childs_gain(mdp: TransformMDP) -> None:
    # The fake catalogue (tests/test_search.py): from 1000 cycles a -> 700, b -> 900, d breaks
    # the kernel, e is a no-op, c is illegal until b. Greedy takes a, then b (630), then stops.
    res = greedy_kernel(mdp, SPEC, progress=False)
    assert res.labels == [A, B, STOP]
    g0, g1, g2 = res.gains
    assert g0[A] == pytest.approx(math.log(1000 / 700))
    assert g0[B] == pytest.approx(math.log(1000 / 900))
    assert g1[B] == pytest.approx(math.log(700 / 630))
    # nothing measured valid: illegal (c at the root), invalid (d), no-op (e), stop
    for a in (C, D, E, STOP):
        assert np.isnan(g0[a])
    assert np.isnan(g1[[A, C, D, E, STOP]]).all() and np.isnan(g2).all()
    assert [np.flatnonzero(inv).tolist() for inv in res.invalid] == [[D], [D], [D]]
    data = to_bcdata([res])
    assert data.gains is not None and data.invalid is not None
    assert data.gains.shape == data.invalid.shape == (3, N_ACTIONS)
    # the learner's targets: invalid -> the invalid penalty, the no-op e -> 0, illegal c and
    # stop -> nothing
    t = q_targets(data, -1.0)
    assert t[0, D] == -1.0 and t[0, E] == 0.0 and t[0, A] == pytest.approx(math.log(1000 / 700))
    assert np.isnan(t[0, [C, STOP]]).all()
    sub = data.subset(np.array([1]))
    assert sub.gains is not None and sub.gains[0, B] == pytest.approx(math.log(700 / 630))
    assert sub.invalid is not None and sub.invalid[0, D]


def test_dataset_round_trip_keeps_gains(mdp: TransformMDP, tmp_path: Path) -> None:
    res = greedy_kernel(mdp, SPEC, progress=False)
    save_dataset(tmp_path / "g", [res], {"backend": "fake"})
    data, _ = load_dataset(tmp_path / "g")
    want = to_bcdata([res])
    assert data.gains is not None and data.invalid is not None
    np.testing.assert_array_equal(data.gains, want.gains)
    np.testing.assert_array_equal(data.invalid, want.invalid)


def test_a_data_set_without_gains_is_refused(tmp_path: Path) -> None:
    old = synthetic(2)
    np.savez_compressed(
        tmp_path / "old.npz",
        obs=old.obs,
        mask=old.mask,
        action=old.action,
        kernel=old.kernel,
        step=old.step,
    )
    (tmp_path / "old.json").write_text("{}")
    data, _ = load_dataset(tmp_path / "old")
    assert data.gains is None
    with pytest.raises(ValueError, match="recompute"):
        train_q(data, QConfig(trees=5), 0, None)


def synthetic(n_kernels: int, seed: int = 0, column: int = 0) -> BCData:
    """A rule over `column`: action 1 gains 0.3 (action 2 0.05) when it is positive, the other
    way round otherwise; the rest of the legal transforms lose 0.05 and action 3 breaks."""
    rng = np.random.default_rng(seed)
    n = n_kernels
    obs = rng.normal(size=(n, OBS_SIZE)).astype(np.float32)
    mask = np.zeros((n, N_ACTIONS), dtype=bool)
    mask[:, :8] = True
    mask[:, STOP] = True
    obs[:, LAYOUT.mask] = mask
    pos = obs[:, column] > 0
    gains = np.full((n, N_ACTIONS), np.nan, dtype=np.float32)
    gains[:, :8] = -0.05
    gains[:, 1] = np.where(pos, 0.3, 0.05)
    gains[:, 2] = np.where(pos, 0.05, 0.3)
    gains[:, 3] = np.nan
    invalid = np.zeros((n, N_ACTIONS), dtype=bool)
    invalid[:, 3] = True
    action = np.where(pos, 1, 2).astype(np.int64)
    kernel = np.asarray([f"k{i}" for i in range(n)])
    return BCData(obs, mask, action, kernel, np.zeros(n, np.int64), gains, invalid)


def test_learns_which_action_a_feature_favours() -> None:
    train, held = synthetic(300, seed=0), synthetic(100, seed=1)
    model = train_q(train, QConfig(trees=50), 0, None)
    pred = q_predict(model, held.obs, held.mask, threshold=0.005)
    assert (pred == held.action).mean() > 0.9
    # invalid children are learnt as the invalid penalty, not left out
    assert q_targets(train, -1.0)[0, 3] == -1.0
    assert (model.predict_gains(held.obs, held.mask)[:, 3] < -0.5).all()


def test_stops_when_no_predicted_gain_pays_its_step() -> None:
    data = synthetic(200)
    assert data.gains is not None
    data.gains[:, [1, 2]] -= 0.4  # now every transform loses
    model = train_q(data, QConfig(trees=20), 0, None)
    assert (q_predict(model, data.obs, data.mask, threshold=0.005) == STOP).all()
    # a low enough threshold takes the least bad transform, and stop masked forces one
    assert (q_predict(model, data.obs, data.mask, threshold=-1.0) != STOP).all()
    no_stop = data.mask.copy()
    no_stop[:, STOP] = False
    assert (q_predict(model, data.obs, no_stop, threshold=0.005) != STOP).all()


def test_switched_off_feature_groups_are_ignored() -> None:
    off = int(np.flatnonzero(~group_mask(["ptx"]))[0])  # a column outside the ptx group
    train, held = synthetic(300, seed=0, column=off), synthetic(100, seed=1, column=off)
    seen = train_q(train, QConfig(trees=30), 0, None)
    blind = train_q(train, QConfig(trees=30), 0, ["ptx"])
    assert (q_predict(seen, held.obs, held.mask, 0.005) == held.action).mean() > 0.9
    flipped = held.obs.copy()
    flipped[:, off] = -flipped[:, off]
    np.testing.assert_array_equal(
        blind.predict_gains(held.obs, held.mask), blind.predict_gains(flipped, held.mask)
    )
    assert not np.array_equal(
        seen.predict_gains(held.obs, held.mask), seen.predict_gains(flipped, held.mask)
    )


def test_policy_rolls_out_through_grpo_evaluate(mdp: TransformMDP) -> None:
    data = to_bcdata([greedy_kernel(mdp, SPEC, progress=False)])
    model = train_q(data, QConfig(trees=20, min_samples_leaf=1), 0, None)
    policy = QPolicy(model, threshold=0.005)
    ev = evaluate(mdp, [SPEC], policy, epoch=-1)  # type: ignore[arg-type]
    (ep,) = ev.episodes
    assert ep.actions[:2] == (NAMES[A], NAMES[B])
    assert ep.guarded_improvement == pytest.approx(630 / 1000 - 1)
    assert not policy.training
    actions, logps = policy.act(data.obs, data.mask, temperature=1.0)
    assert data.mask[np.arange(len(actions)), actions].all() and (logps <= 0).all()
