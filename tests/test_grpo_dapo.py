"""DAPO dynamic sampling: zero-spread groups are re-rolled hotter, then dropped."""

from __future__ import annotations

import torch

from agents.config import DynamicSamplingConfig
from agents.grpo import dynamic_sample
from agents.rollout import Episode, Step

G = 4


def _episode(kernel: int, ret: float, temperature: float) -> Episode:
    step = Step(
        obs=None, mask=None, action=20, logp=0.0, reward=ret, cycles_before=1.0,
        cycles_after=None, iqr=0.0, invalid=False, done=True, reason="stop", ptx_sha256=None,
    )  # fmt: skip
    return Episode(f"k{kernel}", 0, 1.0, [step], 1.0, temperature)


class Synthetic:
    """Kernel 0 always ties; kernel 1 spreads only from T >= 2; kernel 2 always spreads."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], float]] = []

    def __call__(self, idx: list[int], t: float) -> list[Episode]:
        self.calls.append((list(idx), t))
        out = []
        for k in idx:
            spread = k == 2 or (k == 1 and t >= 2.0)
            out += [_episode(k, float(g) if spread else 0.5, t) for g in range(G)]
        return out


def test_zero_spread_groups_are_resampled_hotter_then_dropped() -> None:
    sample = Synthetic()
    cfg = DynamicSamplingConfig(max_retries=3, temperature_factor=1.5, max_temperature=2.5)
    ds = dynamic_sample(sample, 3, G, 1.0, cfg)
    # first sampling: all three; then only the flat ones, at 1.5, 2.25, capped 2.5
    assert sample.calls == [([0, 1, 2], 1.0), ([0, 1], 1.5), ([0, 1], 2.25), ([0], 2.5)]
    assert abs(ds.first_zero_std - 2 / 3) < 1e-12
    assert ds.keep.tolist() == [False, True, True]
    assert ds.resampled == 5 and ds.recovered == 1
    # the recovered group's episodes replaced the flat ones and keep their temperature
    assert [e.temperature for e in ds.episodes[G : 2 * G]] == [2.25] * G
    assert ds.returns[1].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert torch.equal(ds.returns[0], torch.full((G,), 0.5, dtype=torch.float64))


def test_no_retries_drops_flat_groups_at_once() -> None:
    sample = Synthetic()
    ds = dynamic_sample(sample, 3, G, 1.0, DynamicSamplingConfig(max_retries=0))
    assert len(sample.calls) == 1 and ds.resampled == 0
    assert ds.keep.tolist() == [False, False, True]
