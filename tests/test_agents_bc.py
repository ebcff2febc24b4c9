"""BC MLP and random forest on synthetic data, and the masked cross-entropy."""

from __future__ import annotations

import numpy as np
import torch

from agents.bc import BCConfig, BCData, accuracy, masked_cross_entropy, run_bc
from envs.spaces import LAYOUT, N_ACTIONS, STOP
from envs.spaces import OBS_SIZE as OBS_DIM


def synthetic(n_kernels: int = 6, steps: int = 4, seed: int = 0) -> BCData:
    """A learnable rule: the action is the argmax of features 0-2 (when legal), else stop."""
    rng = np.random.default_rng(seed)
    n = n_kernels * steps
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    mask = np.ones((n, N_ACTIONS), dtype=bool)
    mask[rng.random((n, 21)) < 0.2] = False
    mask[:, :3] = True
    mask[:, STOP] = True
    obs[:, LAYOUT.mask] = mask
    action = obs[:, :3].argmax(1).astype(np.int64)
    kernel = np.repeat([f"k{i}" for i in range(n_kernels)], steps)
    step = np.tile(np.arange(steps), n_kernels)
    return BCData(obs, mask, action, kernel, step)


def test_bc_and_forest_learn_a_rule() -> None:
    data = synthetic(n_kernels=80, steps=5)
    cfg = BCConfig(epochs=60, forest_trees=50, holdout_frac=0.25)
    res = run_bc(data, cfg, seed=0)
    m = res.metrics
    assert m["mlp/train/accuracy"] > 0.9
    assert m["mlp/heldout/accuracy"] > 0.7
    assert m["rf/heldout/accuracy"] > 0.7
    # one first state per held-out kernel; the rule is learnt there as well as elsewhere
    assert m["mlp/heldout/n_first"] == len(res.heldout_kernels) == 20
    assert m["mlp/heldout/first_action_accuracy"] >= 0.7
    assert m["mlp/train/first_action_accuracy"] > 0.9
    assert not set(res.train_kernels) & set(res.heldout_kernels)


def test_policy_never_predicts_masked_action() -> None:
    data = synthetic(n_kernels=10)
    res = run_bc(data, BCConfig(epochs=5, forest_trees=5), seed=1)
    mask = np.zeros((4, N_ACTIONS), dtype=bool)
    mask[:, 7] = True
    a, lp = res.policy.act(data.obs[:4], mask, temperature=1.0)
    assert (a == 7).all() and np.allclose(lp, 0.0)


def test_accuracy_counts_first_states() -> None:
    data = synthetic(n_kernels=2, steps=3)
    pred = data.action.copy()
    pred[data.step == 0] = STOP
    acc = accuracy(pred, data)
    assert acc["first_action_accuracy"] == 0.0 and acc["n_first"] == 2
    assert abs(acc["accuracy"] - 4 / 6) < 1e-9 or data.action[data.step == 0].tolist() == [
        STOP,
        STOP,
    ]


def test_masked_cross_entropy_smoothing_is_finite_and_legal_only() -> None:
    logits = torch.tensor([[2.0, 0.0, float("-inf")]])
    mask = torch.tensor([[True, True, False]])
    target = torch.tensor([0])
    plain = masked_cross_entropy(logits, target, mask, 0.0)
    smooth = masked_cross_entropy(logits, target, mask, 0.1)
    lp = torch.log_softmax(torch.tensor([2.0, 0.0]), 0)
    assert torch.isclose(plain, -lp[0])
    assert torch.isclose(smooth, 0.9 * -lp[0] + 0.1 * -(lp.mean()))
