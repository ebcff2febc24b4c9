"""Self-imitation for GRPO: the argmax policy keeps the best sequence known for each kernel.

GRPO optimizes the expected return of the policy *sampled at temperature T*, and each epoch
updates it on a batch of a few kernels. Neither protects what is evaluated and deployed, the
argmax on every training kernel. On the 194-kernel corpus (8 kernels per epoch, each seen
about 2.5 times) the argmax's mean return drifted from greedy's to below it, with 29 kernels
under greedy's return by the end; on the 20 default kernels sequences GRPO sampled in
training (4.4% better than greedy on one) never reached the argmax (docs/training.md,
"Self-imitation").

Self-imitation learning (Oh et al., "Self-Imitation Learning", ICML 2018) replays the agent's
own best past episodes and adds a cross-entropy term on their actions, weighted by how much
better they were than expected. Here the buffer holds one episode per kernel, the highest
return known: greedy's sequence to start with (the data set already measured it), replaced by
any rollout that beats it. The term fires only on the steps of those episodes where the best
known action does not lead the others by a margin (the paper's `(R - V)+` weight becomes "the
policy would not take the best known action"), so it corrects the argmax and leaves the
sampling distribution to the policy gradient elsewhere.

On a noisy backend the best of many measured episodes is biased up (the winner's curse); the
measurement store caches each state's cycles, so an episode's return is the same every time
it is replayed, but a lucky state stays lucky. `min_gain` keeps noise-level wins out.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agents.rollout import Episode
from envs.spaces import Layout

TIE = 1e-9
"""Returns closer than this are a tie (the same kernel reached in another order sums its step
rewards in another order); a tie keeps the incumbent, so greedy's sequence stays the one
imitated until a rollout really beats it."""


@dataclass
class Best:
    """One kernel's best known episode, as the policy saw it: the unforced legal mask."""

    ret: float
    obs: np.ndarray  # (T, obs_size) float32
    mask: np.ndarray  # (T, n_actions) bool
    action: np.ndarray  # (T,) int64
    source: str  # "greedy" or "grpo"


def sequence_return(reward: Any, base: float, final: float, decisions: int) -> float:
    """What the MDP pays for a valid sequence that took a kernel from `base` to `final` cycles
    in `decisions` steps (stop included): the reward's gain, less a step cost per decision.
    Both rewards telescope, so this is the sum of the rewards its steps earn."""
    return float(reward.gain(base, final, base) - reward.step_cost * decisions)


def greedy_returns(
    data: Any, kernels: Sequence[Mapping[str, Any]], reward: Any
) -> dict[str, float]:
    """`sequence_return` of greedy's sequence on each kernel that has rows in `data`
    (agents.bc.BCData: one row per decision, its stop included)."""
    out: dict[str, float] = {}
    for k in kernels:
        kid = str(k["kernel_id"])
        n = int(np.count_nonzero(data.kernel == kid))
        if n:
            out[kid] = sequence_return(reward, float(k["base_cycles"]), float(k["final_cycles"]), n)
    return out


