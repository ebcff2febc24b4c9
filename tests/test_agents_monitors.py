"""Reward-hacking monitors (docs/design.md §6) raise alarms and stay quiet on healthy epochs."""

from __future__ import annotations

import numpy as np

from agents.monitors import MonitorConfig, check
from agents.rollout import Episode, Step
from chronos.transforms import STOP
from envs.spaces import N_ACTIONS, OBS_SIZE


def step(
    action: int, before: float, after: float | None, invalid: bool = False, iqr: float = 0.0
) -> Step:
    return Step(
        np.zeros(OBS_SIZE, np.float32),
        np.ones(N_ACTIONS, bool),
        action,
        0.0,
        0.0,
        before,
        after,
        iqr,
        invalid,
        False,
        None,
        None,
    )


def episode(*steps: Step) -> Episode:
    return Episode("k", 0, 100.0, list(steps), 100.0)


def test_healthy_epoch_has_no_alarm() -> None:
    eps = [episode(step(a % 5, 100, 80), step(STOP, 80, None)) for a in range(30)]
    rep = check(eps, MonitorConfig())
    assert rep.alarms == []
    assert rep.values["monitors/alarm_always_stop"] == 0.0


def test_always_stop() -> None:
    rep = check([episode(step(STOP, 100, None)) for _ in range(10)], MonitorConfig())
    assert rep.values["monitors/alarm_always_stop"] == 1.0
    assert any("always-stop" in a for a in rep.alarms)


def test_action_collapse() -> None:
    eps = [episode(step(3, 100, 90), step(4, 90, 80)) for _ in range(20)]
    rep = check(eps, MonitorConfig())
    assert rep.values["monitors/alarm_collapse"] == 1.0


def test_invalid_step_exploitation() -> None:
    eps = [episode(step(a % 7, 100, None, invalid=True)) for a in range(10)]
    assert check(eps, MonitorConfig()).values["monitors/alarm_invalid"] == 1.0


def test_noise_exploitation_uses_measured_iqr() -> None:
    # 2-cycle gains on a 100-cycle kernel whose IQR is 5 cycles: all gain is noise.
    eps = [episode(step(a % 7, 100, 98, iqr=5.0)) for a in range(10)]
    rep = check(eps, MonitorConfig())
    assert rep.values["monitors/alarm_noise"] == 1.0
    assert rep.values["monitors/noise_gain_share"] == 1.0
    big = [episode(step(a % 7, 100, 70, iqr=5.0)) for a in range(10)]
    assert check(big, MonitorConfig()).values["monitors/alarm_noise"] == 0.0
