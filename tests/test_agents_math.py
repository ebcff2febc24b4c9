"""GRPO maths (docs/design.md §5.3-5.4) on hand-computed numbers; masked-distribution helpers."""

from __future__ import annotations

import math

import pytest
import torch

from agents.grpo_math import (
    approx_kl,
    clipped_surrogate,
    group_advantages,
    median_centered,
    zero_spread_fraction,
)
from agents.policy import entropy, kl_divergence, log_probs, masked_logits, sample
from agents.schedules import ForcedSteps, TemperatureSchedule


def test_median_baseline_per_kernel() -> None:
    r = torch.tensor([[1.0, 2.0, 10.0], [0.0, 0.0, 3.0]])
    assert median_centered(r).tolist() == [[-1.0, 0.0, 8.0], [0.0, 0.0, 3.0]]


def test_median_of_even_group_is_midpoint() -> None:
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert median_centered(r).tolist() == [[-1.5, -0.5, 0.5, 1.5]]


def test_global_normalization_zero_mean_unit_std() -> None:
    r = torch.tensor([[1.0, 2.0, 10.0], [0.0, 0.0, 3.0]], dtype=torch.float64)
    a = group_advantages(r)
    c = torch.tensor([-1.0, 0.0, 8.0, 0.0, 0.0, 3.0], dtype=torch.float64)
    expect = (c - c.mean()) / c.std(unbiased=False)
    assert torch.allclose(a.flatten(), expect)
    assert abs(float(a.mean())) < 1e-12
    assert abs(float(a.std(unbiased=False)) - 1.0) < 1e-6


def test_normalization_weights_episodes_by_length() -> None:
    r = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    lengths = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
    a = group_advantages(r, lengths)
    steps = torch.tensor([-0.5, 0.5, 0.5, 0.5], dtype=torch.float64)  # per-step list
    mean, std = steps.mean(), steps.std(unbiased=False)
    assert torch.allclose(a, ((torch.tensor([[-0.5, 0.5]]) - mean) / std).double())


def test_group_scale_weighs_small_and_large_spreads_alike() -> None:
    # kernel 0's sequences differ by 1%-scale returns, kernel 1's by 100x that
    r = torch.tensor([[0.00, 0.01, 0.02], [0.0, 1.0, 2.0]], dtype=torch.float64)
    a = group_advantages(r, scale="group")
    assert torch.allclose(a[0], a[1])  # same shape of returns, same advantages
    assert torch.allclose(a[1], (r[1] - 1.0) / r[1].std(unbiased=False))
    batch = group_advantages(r)
    assert float(batch[0].abs().max()) < 0.02 * float(batch[1].abs().max())  # swamped
    assert torch.count_nonzero(group_advantages(torch.ones(2, 4), scale="group")) == 0
    with pytest.raises(ValueError, match="advantage scale 'kernel'"):
        group_advantages(r, scale="kernel")
    from chronos.pipeline.config import to_config

    with pytest.raises(ValueError, match="grpo.adv_scale: 'kernel' is not one of batch, group"):
        to_config({"grpo": {"adv_scale": "kernel"}})  # at start-up, before any stage runs


def test_zero_spread_groups_give_zero_advantage() -> None:
    r = torch.ones(3, 4)
    assert torch.count_nonzero(group_advantages(r)) == 0
    assert zero_spread_fraction(r) == 1.0
    assert zero_spread_fraction(torch.tensor([[1.0, 1.0], [0.0, 1.0]])) == 0.5


def test_clipped_surrogate_matches_hand_computation() -> None:
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, clip = clipped_surrogate(logp, old, adv, 0.2)
    # min(r·A, clip(r)·A): 1.2 (clipped), -0.8 (clipped: min(-0.5, -0.8)), 2.2
    assert math.isclose(float(loss), -(1.2 - 0.8 + 2.2) / 3, rel_tol=1e-6)
    assert math.isclose(float(clip["region_mean"]), 2 / 3, rel_tol=1e-6)
    assert math.isclose(float(clip["low_mean"]), 1 / 3, rel_tol=1e-6)
    assert math.isclose(float(clip["high_mean"]), 1 / 3, rel_tol=1e-6)