class SelfImitationBuffer:
    """The highest-return episode known per kernel; a checkpoint stores `state()`."""

    def __init__(self, layout: Layout, min_gain: float = 0.0) -> None:
        self.layout = layout
        self.min_gain = min_gain
        self.best: dict[str, Best] = {}

    def __len__(self) -> int:
        return len(self.best)

    def offer(self, kernel_id: str, candidate: Best) -> bool:
        """Keep `candidate` if its return beats the kernel's best by more than `min_gain` (and
        more than a float tie, `TIE`)."""
        cur = self.best.get(kernel_id)
        if not math.isfinite(candidate.ret) or len(candidate.action) == 0:
            return False
        if cur is not None and candidate.ret <= cur.ret + max(self.min_gain, TIE):
            return False
        self.best[kernel_id] = candidate
        return True

    def offer_episodes(self, episodes: Iterable[Episode]) -> int:
        """Offer every rollout whose steps were all valid; returns how many replaced a best."""
        return sum(
            self.offer(e.kernel_id, b) for e in episodes if (b := self.from_episode(e)) is not None
        )

    def from_episode(self, e: Episode) -> Best | None:
        """An episode as a buffer entry, or None if a step was invalid (it never pays).

        Steps sampled under the forced-steps rule saw stop cleared in their mask (and in the
        mask block of their observation); the entry restores it, since the argmax it corrects
        is evaluated without the rule.
        """
        if not e.steps or any(s.invalid for s in e.steps):
            return None
        obs = np.stack([s.obs for s in e.steps]).astype(np.float32)
        mask = np.stack([s.mask for s in e.steps]).astype(bool)
        mask[:, self.layout.stop] = True
        obs[:, self.layout.mask] = mask
        action = np.asarray([s.action for s in e.steps], dtype=np.int64)
        return Best(e.ret, obs, mask, action, "grpo")

    def seed_greedy(
        self,
        data: Any,
        kernels: Sequence[Mapping[str, Any]],
        reward: Any,
        ids: Iterable[str] | None = None,
    ) -> int:
        """Start from greedy's sequences: `data` (agents.bc.BCData) holds every decision with
        its observation and unforced mask, `kernels` the data set summary's rows (base and
        final cycles). The return is what the MDP pays for that sequence: the reward's gain
        from base to final, less a step cost per decision (stop included)."""
        rows = {str(k["kernel_id"]): k for k in kernels}
        keep = set(rows) if ids is None else set(ids) & set(rows)
        n = 0
        for kid in sorted(keep):
            idx = np.flatnonzero(data.kernel == kid)
            if len(idx) == 0:
                continue
            idx = idx[np.argsort(data.step[idx], kind="stable")]
            k = rows[kid]
            ret = sequence_return(
                reward, float(k["base_cycles"]), float(k["final_cycles"]), len(idx)
            )
            best = Best(
                ret,
                data.obs[idx].astype(np.float32),
                data.mask[idx].astype(bool),
                data.action[idx].astype(np.int64),
                "greedy",
            )
            n += self.offer(kid, best)
        return n

    def arrays(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every buffered step as (obs, mask, action) tensors, kernels in sorted order."""
        if not self.best:
            return (
                torch.zeros((0, self.layout.obs_size)),
                torch.zeros((0, self.layout.n_actions), dtype=torch.bool),
                torch.zeros(0, dtype=torch.int64),
            )
        entries = [self.best[k] for k in sorted(self.best)]
        return (
            torch.as_tensor(np.concatenate([b.obs for b in entries])),
            torch.as_tensor(np.concatenate([b.mask for b in entries])),
            torch.as_tensor(np.concatenate([b.action for b in entries])),
        )

    def sources(self) -> Counter[str]:
        """How many kernels' best episode came from each source."""
        return Counter(b.source for b in self.best.values())

    def state(self) -> dict[str, dict[str, Any]]:
        return {k: asdict(b) for k, b in sorted(self.best.items())}

    def load_state(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        self.best = {
            k: Best(
                float(v["ret"]),
                np.asarray(v["obs"], dtype=np.float32),
                np.asarray(v["mask"], dtype=bool),
                np.asarray(v["action"], dtype=np.int64),
                str(v["source"]),
            )
            for k, v in state.items()
        }


def imitation_loss(
    logits: torch.Tensor, action: torch.Tensor, margin: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy on the buffered steps where the best known action does not lead.

    `logits` are the policy's masked logits (illegal actions at -inf). A step counts as off
    the path unless the best known action's logit beats every other by more than `margin`
    (0: unless it is the argmax); with a margin the next policy-gradient step cannot flip
    the argmax back by a hair. Returns the loss, the mean over the off-path steps only (the
    paper's prioritized replay samples by `(R - V)+`, i.e. the steps that still need it, so
    the push on one stray step does not fade as the others come back), and the share of
    steps off the path.
    """
    if len(action) == 0:
        zero = logits.sum() * 0.0
        return zero, zero.detach()
    chosen = logits.gather(-1, action[:, None]).squeeze(-1)
    others = logits.scatter(-1, action[:, None], -math.inf).max(dim=-1).values
    off = (chosen - others <= margin).detach()
    ce = F.cross_entropy(logits, action, reduction="none")
    return (ce * off).sum() / off.sum().clamp(min=1), off.double().mean()


def greedy_buffer(
    cfg: Any, mdp: Any, data: Any, kernels: Sequence[Mapping[str, Any]], ids: Iterable[str]
) -> SelfImitationBuffer:
    """The buffer a GRPO run on the kernels `ids` starts from (`cfg`: agents.config.
    SelfImitationConfig; `mdp` gives the layout and the reward): greedy's sequences when
    `cfg.seed_greedy`, else empty."""
    buffer = SelfImitationBuffer(mdp.layout, cfg.min_gain)
    if cfg.seed_greedy:
        buffer.seed_greedy(data, kernels, mdp.reward, ids)
    return buffer
