"""Reward-hacking monitors (docs/design.md §6) computed from an epoch's episodes, raised as alarms.

Each monitor is a number logged every epoch (`monitors/*`) and an alarm (`monitors/alarm_*`
= 1) when it crosses its threshold; alarms are also returned as messages for the run log.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from agents.rollout import Episode
from chronos.transforms import STOP


@dataclass
class MonitorConfig:
    always_stop_rate: float = 0.9  # episodes whose first action is stop
    collapse_top2_share: float = 0.9  # share of transform steps taken by the two commonest
    min_transform_steps: int = 20  # collapse is judged only on at least this many steps
    invalid_rate: float = 0.2  # invalid steps / steps
    noise_share: float = 0.25  # share of positive gain from steps inside the noise band
    noise_rel: float = 0.01  # docs/design.md §6.3: gains under 1% count as noise even with zero IQR


@dataclass
class MonitorReport:
    values: dict[str, float]
    alarms: list[str]


def check(episodes: Sequence[Episode], cfg: MonitorConfig) -> MonitorReport:
    steps = [s for e in episodes for s in e.steps]
    n_eps = max(len(episodes), 1)
    n_steps = max(len(steps), 1)
    first_stop = sum(1 for e in episodes if e.steps and e.steps[0].action == STOP) / n_eps
    transforms = Counter(s.action for s in steps if s.action != STOP)
    n_tr = sum(transforms.values())
    top2 = sum(c for _, c in transforms.most_common(2)) / n_tr if n_tr else 0.0
    invalid = sum(s.invalid for s in steps) / n_steps
    gain_total = 0.0
    gain_noise = 0.0
    n_noise = 0
    n_gain = 0
    for s in steps:
        if s.cycles_after is None or s.cycles_after >= s.cycles_before:
            continue
        gain = math.log(s.cycles_before / s.cycles_after)
        gain_total += gain
        n_gain += 1
        band = max(s.iqr, cfg.noise_rel * s.cycles_before)
        if s.cycles_before - s.cycles_after < band:
            gain_noise += gain
            n_noise += 1
    noise_share = gain_noise / gain_total if gain_total > 0 else 0.0
    values = {
        "monitors/first_step_stop_rate": first_stop,
        "monitors/top2_action_share": top2,
        "monitors/invalid_step_rate": invalid,
        "monitors/noise_gain_share": noise_share,
        "monitors/noise_step_frac": n_noise / n_gain if n_gain else 0.0,
    }
    collapse_names = ", ".join(str(a) for a, _ in transforms.most_common(2))
    checks = {
        "always_stop": (
            first_stop > cfg.always_stop_rate,
            f"always-stop: {first_stop:.0%} of {len(episodes)} episodes stop at step 0",
        ),
        "collapse": (
            n_tr >= cfg.min_transform_steps and top2 > cfg.collapse_top2_share,
            f"collapse: actions {collapse_names} take {top2:.0%} of {n_tr} transform steps",
        ),
        "invalid": (
            invalid > cfg.invalid_rate,
            f"invalid-step exploitation: {invalid:.0%} of {len(steps)} steps are invalid",
        ),
        "noise": (
            noise_share > cfg.noise_share,
            f"noise exploitation: {noise_share:.0%} of the gain ({n_noise} of {n_gain} gaining"
            " steps) is within measurement noise",
        ),
    }
    alarms = [msg for on, msg in checks.values() if on]
    for key, (on, _) in checks.items():
        values[f"monitors/alarm_{key}"] = float(on)
    return MonitorReport(values, alarms)
