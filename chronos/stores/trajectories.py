"""Append-only SQLite log of every rollout step (training, evaluation, greedy search).

The log is the run's ground truth for what the agent tried, so it must survive crashes and
resumes untouched: WAL journalling for durability and concurrent readers, and triggers that
abort any UPDATE or DELETE. A resumed run opens a new *attempt*; epochs it re-runs after the
last checkpoint are logged again under the new attempt, and the `steps_current` view keeps only
the latest attempt of each (phase, epoch), so nothing logged is ever lost or double-counted.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    attempt INTEGER PRIMARY KEY AUTOINCREMENT,
    started REAL NOT NULL,
    run_name TEXT,
    resumed_from_epoch INTEGER,
    backend TEXT,
    device TEXT,
    git_rev TEXT,
    config TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    attempt INTEGER NOT NULL REFERENCES attempts(attempt),
    phase TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    episode INTEGER NOT NULL,
    kernel_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    action INTEGER NOT NULL,
    action_name TEXT NOT NULL,
    actions TEXT NOT NULL,
    reward REAL NOT NULL,
    cycles_before REAL,
    cycles_after REAL,
    invalid INTEGER NOT NULL,
    done INTEGER NOT NULL,
    reason TEXT,
    ptx_sha256 TEXT,
    backend TEXT,
    device TEXT,
    temperature REAL,
    logp REAL,
    advantage REAL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_phase_epoch ON steps(phase, epoch, attempt);
CREATE TRIGGER IF NOT EXISTS steps_no_update BEFORE UPDATE ON steps
BEGIN SELECT RAISE(ABORT, 'trajectory log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS steps_no_delete BEFORE DELETE ON steps
BEGIN SELECT RAISE(ABORT, 'trajectory log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS attempts_no_update BEFORE UPDATE ON attempts
BEGIN SELECT RAISE(ABORT, 'trajectory log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS attempts_no_delete BEFORE DELETE ON attempts
BEGIN SELECT RAISE(ABORT, 'trajectory log is append-only'); END;
CREATE VIEW IF NOT EXISTS steps_current AS
SELECT s.* FROM steps s
WHERE s.attempt = (
    SELECT MAX(t.attempt) FROM steps t WHERE t.phase = s.phase AND t.epoch = s.epoch
);
"""


@dataclass
class StepRecord:
    """One environment step as the log stores it (`actions`: names so far, comma-separated)."""

    phase: str
    epoch: int
    episode: int
    kernel_id: str
    step: int
    action: int
    action_name: str
    actions: str
    reward: float
    cycles_before: float | None
    cycles_after: float | None
    invalid: bool
    done: bool
    reason: str | None = None
    ptx_sha256: str | None = None
    backend: str | None = None
    device: str | None = None
    temperature: float | None = None
    logp: float | None = None
    advantage: float | None = None


_COLUMNS = [f.name for f in fields(StepRecord)]


class TrajectoryLog:
    """Append-only step log in one SQLite file (WAL); one instance per writer process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        self.attempt: int | None = None

    def begin_attempt(
        self,
        *,
        run_name: str | None = None,
        resumed_from_epoch: int | None = None,
        backend: str | None = None,
        device: str | None = None,
        git_rev: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> int:
        """Open a new attempt (a start or a resume); later appends are tagged with it."""
        with self._db:
            cur = self._db.execute(
                "INSERT INTO attempts(started, run_name, resumed_from_epoch, backend, device,"
                " git_rev, config) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    run_name,
                    resumed_from_epoch,
                    backend,
                    device,
                    git_rev,
                    json.dumps(config, default=str) if config is not None else None,
                ),
            )
        self.attempt = int(cur.lastrowid)
        return self.attempt

    def append(self, records: Iterable[StepRecord]) -> int:
        """Insert records in one transaction; returns how many were written."""
        if self.attempt is None:
            self.begin_attempt()
        now = time.time()
        rows = [(self.attempt, *(getattr(r, c) for c in _COLUMNS), now) for r in records]
        if not rows:
            return 0
        placeholders = ", ".join("?" * (len(_COLUMNS) + 2))
        with self._db:
            self._db.executemany(
                f"INSERT INTO steps(attempt, {', '.join(_COLUMNS)}, created)"
                f" VALUES ({placeholders})",
                rows,
            )
        return len(rows)

    def count(self, phase: str | None = None, current: bool = False) -> int:
        """Number of logged steps (all attempts, or only `steps_current` when current=True)."""
        table = "steps_current" if current else "steps"
        if phase is None:
            return self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return self._db.execute(
            f"SELECT COUNT(*) FROM {table} WHERE phase = ?", (phase,)
        ).fetchone()[0]

    def records(self, phase: str | None = None, current: bool = True) -> list[dict[str, Any]]:
        """Logged steps as dicts in insertion order; `current` drops superseded attempts."""
        table = "steps_current" if current else "steps"
        sql = f"SELECT * FROM {table}"
        args: tuple = ()
        if phase is not None:
            sql += " WHERE phase = ?"
            args = (phase,)
        cur = self._db.execute(sql + " ORDER BY id", args)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def attempts(self) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT * FROM attempts ORDER BY attempt")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def max_epoch(self, phase: str) -> int | None:
        return self._db.execute(
            "SELECT MAX(epoch) FROM steps WHERE phase = ?", (phase,)
        ).fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> TrajectoryLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_record(d: dict[str, Any]) -> StepRecord:
    """A StepRecord from a row dict (extra columns such as id/attempt are dropped)."""
    return StepRecord(**{c: d[c] for c in _COLUMNS})


__all__ = ["SCHEMA_VERSION", "StepRecord", "TrajectoryLog", "as_record", "asdict"]