def test_clip_higher_lets_a_positive_ratio_grow_further() -> None:
    """DAPO clip-higher: with eps_high=0.28 a ratio of 1.25 with A>0 is not clipped."""
    logp = torch.log(torch.tensor([1.25, 0.75])).requires_grad_()
    adv = torch.tensor([1.0, -1.0])
    loss, clip = clipped_surrogate(logp, torch.zeros(2), adv, 0.2, 0.28)
    assert math.isclose(float(loss.detach()), -(1.25 - 0.8) / 2, rel_tol=1e-6)
    assert float(clip["high_mean"]) == 0.0 and float(clip["low_mean"]) == 0.5
    loss.backward()
    assert float(logp.grad[0]) != 0.0 and float(logp.grad[1]) == 0.0
    _, sym = clipped_surrogate(logp.detach(), torch.zeros(2), adv, 0.2)
    assert float(sym["high_mean"]) == 0.5


def test_clipped_surrogate_gradient_vanishes_outside_trust_region() -> None:
    logp = torch.log(torch.tensor([1.5])).requires_grad_()
    loss, _ = clipped_surrogate(logp, torch.zeros(1), torch.tensor([1.0]), 0.2)
    loss.backward()
    assert float(logp.grad) == 0.0


def test_approx_kl_is_zero_for_equal_policies_and_positive_otherwise() -> None:
    lp = torch.log(torch.tensor([0.2, 0.5]))
    assert float(approx_kl(lp, lp)) == 0.0
    assert float(approx_kl(lp + 0.3, lp)) > 0


def test_exact_kl_and_entropy_on_masked_logits_are_nan_free() -> None:
    mask = torch.tensor([[True, True, False, True]])
    p = masked_logits(torch.tensor([[1.0, 2.0, 5.0, 0.0]], requires_grad=True), mask)
    q = masked_logits(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), mask)
    kl = kl_divergence(p, q)
    pp = torch.softmax(torch.tensor([1.0, 2.0, 0.0]), 0)
    expect = float((pp * (pp.log() - math.log(1 / 3))).sum())
    assert math.isclose(float(kl.detach()), expect, rel_tol=1e-5)
    (kl.sum() + entropy(p).sum()).backward()
    assert float(kl_divergence(q, q)) == 0.0
    assert math.isclose(float(entropy(q)), math.log(3), rel_tol=1e-6)


def test_kl_gradient_is_finite() -> None:
    raw = torch.tensor([[1.0, 2.0, 5.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[True, True, False, True]])
    q = masked_logits(torch.zeros(1, 4), mask)
    (kl_divergence(masked_logits(raw, mask), q) + entropy(masked_logits(raw, mask))).backward()
    assert torch.isfinite(raw.grad).all()
    assert float(raw.grad[0, 2]) == 0.0


def test_sampling_never_picks_masked_actions_and_temperature_flattens() -> None:
    mask = torch.tensor([[True, False, True]]).repeat(2000, 1)
    logits = masked_logits(torch.tensor([[2.0, 9.0, 0.0]]).repeat(2000, 1), mask)
    g = torch.Generator().manual_seed(0)
    a_cold = sample(logits, 0.5, g)
    a_hot = sample(logits, 3.0, g)
    assert not (a_cold == 1).any() and not (a_hot == 1).any()
    assert (a_hot == 2).float().mean() > (a_cold == 2).float().mean()
    assert sample(logits[:1], 0.0).item() == 0
    assert torch.isneginf(log_probs(logits[:1], 1.5)[0, 1])


def test_schedules() -> None:
    t = TemperatureSchedule(1.5, 0.5, 200, 200)
    assert t(0) == 1.5 and t(199) == 1.5 and t(200) == 0.5 and t(499) == 0.5
    lin = TemperatureSchedule(1.5, 0.5, 10, 20)
    assert lin(15) == pytest.approx(1.0)
    f = ForcedSteps(2, 50)
    assert f(0) == 2 and f(49) == 2 and f(50) == 0
    with pytest.raises(ValueError):
        TemperatureSchedule(1.5, 0.5, 20, 10)
