"""Behaviour cloning of greedy trajectories (docs/design.md §4): the MLP and a random forest.

Both learn state → greedy's action on the same observations (envs.spaces layout). Accuracy counts a
prediction right when the legal-masked argmax equals greedy's action; first-action accuracy
does the same on each kernel's initial state only. The held-out split is by kernel
(GroupShuffleSplit), so held-out figures measure generalization to unseen kernels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer

from agents.policy import PolicyMLP
from chronos.features import group_mask


@dataclass
class BCConfig:
    hidden: list[int] = field(default_factory=lambda: [128, 128])
    dropout: float = 0.1
    epochs: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    holdout_frac: float = 0.25
    forest_trees: int = 200
    forest_max_depth: int | None = None
    # Softens the clone so that GRPO's samples still explore: a BC policy trained to zero
    # loss puts ~all mass on greedy's action and every GRPO group has zero reward spread.
    label_smoothing: float = 0.1
    # The feature groups the learners see (chronos.features.FEATURE_GROUPS; None: all). The
    # others enter as 0: the switch of the feature ablation (docs/training.md).
    feature_groups: list[str] | None = None


@dataclass
class BCData:
    """Arrays of (state, greedy action) pairs; `kernel` groups rows, `step` is the position.

    `gains` and `invalid` (agents.search.GreedyTrace) are what greedy measured of every child
    of the row's state: the action-value learner's targets (None: a data set without them).
    """

    obs: np.ndarray  # (N, layout.obs_size) float32
    mask: np.ndarray  # (N, layout.n_actions) bool
    action: np.ndarray  # (N,) int64
    kernel: np.ndarray  # (N,) str
    step: np.ndarray  # (N,) int64
    gains: np.ndarray | None = None  # (N, layout.n_actions) float32, NaN: not measured valid
    invalid: np.ndarray | None = None  # (N, layout.n_actions) bool: the child was invalid

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, idx: np.ndarray) -> BCData:
        return BCData(
            self.obs[idx],
            self.mask[idx],
            self.action[idx],
            self.kernel[idx],
            self.step[idx],
            None if self.gains is None else self.gains[idx],
            None if self.invalid is None else self.invalid[idx],
        )

    def kernels(self) -> list[str]:
        return sorted(set(self.kernel.tolist()))

    def where_kernels(self, ids: set[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.kernel, list(ids)))


def kernel_split(data: BCData, holdout_frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, held-out) with whole kernels on one side."""
    if holdout_frac <= 0 or len(data.kernels()) < 2:
        return np.arange(len(data)), np.arange(0)
    gss = GroupShuffleSplit(n_splits=1, test_size=holdout_frac, random_state=seed)
    train, held = next(gss.split(data.obs, data.action, groups=data.kernel))
    return np.sort(train), np.sort(held)


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy on masked logits, label smoothing spread over *legal* actions only.

    torch's built-in smoothing puts mass on every class, and a masked (-inf) class makes that
    loss infinite.
    """
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target[:, None]).squeeze(-1)
    if smoothing <= 0:
        return nll.mean()
    safe = torch.where(mask, logp, torch.zeros_like(logp))
    uniform = -(safe * mask).sum(-1) / mask.sum(-1).clamp(min=1)
    return ((1.0 - smoothing) * nll + smoothing * uniform).mean()


def train_mlp(data: BCData, cfg: BCConfig, seed: int) -> PolicyMLP:
    """Cross-entropy on masked logits (illegal actions are -inf, so they get no mass)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_actions = data.mask.shape[1]
    policy = PolicyMLP(
        data.obs.shape[1],
        cfg.hidden,
        n_actions,
        cfg.dropout,
        n_features=data.obs.shape[1] - 2 * n_actions,
        feature_groups=cfg.feature_groups,
    )
    policy.fit_normalizer(data.obs)
    obs = torch.as_tensor(data.obs)
    mask = torch.as_tensor(data.mask)
    target = torch.as_tensor(data.action)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    policy.train()
    n = len(data)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            loss = masked_cross_entropy(
                policy(obs[idx], mask[idx]), target[idx], mask[idx], cfg.label_smoothing
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    policy.eval()
    return policy


@torch.no_grad()
def mlp_predict(policy: PolicyMLP, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    policy.eval()
    return policy(torch.as_tensor(obs), torch.as_tensor(mask)).argmax(-1).numpy()


def _keep_columns(obs: np.ndarray, keep: np.ndarray) -> np.ndarray:
    return obs * keep


def feature_keep(data: BCData, groups: list[str] | None) -> np.ndarray:
    """float32 (obs_size,): 1 for the observation columns a learner sees, 0 for the features
    of switched-off groups (`BCConfig.feature_groups`; None: all); mask and history stay."""
    keep = np.ones(data.obs.shape[1], dtype=np.float32)
    if groups is not None:
        keep[: data.obs.shape[1] - 2 * data.mask.shape[1]] = group_mask(groups)
    return keep


def train_forest(data: BCData, cfg: BCConfig, seed: int) -> Pipeline:
    """The random-forest baseline; switched-off feature groups are zeroed, as for the MLP."""
    keep = feature_keep(data, cfg.feature_groups)
    forest = make_pipeline(
        FunctionTransformer(_keep_columns, kw_args={"keep": keep}),
        RandomForestClassifier(
            n_estimators=cfg.forest_trees,
            max_depth=cfg.forest_max_depth,
            random_state=seed,
            n_jobs=1,
        ),
    )
    forest.fit(data.obs, data.action)
    return forest


def forest_predict(forest: Pipeline, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The forest's most probable *legal* action (class probabilities masked like the MLP's)."""
    proba = np.zeros(mask.shape, dtype=np.float64)
    proba[:, forest.classes_] = forest.predict_proba(obs)
    proba = np.where(mask, proba, -1.0)
    return proba.argmax(1)


def accuracy(pred: np.ndarray, data: BCData) -> dict[str, float]:
    """Accuracy over all states and over each kernel's first state (NaN when empty)."""
    hit = pred == data.action
    first = data.step == 0
    return {
        "accuracy": float(hit.mean()) if len(hit) else float("nan"),
        "first_action_accuracy": float(hit[first].mean()) if first.any() else float("nan"),
        "n": int(len(hit)),
        "n_first": int(first.sum()),
    }


@dataclass
class BCResult:
    policy: PolicyMLP  # trained on every kernel: the GRPO warm start and KL reference
    metrics: dict[str, float]  # {mlp,rf}/{train,heldout}/{accuracy,first_action_accuracy}
    train_kernels: list[str]
    heldout_kernels: list[str]


def run_bc(data: BCData, cfg: BCConfig, seed: int) -> BCResult:
    """Fit MLP and forest on a kernel split to report accuracies, then refit the MLP on all."""
    train_idx, held_idx = kernel_split(data, cfg.holdout_frac, seed)
    train, held = data.subset(train_idx), data.subset(held_idx)
    metrics: dict[str, float] = {}
    mlp = train_mlp(train, cfg, seed)
    forest = train_forest(train, cfg, seed)
    for name, predict in (
        ("mlp", lambda d: mlp_predict(mlp, d.obs, d.mask)),
        ("rf", lambda d: forest_predict(forest, d.obs, d.mask)),
    ):
        for split, d in (("train", train), ("heldout", held)):
            for k, v in accuracy(predict(d) if len(d) else np.zeros(0, int), d).items():
                metrics[f"{name}/{split}/{k}"] = v
    policy = train_mlp(data, cfg, seed) if len(held) else mlp
    return BCResult(policy, metrics, train.kernels(), held.kernels())
