"""Progress on long work in one style: a tqdm bar, and a one-line summary logged at the end.

Searches, `chronos.optimize`, LOKO/LOFO folds, `chronos.validate` and the benchmarks all use
`Progress`, so they read alike: what is counted (states, measurements, folds) against its
total when one is known (tqdm's ETA), the best speed-up so far (chronos.fmt.speedup, where
above 1x is faster) and whatever else the caller adds. A user can then tell progress from a
hang. Bars go to stderr and only to a terminal; CHRONOS_PROGRESS=1 forces them on, 0 off. The
summary line is logged (logger `chronos.progress`) either way.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

from chronos.fmt import speedup

ENV = "CHRONOS_PROGRESS"
"""Environment variable: "1" forces bars on (even off a terminal), "0" off."""

log = logging.getLogger("chronos.progress")


def bars_enabled(progress: bool = True) -> bool | None:
    """tqdm's `disable` argument inverted: False (off), True (on), None (on a terminal only)."""
    env = os.environ.get(ENV, "").strip()
    if not progress or env == "0":
        return False
    if env == "1":
        return True
    return None


class Progress:
    """One bar: `update(n, improvement=...)` as work is done, `close()` logs the summary.

    `improvement` is best/base - 1 of a newly measured state (negative is faster); the bar
    keeps the best one. `label` says what the figures are (the backend: "emulated estimate").
    """

    def __init__(
        self,
        desc: str,
        *,
        unit: str,
        total: int | None = None,
        progress: bool = True,
        label: str = "",
        file: TextIO | None = None,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"a progress total must be >= 0, got {total}")
        enabled = bars_enabled(progress)
        self.desc, self.unit, self.label = desc, unit, label
        self.best: float | None = None
        self.fields: dict[str, Any] = {}
        self._n = 0  # tqdm does not count while disabled
        self._t0 = time.perf_counter()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=file or sys.stderr,
            disable=None if enabled is None else not enabled,
            leave=False,
            mininterval=0.5,
            dynamic_ncols=True,
        )
        self.summary_line: str | None = None

    @property
    def n(self) -> int:
        return self._n

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def update(self, n: int = 1, *, improvement: float | None = None, **fields: Any) -> None:
        """Count `n` more units; note a measured state's improvement and other figures."""
        if improvement is not None and math.isfinite(improvement):
            if self.best is None or improvement < self.best:
                self.best = improvement
        self.fields.update(fields)
        self._n += n
        self.bar.set_postfix(self._postfix(), refresh=False)
        self.bar.update(n)

    def _postfix(self) -> dict[str, Any]:
        out = {} if self.best is None else {"best": speedup(self.best, short=True)}
        out.update(self.fields)
        return out

    def close(self, outcome: str = "") -> str:
        """Close the bar and log one line: count, wall time, best speed-up, fields, outcome."""
        if self.summary_line is not None:
            return self.summary_line
        self.bar.close()
        parts = [f"{self.n} {self.unit}s", f"{self.elapsed_s:.1f} s"]
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        if self.best is not None:
            label = f" [{self.label}]" if self.label else ""
            parts.append(f"best {speedup(self.best)}{label}")
        if outcome:
            parts.append(outcome)
        self.summary_line = f"{self.desc}: {', '.join(parts)}"
        log.info(self.summary_line)
        return self.summary_line

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close("interrupted" if exc_type is not None else "")
