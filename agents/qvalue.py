"""Fitted action values from every child greedy measured (issue 27: learned policies that transfer).

Greedy measures every legal transform of each state it visits but BC learns only the one it
took. This learner regresses, from the state's observation and the action, the log speed-up
log(parent / child cycles) of every child greedy measured (agents.search.GreedyTrace `gains`),
so a training kernel contributes ~12 rows per state instead of one label, and the learner
knows how *bad* the other actions were, not just that they were not the best.

- Rows: [observation (switched-off feature groups zeroed, like `agents.bc.train_forest`),
  one-hot action] → gain. One ExtraTreesRegressor over all actions: trees split on the
  action columns where actions differ and share the state splits where they do not, and
  randomised thresholds keep 100 trees cheap to fit on the ~10^4 rows of all 194 kernels.
- Invalid children (the transform broke the kernel) are rows too, with target
  `QConfig.invalid_gain`, by default the MDP's own invalid penalty (envs.constants
  INVALID_PENALTY, -1.0): that is what taking one costs an episode (it ends there with that
  reward), and a NaN would leave the learner blind to the commonest way a rollout goes wrong.
  No-op children (legal, measured, but the transform left the code unchanged: NaN gain and
  not invalid in the trace, since greedy measures every legal transform of a state it
  records) are rows with target 0, which is what they measure: without them the regressor
  never sees those (state, action) pairs and may rank a no-op above a real gain (the fake
  catalogue of tests/test_agents_qvalue.py did exactly that). Illegal and stop columns have
  no row.
- Acting: the legal action with the highest predicted gain, or stop when none exceeds
  `QConfig.stop_threshold` (default the MDP's step cost, so a step whose predicted gain does
  not pay for itself is not taken).

`QPolicy` wraps a fitted model in the interface rollouts need (agents.rollout.RolloutPolicy)
(`act`, `training`, `eval`, `train`), so `agents.grpo.evaluate` rolls it out unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.ensemble import ExtraTreesRegressor

from agents.bc import BCData, feature_keep
from envs.constants import INVALID_PENALTY, STEP_COST


@dataclass
class QConfig:
    """The action-value learner (values: conf/config.yaml `q:`)."""

    trees: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 2
    # A predicted gain must exceed this to be taken (default: the MDP's step cost).
    stop_threshold: float = STEP_COST
    # Target of a child whose step was invalid (default: the MDP's invalid penalty).
    invalid_gain: float = INVALID_PENALTY


def q_targets(data: BCData, invalid_gain: float) -> np.ndarray:
    """(N, n_actions) targets: measured gains, `invalid_gain` where the child was invalid, 0
    for a legal transform that was a no-op, NaN where nothing was learnt (illegal, stop)."""
    if data.gains is None or data.invalid is None:
        raise ValueError(
            "this greedy data set has no per-child gains (it predates them): recompute it "
            "(greedy.recompute=true) to train the action-value learner"
        )
    target = np.where(data.invalid, np.float32(invalid_gain), data.gains).astype(np.float32)
    noop = np.asarray(data.mask, dtype=bool) & np.isnan(target)
    noop[:, -1] = False  # stop (the last action) is never measured
    return np.where(noop, np.float32(0.0), target)


class QModel:
    """A fitted gain regressor and how it reads observations (the feature-group mask)."""

    def __init__(self, reg: ExtraTreesRegressor, keep: np.ndarray, n_actions: int, stop: int):
        self.reg, self.keep, self.n_actions, self.stop = reg, keep, n_actions, stop

    def rows(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Regressor inputs: the masked observation and the action one-hot."""
        onehot = np.zeros((len(actions), self.n_actions), dtype=np.float32)
        onehot[np.arange(len(actions)), actions] = 1.0
        return np.concatenate([obs * self.keep, onehot], axis=1)

    def predict_gains(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(N, n_actions) predicted gains of the legal transforms; -inf elsewhere (stop too)."""
        legal = np.asarray(mask, dtype=bool).copy()
        legal[:, self.stop] = False
        out = np.full(legal.shape, -np.inf)
        r, a = np.nonzero(legal)
        if len(r):
            out[r, a] = self.reg.predict(self.rows(np.asarray(obs, np.float32)[r], a))
        return out


def q_regressor(cfg: QConfig, seed: int) -> ExtraTreesRegressor:
    """The unfitted regressor Q is, with `cfg`'s trees, depth and leaf size."""
    return ExtraTreesRegressor(
        n_estimators=cfg.trees,
        max_depth=cfg.max_depth,
        min_samples_leaf=cfg.min_samples_leaf,
        random_state=seed,
        n_jobs=1,
    )


def train_q(data: BCData, cfg: QConfig, seed: int, feature_groups: list[str] | None) -> QModel:
    """Fit on every measured (state, action) pair of `data`; `feature_groups` as
    `BCConfig.feature_groups` (None: all; the others enter as 0)."""
    target = q_targets(data, cfg.invalid_gain)
    n_actions = data.mask.shape[1]
    keep = feature_keep(data, feature_groups)
    reg = q_regressor(cfg, seed)
    model = QModel(reg, keep, n_actions, n_actions - 1)
    r, a = np.nonzero(~np.isnan(target))
    if len(r) == 0:
        raise ValueError("no measured children to learn from")
    reg.fit(model.rows(data.obs[r], a), target[r, a])
    return model


def q_predict(model: QModel, obs: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
    """The legal action with the highest predicted gain, or stop where none exceeds
    `threshold` (and stop is legal): what `QPolicy` does at temperature 0."""
    gains = model.predict_gains(obs, mask)
    best = gains.argmax(1)
    top = gains[np.arange(len(best)), best]
    stop_ok = np.asarray(mask, dtype=bool)[:, model.stop]
    return np.where(stop_ok & ~(top > threshold), model.stop, best)


class QPolicy:
    """The rollout interface of `PolicyMLP` over a QModel: argmax of predicted gains at
    temperature 0, a softmax over them (stop valued at the threshold) above it."""

    training = False

    def __init__(self, model: QModel, threshold: float = STEP_COST) -> None:
        self.model, self.threshold = model, threshold

    def eval(self) -> QPolicy:
        self.training = False
        return self

    def train(self, mode: bool = True) -> QPolicy:
        self.training = mode
        return self

    def values(self, obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Predicted gains, stop at the threshold, -inf where illegal."""
        v = self.model.predict_gains(obs, mask)
        m = np.asarray(mask, dtype=bool)
        v[:, self.model.stop] = np.where(m[:, self.model.stop], self.threshold, -np.inf)
        return v

    def act(
        self,
        obs: np.ndarray,
        mask: np.ndarray,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Actions and their log-probs under softmax(values / T) (T=1 at temperature 0)."""
        v = torch.as_tensor(self.values(obs, mask))
        t = temperature if temperature > 0 else 1.0
        logp = torch.log_softmax(v / t, dim=-1)
        if temperature > 0:
            a = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        else:
            a = torch.as_tensor(q_predict(self.model, obs, mask, self.threshold))
        lp = logp.gather(-1, a[:, None]).squeeze(-1)
        return a.numpy(), lp.numpy().astype(np.float32)
