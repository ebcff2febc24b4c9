"""benchmarks/stop_safety.py's tally: what a Q gate lets through of BC's first moves."""

from __future__ import annotations

import pytest

from tests.helpers.scripts import load_script


def _row(bc_gain: float, q_pred: float, q_gain: float = 0.0, best: float = 0.1) -> dict:
    return {"bc_gain": bc_gain, "q_pred": q_pred, "q_gain": q_gain, "best_gain": best}


def test_the_gate_counts_harm_let_through_and_good_moves_stopped() -> None:
    safety = load_script("benchmarks/stop_safety.py", "stop_safety_script")
    rows = [
        _row(0.10, q_pred=0.20),  # good, Q agrees: kept by every gate
        _row(0.10, q_pred=-0.01),  # good, Q doubts it: stopped by the gates
        _row(-0.30, q_pred=0.003),  # harmful, Q mildly hopeful: through at 0, not at step cost
        _row(-0.30, q_pred=-0.20, q_gain=0.05),  # harmful, Q sees it: stopped
        _row(0.0, q_pred=0.0),  # BC stops (or a no-op): nothing either way
    ]
    by = {r["policy"]: r for r in safety.tabulate(rows, step_cost=0.005)}
    assert [by[p]["harmful"] for p in by] == [2, 1, 0, 0]
    ungated, at_zero, at_cost, q_alone = by.values()
    assert ungated["good_kept"] == "2 of 2" and at_zero["good_kept"] == "1 of 2"
    assert at_cost["good_kept"] == "1 of 2" and q_alone["good_kept"] is None
    assert ungated["gain_share_of_bc"] == pytest.approx(1.0)
    assert at_zero["gain_share_of_bc"] == pytest.approx(0.5)
    assert q_alone["gain_share_of_bc"] == pytest.approx(0.25)
    # net share of the best first move counts the harm: (0.1 + 0.1 - 0.6) / 0.5
    assert ungated["gain_share_of_best"] == pytest.approx(-0.8)
    assert at_cost["gain_share_of_best"] == pytest.approx(0.2)
    lines = safety.markdown(list(by.values()), "emulated estimate", "family")
    assert any(line.startswith("| BC, Q > 0 | 5 | 1 | 1 of 2 | 50% |") for line in lines)
