"""chronos.progress: one bar style (count, total and ETA, best speed-up so far) and a summary."""

from __future__ import annotations

import io
import logging

import pytest

from chronos.progress import Progress, bars_enabled


def test_bar_shows_count_eta_and_the_best_speedup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONOS_PROGRESS", "1")
    out = io.StringIO()
    bar = Progress("exhaustive k", unit="state", total=10, label="emulated estimate", file=out)
    bar.update(2, improvement=-0.2, measured=5)
    bar.update(1, improvement=-0.1)  # worse than the best so far: the best stays
    bar.update(0, improvement=float("nan"))
    bar.bar.refresh()
    text = out.getvalue()
    assert "exhaustive k:" in text and "3/10" in text and "<" in text  # elapsed<remaining (ETA)
    assert "best=1.25x" in text and "measured=5" in text
    assert bar.n == 3 and bar.best == pytest.approx(-0.2)


def test_summary_is_one_logged_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="chronos.progress"):
        with Progress("loko bc", unit="fold", total=2, progress=False, label="cupy") as bar:
            bar.update(2, improvement=-0.5)
        line = bar.close("again")  # closing twice keeps the first summary
    assert [r.getMessage() for r in caplog.records] == [line]
    assert line.startswith("loko bc: 2 folds, ") and line.endswith(
        "best 2.00x (cycles -50.0%) [cupy]"
    )
    with caplog.at_level(logging.INFO, logger="chronos.progress"):
        with pytest.raises(KeyError), Progress("x", unit="item") as failing:
            raise KeyError("boom")
    assert failing.summary_line is not None and failing.summary_line.endswith("interrupted")


def test_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHRONOS_PROGRESS", raising=False)
    assert bars_enabled() is None and bars_enabled(False) is False
    monkeypatch.setenv("CHRONOS_PROGRESS", "0")
    assert bars_enabled() is False
    monkeypatch.setenv("CHRONOS_PROGRESS", "1")
    assert bars_enabled() is True and bars_enabled(False) is False
    with pytest.raises(ValueError, match=">= 0"):
        Progress("x", unit="item", total=-1)
