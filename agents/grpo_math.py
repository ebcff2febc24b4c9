"""The GRPO objective (docs/design.md §3.5, §5.3, §5.4): group advantages, clipped surrogate, KL.

Kept apart from the training loop so that each formula can be checked on hand-computed numbers.
"""

from __future__ import annotations

import torch


def median_centered(returns: torch.Tensor) -> torch.Tensor:
    """Episode returns [K, G] minus the median of their kernel's group (MC-GRPO baseline).

    The median is the midpoint of the two middle values for even G (torch.median would
    return the lower one), so a symmetric group centres on zero.
    """
    return returns - torch.quantile(returns, 0.5, dim=1, keepdim=True)


ADV_SCALES = ("batch", "group")


def group_advantages(
    returns: torch.Tensor,
    lengths: torch.Tensor | None = None,
    eps: float = 1e-8,
    scale: str = "batch",
) -> torch.Tensor:
    """GRPO advantages [K, G]: median-centred per kernel, then normalized.

    `scale="batch"` (the design): over the batch. Every step of an episode carries its
    episode's advantage, so the batch mean and (population) standard deviation are taken over
    steps: an episode counts `lengths[k, g]` times, as in the design's per-step list. Without
    `lengths` each episode counts once. `scale="group"` (GRPO's original form): each kernel's
    centred returns are divided by that kernel's own standard deviation, so a kernel whose
    sequences differ by 1% weighs as much as one whose differ by 60%.
    """
    if scale not in ADV_SCALES:
        raise ValueError(f"advantage scale {scale!r}; known: {', '.join(ADV_SCALES)}")
    centered = median_centered(returns.double())
    if scale == "group":
        std = returns.double().std(dim=1, unbiased=False, keepdim=True)
        return (centered / (std + eps)).to(returns.dtype)
    w = torch.ones_like(centered) if lengths is None else lengths.double()
    mean = (w * centered).sum() / w.sum()
    std = ((w * (centered - mean) ** 2).sum() / w.sum()).sqrt()
    return ((centered - mean) / (std + eps)).to(returns.dtype)


def zero_spread_fraction(returns: torch.Tensor, tol: float = 1e-12) -> float:
    """Fraction of kernel groups whose G returns are all equal (no learning signal)."""
    return float(zero_spread_groups(returns, tol).double().mean())


def zero_spread_groups(returns: torch.Tensor, tol: float = 1e-12) -> torch.Tensor:
    """bool [K]: groups whose G returns are all equal (their advantages are all zero)."""
    return (returns.max(dim=1).values - returns.min(dim=1).values) <= tol


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate loss (to minimize) with DAPO's clip-higher, and clip ratios.

    The ratio is clipped to [1 - eps_low, 1 + eps_high] (eps_high defaults to eps_low: the
    symmetric PPO clip). The ratios are TRL GRPOTrainer's: `low` counts steps whose ratio fell
    below 1 - eps_low with a negative advantage (the clip took their gradient), `high` those
    above 1 + eps_high with a positive one, `region` either.
    """
    hi = eps_low if eps_high is None else eps_high
    ratio = (logp - old_logp).exp()
    surr1 = ratio * advantages
    surr2 = ratio.clamp(1.0 - eps_low, 1.0 + hi) * advantages
    loss = -torch.min(surr1, surr2).mean()
    low = (ratio < 1.0 - eps_low) & (advantages < 0)
    high = (ratio > 1.0 + hi) & (advantages > 0)
    clip = {
        "low_mean": low.float().mean(),
        "high_mean": high.float().mean(),
        "region_mean": (low | high).float().mean(),
    }
    return loss, clip


def approx_kl(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    """k3 estimate of KL(old || new) from sampled actions, to watch update size (CleanRL)."""
    log_ratio = logp - old_logp
    return ((log_ratio.exp() - 1.0) - log_ratio).mean()
