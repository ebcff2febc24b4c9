"""Self-imitation (agents/self_imitation.py): the buffer keeps each kernel's best known episode
and the GRPO update brings the argmax back onto it."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from agents.bc import BCData
from agents.config import GRPOConfig, SelfImitationConfig
from agents.grpo import GRPOState, update
from agents.policy import PolicyMLP
from agents.rollout import Episode, Step
from agents.self_imitation import SelfImitationBuffer, greedy_buffer, imitation_loss
from envs.reward import make_reward
from envs.spaces import LAYOUT

STOP = LAYOUT.stop


def _obs(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    obs = rng.normal(size=LAYOUT.obs_size).astype(np.float32)
    obs[LAYOUT.mask] = mask
    return obs


def _episode(kid: str, actions: list[int], rewards: list[float], seed: int = 0, **kw) -> Episode:
    rng = np.random.default_rng(seed)
    e = Episode(kid, 0, 100.0)
    for t, (a, r) in enumerate(zip(actions, rewards, strict=True)):
        mask = np.ones(LAYOUT.n_actions, bool)
        if kw.get("forced") and t < 2:
            mask[STOP] = False
        e.steps.append(
            Step(_obs(rng, mask), mask, a, -1.0, r, 100.0, 90.0, 0.0,
                 kw.get("invalid", False), a == STOP, "applied", None)
        )  # fmt: skip
    return e


def test_buffer_keeps_the_highest_return_per_kernel() -> None:
    buf = SelfImitationBuffer(LAYOUT, min_gain=0.01)
    assert buf.offer_episodes([_episode("k", [0, STOP], [0.10, -0.005])]) == 1
    # not better by more than min_gain, invalid, or another kernel
    assert buf.offer_episodes([_episode("k", [1, STOP], [0.11, -0.005])]) == 0
    assert buf.offer_episodes([_episode("k", [2, STOP], [0.5, -1.0], invalid=True)]) == 0
    assert buf.offer_episodes([_episode("k", [3, 4, STOP], [0.2, 0.1, -0.005])]) == 1
    assert buf.offer_episodes([_episode("j", [STOP], [-0.005])]) == 1
    # the same return in another order (float sums differ in the last bit) is a tie
    tie = SelfImitationBuffer(LAYOUT)
    tie.offer_episodes([_episode("t", [0, 1, 2, STOP], [0.1, 0.2, 0.3, -0.005])])
    assert tie.offer_episodes([_episode("t", [2, 1, 0, STOP], [0.3, 0.2, 0.1, -0.005])]) == 0
    assert list(tie.best["t"].action) == [0, 1, 2, STOP]
    assert list(buf.best["k"].action) == [3, 4, STOP]
    assert buf.best["k"].ret == pytest.approx(0.295)
    assert buf.sources() == {"grpo": 2}
    obs, mask, act = buf.arrays()
    assert obs.shape == (4, LAYOUT.obs_size) and mask.shape == (4, LAYOUT.n_actions)
    assert act.tolist() == [STOP, 3, 4, STOP]  # kernels in sorted order: j, then k


def test_forced_steps_mask_is_restored() -> None:
    """A step sampled with stop masked is imitated under the mask the argmax is judged by."""
    buf = SelfImitationBuffer(LAYOUT)
    e = _episode("k", [0, 1, STOP], [0.1, 0.1, -0.005], forced=True)
    assert not e.steps[0].mask[STOP]
    buf.offer_episodes([e])
    b = buf.best["k"]
    assert b.mask[:, STOP].all()
    assert (b.obs[:, LAYOUT.mask] == b.mask).all()
    np.testing.assert_array_equal(
        b.obs[:, LAYOUT.features], np.stack([s.obs for s in e.steps])[:, LAYOUT.features]
    )


def test_seed_greedy_return_is_what_the_mdp_pays() -> None:
    rng = np.random.default_rng(0)
    n = LAYOUT.n_actions
    masks = np.ones((3, n), bool)
    data = BCData(
        obs=np.stack([_obs(rng, m) for m in masks]),
        mask=masks,
        action=np.asarray([STOP, 5, 2]),
        kernel=np.asarray(["a", "a", "a"]),
        step=np.asarray([2, 1, 0]),  # rows out of order: the buffer sorts them by step
    )
    rows = [{"kernel_id": "a", "base_cycles": 200.0, "final_cycles": 150.0},
            {"kernel_id": "b", "base_cycles": 10.0, "final_cycles": 10.0}]  # fmt: skip
    mdp = SimpleNamespace(layout=LAYOUT, reward=make_reward("log_speedup", step_cost=0.005))
    buf = greedy_buffer(SelfImitationConfig(), mdp, data, rows, ["a", "b"])
    assert set(buf.best) == {"a"}  # "b" has no rows in the data set
    assert list(buf.best["a"].action) == [2, 5, STOP]
    assert buf.best["a"].ret == pytest.approx(math.log(200 / 150) - 3 * 0.005)
    assert buf.best["a"].source == "greedy"
    linear = SimpleNamespace(layout=LAYOUT, reward=make_reward("linear_speedup", step_cost=0.005))
    buf = greedy_buffer(SelfImitationConfig(), linear, data, rows, ["a"])
    assert buf.best["a"].ret == pytest.approx(0.25 - 3 * 0.005)
    off = greedy_buffer(SelfImitationConfig(seed_greedy=False), mdp, data, rows, ["a"])
    assert len(off) == 0


def test_state_round_trips_through_grpo_state() -> None:
    buf = SelfImitationBuffer(LAYOUT)
    buf.offer_episodes([_episode("k", [0, STOP], [0.1, -0.005]), _episode("j", [STOP], [-0.005])])
    state = GRPOState(imitation=buf.state())
    again = SelfImitationBuffer(LAYOUT)
    again.load_state(GRPOState(**vars(state)).imitation)
    for a, b in zip(buf.arrays(), again.arrays(), strict=True):
        assert torch.equal(a, b)
    assert again.best["k"].ret == buf.best["k"].ret


def test_loss_fires_only_where_the_argmax_leaves_the_path() -> None:
    logits = torch.tensor([[2.0, 0.0, -math.inf], [0.0, 3.0, 1.0]])
    on = imitation_loss(logits, torch.tensor([0, 1]))
    assert float(on[0]) == 0.0 and float(on[1]) == 0.0
    loss, off = imitation_loss(logits, torch.tensor([0, 2]))
    assert float(off) == 0.5
    expected = -torch.log_softmax(logits[1], -1)[2]  # the mean over the one off-path step
    assert float(loss) == pytest.approx(float(expected))
    # with a margin, a lead of 2 logits is not enough where 3 are asked for
    _, off = imitation_loss(logits, torch.tensor([0, 1]), margin=3.0)
    assert float(off) == 1.0
    _, off = imitation_loss(logits, torch.tensor([0, 1]), margin=1.5)
    assert float(off) == 0.0


@pytest.mark.parametrize("with_episodes", [False, True])
def test_update_brings_the_argmax_back_onto_the_best_path(with_episodes: bool) -> None:
    """A policy whose argmax disagrees with the buffer on most steps agrees after a few
    updates; the policy-gradient part (its own episodes) does not stop it."""
    torch.manual_seed(0)
    policy = PolicyMLP(dropout=0.0)
    ref = PolicyMLP(dropout=0.0)
    buf = SelfImitationBuffer(LAYOUT)
    rng = np.random.default_rng(1)
    for k in range(12):
        acts = [int(a) for a in rng.integers(0, STOP, size=3)] + [STOP]
        buf.offer_episodes([_episode(f"k{k}", acts, [0.1, 0.1, 0.1, -0.005], seed=k)])
    obs, mask, act = buf.arrays()
    with torch.no_grad():
        _, off0 = imitation_loss(policy(obs, mask), act)
    assert float(off0) > 0.5
    cfg = GRPOConfig(lr=3e-3)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    episodes = [_episode("x", [0, STOP], [0.1, -0.005], seed=99)] if with_episodes else []
    for e in episodes:
        for s in e.steps:
            with torch.no_grad():
                logits = policy(torch.as_tensor(s.obs)[None], torch.as_tensor(s.mask)[None])
            s.logp = float(torch.log_softmax(logits, -1)[0, s.action])
    adv = torch.ones(len(episodes))
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        losses = update(policy, ref, opt, episodes, adv, 1.0, cfg, gen, buf)
    assert "losses/imitation" in losses
    with torch.no_grad():
        _, off = imitation_loss(policy(obs, mask), act)
    assert float(off) == 0.0
    _, weak = imitation_loss(policy(obs, mask), act, cfg.self_imitation.margin)
    assert float(weak) < 0.1  # most steps also lead by the margin
    off_cfg = GRPOConfig(self_imitation=SelfImitationConfig(coef=0.0))
    assert "losses/imitation" not in update(policy, ref, opt, episodes, adv, 1.0, off_cfg, gen, buf)


def test_promotion_score_is_the_return_not_the_speedup() -> None:
    """A step that gains less than its cost raises the log speed-up but lowers the return;
    the gate compares returns, so a policy that learns to drop it is promoted."""
    from agents.grpo import EvalResult

    def ep(final: float, n: int) -> Episode:
        e = _episode("k", [0] * n + [STOP], [0.0] * n + [-0.005])
        e.final_cycles = final
        gain = math.log(100.0 / final) if n else 0.0
        for s in e.steps[:n]:
            s.reward = gain / n - 0.005
        return e

    tiny_step = EvalResult(0, [ep(99.8, 1)])  # 0.2% faster for one 0.5% step
    stop = EvalResult(0, [ep(100.0, 0)])
    assert tiny_step.episodes[0].log_speedup > stop.episodes[0].log_speedup
    assert stop.score > tiny_step.score
    assert stop.score == pytest.approx(-0.005)
