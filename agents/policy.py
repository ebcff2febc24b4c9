"""The policy network (docs/design.md §4): an MLP over the observation with masked logits.

Illegal actions get a logit of -inf before the softmax, so they have probability exactly 0 and
can never be sampled; every distribution helper here (log-probs, entropy, KL) works on such
masked logits without producing NaNs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from chronos.features import FEATURE_GROUPS, N_FEATURES, group_mask
from envs.spaces import LAYOUT, Layout


def masked_logits(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Logits with illegal actions (mask False) set to -inf."""
    return logits.masked_fill(~mask, float("-inf"))


def log_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Log-softmax of masked logits at a temperature (-inf stays -inf)."""
    return torch.log_softmax(logits / temperature, dim=-1)


def entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy per row of a masked distribution; masked actions contribute 0, not NaN.

    -inf entries are replaced by 0 *before* they meet any arithmetic: `where` after the fact
    would give the right value but NaN gradients (0 * inf in the backward pass).
    """
    logp = log_probs(logits, temperature)
    legal = torch.isfinite(logp)
    safe = torch.where(legal, logp, torch.zeros_like(logp))
    return -(safe.exp() * safe * legal).sum(-1)


def kl_divergence(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Exact KL(p || q) per row for two distributions masked alike (21 actions: no estimator).

    NaN-free in value and gradient for the same reason as `entropy`.
    """
    logp = log_probs(logits_p)
    logq = log_probs(logits_q)
    legal = torch.isfinite(logp) & torch.isfinite(logq)
    zero = torch.zeros_like(logp)
    sp, sq = torch.where(legal, logp, zero), torch.where(legal, logq, zero)
    return (sp.exp() * (sp - sq) * legal).sum(-1)


def sample(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One action per row from the masked distribution at `temperature` (0 means argmax)."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


class PolicyMLP(nn.Module):
    """Linear(obs,128) → ReLU → Dropout → Linear(128,128) → ReLU → Dropout → Linear(128,actions).

    Sizes come from an envs.spaces.Layout (the default catalogue: 101 → 21). The observation is
    standardized by buffers (`obs_mean`, `obs_std`) fitted on the BC data, so a checkpoint
    carries its own input scaling. `feature_groups` (None: all) names the feature groups the
    net sees (chronos.features.FEATURE_GROUPS); the others enter as 0, the ablation's switch.
    """

    def __init__(
        self,
        obs_dim: int = LAYOUT.obs_size,
        hidden: Sequence[int] = (128, 128),
        n_actions: int = LAYOUT.n_actions,
        dropout: float = 0.1,
        n_features: int = LAYOUT.n_features,
        feature_groups: Sequence[str] | None = None,
    ):
        super().__init__()
        if obs_dim != n_features + 2 * n_actions:
            raise ValueError(
                f"obs_dim {obs_dim} != n_features {n_features} + 2 * n_actions {n_actions}"
            )
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.n_features = n_features
        self.hidden = tuple(hidden)
        self.dropout = dropout
        layers: list[nn.Module] = []
        width = obs_dim
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.feature_groups = None if feature_groups is None else tuple(feature_groups)
        keep = torch.ones(obs_dim)
        if self.feature_groups is not None and set(self.feature_groups) != set(FEATURE_GROUPS):
            if n_features != N_FEATURES:
                raise ValueError("feature_groups needs the built-in features")
            keep[:n_features] = torch.as_tensor(group_mask(self.feature_groups))
        self.register_buffer("feature_keep", keep)

    def fit_normalizer(self, obs: np.ndarray | torch.Tensor) -> None:
        """Standardize the feature part of the observation with these statistics.

        Mask and history bits are left as 0/1; constant features keep a scale of 1.
        """
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32)
        mean = torch.zeros(self.obs_dim)
        std = torch.ones(self.obs_dim)
        f = self.n_features
        mean[:f] = x[:, :f].mean(0)
        s = x[:, :f].std(0, unbiased=False)
        std[:f] = torch.where(s > 1e-6, s, torch.ones_like(s))
        self.obs_mean.copy_(mean)
        self.obs_std.copy_(std)

    def forward(self, obs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked logits (illegal actions -inf) for a batch of observations."""
        x = (obs - self.obs_mean) / self.obs_std * self.feature_keep
        return masked_logits(self.net(x), mask)

    @torch.no_grad()
    def act(
        self,
        obs: np.ndarray,
        mask: np.ndarray,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions and their log-probs at `temperature` for a batch of numpy observations."""
        logits = self(torch.as_tensor(obs), torch.as_tensor(mask))
        a = sample(logits, temperature, generator)
        t = temperature if temperature > 0 else 1.0
        lp = log_probs(logits, t).gather(-1, a[:, None]).squeeze(-1)
        return a.numpy(), lp.numpy()

    def arch(self) -> dict:
        """Constructor arguments, stored in checkpoints so they rebuild the same net."""
        return {
            "obs_dim": self.obs_dim,
            "hidden": list(self.hidden),
            "n_actions": self.n_actions,
            "dropout": self.dropout,
            "n_features": self.n_features,
            "feature_groups": None if self.feature_groups is None else list(self.feature_groups),
        }

    @classmethod
    def for_layout(
        cls,
        layout: Layout,
        hidden: Sequence[int] = (128, 128),
        dropout: float = 0.1,
        feature_groups: Sequence[str] | None = None,
    ) -> PolicyMLP:
        """A policy sized for an observation/action layout."""
        return cls(
            layout.obs_size, hidden, layout.n_actions, dropout, layout.n_features, feature_groups
        )
