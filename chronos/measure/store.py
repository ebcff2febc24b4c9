"""SQLite store of measurements, keyed so that a repeated state costs one indexed read.

Training revisits the same PTX texts over and over; a GPU measurement takes ~100 ms and an
emulated one up to a second, a store hit ~0.1 ms. The key is (sha256 of the PTX, kernel id,
spec fingerprint, backend, device, harness version, ptxas version, config), where the spec
fingerprint covers everything that decides validity (reference, inputs, problems, contract)
and `config` the backend options that change the number (arch, problem size, seed,
repetitions). A version-1 store (keyed without the spec) is migrated on opening: its records
stay readable by iteration but, having no fingerprint, are never served as a verdict.
Records are whole Measurements as JSON, so a store file recorded on a GPU machine can be
replayed on a laptop.

WAL journalling lets many processes read while one writes; writers wait on SQLite's busy
timeout instead of failing. A file that is not a SQLite database, fails SQLite's quick check,
or carries another schema version raises StoreError naming the path, never a bare
`sqlite3.DatabaseError` deep inside a training step.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chronos.measure.measurement import Measurement

SCHEMA_VERSION = 2
DEFAULT_STORE_ENV = "CHRONOS_STORE"
MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS measurements (
    ptx_sha256 TEXT NOT NULL,
    kernel_id TEXT NOT NULL,
    spec_fingerprint TEXT NOT NULL DEFAULT '',
    backend TEXT NOT NULL,
    device TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    ptxas_version TEXT NOT NULL DEFAULT '',
    config TEXT NOT NULL DEFAULT '',
    valid INTEGER NOT NULL,
    cycles REAL,
    created REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (ptx_sha256, kernel_id, spec_fingerprint, backend, device, harness_version,
                 ptxas_version, config)
);
CREATE INDEX IF NOT EXISTS measurements_lookup
    ON measurements (ptx_sha256, kernel_id, backend, created);
"""


_COLUMNS = (
    "ptx_sha256, kernel_id, spec_fingerprint, backend, device, harness_version, ptxas_version, "
    "config, valid, cycles, created, record"
)
_V1_COLUMNS = (
    "ptx_sha256, kernel_id, '', backend, device, harness_version, '', config, valid, cycles, "
    "created, record"
)
log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store file cannot be used (corrupted, not a store, newer schema); names the path."""


def default_store_path() -> Path:
    """$CHRONOS_STORE, else ~/.cache/chronos/measurements.sqlite."""
    env = os.environ.get(DEFAULT_STORE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "chronos" / "measurements.sqlite"


class MeasurementStore:
    """Read-through/write-through cache of Measurements in one SQLite file (or in memory).

    `path=":memory:"` keeps records for the life of the object only. `readonly=True` opens a
    shipped replay file without ever writing to it. Thread-safe (one connection, one lock);
    process-safe through SQLite's own locking.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = MEMORY,
        *,
        readonly: bool = False,
        timeout_s: float = 60.0,
        check: bool = True,
    ):
        self.memory = str(path) == MEMORY
        self.path = MEMORY if self.memory else Path(path).expanduser()
        self.readonly = readonly
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        try:
            try:
                self._conn = self._connect(timeout_s)
                self._init_schema(check)
            except sqlite3.OperationalError:
                if not readonly or self.memory:
                    raise
                # A shipped WAL-mode file in a read-only directory: SQLite cannot create the
                # -shm file next to it, so read it as an immutable snapshot instead.
                self._close_quietly()
                self._conn = self._connect(timeout_s, immutable=True)
                self._init_schema(check)
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self._error(exc) from exc

    # --- opening ------------------------------------------------------------------------------

    def _connect(self, timeout_s: float, immutable: bool = False) -> sqlite3.Connection:
        if self.memory:
            return sqlite3.connect(MEMORY, check_same_thread=False, isolation_level=None)
        assert isinstance(self.path, Path)
        if self.readonly:
            if not self.path.exists():
                raise StoreError(f"measurement store {self.path} does not exist")
            uri = f"{self.path.resolve().as_uri()}?mode=ro{'&immutable=1' if immutable else ''}"
            return sqlite3.connect(
                uri, uri=True, timeout=timeout_s, check_same_thread=False, isolation_level=None
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=timeout_s, check_same_thread=False, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        return conn

    def _init_schema(self, check: bool) -> None:
        conn = self._conn
        if check and not self.memory:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            if rows != [("ok",)]:
                detail = "; ".join(str(r[0]) for r in rows[:3])
                raise StoreError(f"measurement store {self.path} is corrupted: {detail}")
        if not self.readonly:
            if not self.memory:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise StoreError(f"measurement store {self.path}: cannot enable WAL ({mode})")
                conn.execute("PRAGMA synchronous = NORMAL")
            with self._write():
                self._migrate_v1(conn)
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                if conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"schema_version", "measurements"} <= tables:
            raise StoreError(
                f"measurement store {self.path} is not a Chronos measurement store "
                f"(tables: {sorted(tables)})"
            )
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
        if versions == [1]:
            raise StoreError(
                f"measurement store {self.path} has schema version 1, keyed without the "
                "kernel spec's fingerprint: its verdicts may belong to another reference or "
                "contract. Open it writable once to migrate it (its old records are kept but "
                "never served), or record a new store"
            )
        if versions != [SCHEMA_VERSION]:
            raise StoreError(
                f"measurement store {self.path} has schema version {versions}, this Chronos "
                f"reads version {SCHEMA_VERSION}"
            )

    def _migrate_v1(self, conn: sqlite3.Connection) -> None:
        """Version 1 -> 2: the key gains the spec fingerprint and ptxas version. Old rows get
        empty ones, which no lookup asks for: kept for inspection, never served."""
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables or "measurements" not in tables:
            return
        if [r[0] for r in conn.execute("SELECT version FROM schema_version")] != [1]:
            return
        conn.execute("DROP INDEX IF EXISTS measurements_lookup")
        conn.execute("ALTER TABLE measurements RENAME TO measurements_v1")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            f"INSERT INTO measurements ({_COLUMNS}) SELECT {_V1_COLUMNS} FROM measurements_v1"
        )
        n = conn.execute("SELECT COUNT(*) FROM measurements_v1").fetchone()[0]
        conn.execute("DROP TABLE measurements_v1")
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        log.warning(
            "measurement store %s: migrated from schema version 1; its %d records predate "
            "spec fingerprints and will not be served",
            self.path,
            n,
        )

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
            return StoreError(
                f"measurement store {self.path} stayed locked by another process or connection "
                f"for the whole busy timeout ({self.timeout_s:g} s): {exc}"
            )
        return StoreError(
            f"measurement store {self.path} is corrupted or not a SQLite database ({exc}); "
            "move it aside or delete it to start a new store"
        )

    class _Tx:
        def __init__(self, store: MeasurementStore):
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            try:
                self.store._conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return self.store._conn

        def __exit__(self, exc_type: Any, *_: Any) -> None:
            try:
                self.store._conn.execute("ROLLBACK" if exc_type else "COMMIT")
            finally:
                self.store._lock.release()

    def _write(self) -> MeasurementStore._Tx:
        if self.readonly:
            raise StoreError(f"measurement store {self.path} is open read-only")
        return MeasurementStore._Tx(self)

    # --- records ------------------------------------------------------------------------------

    def get(
        self,
        ptx_sha256: str,
        kernel_id: str,
        backend: str,
        device: str,
        harness_version: str,
        config: str,
        spec_fingerprint: str,
        ptxas_version: str,
    ) -> Measurement | None:
        """The record under the full key, or None. An empty `spec_fingerprint` is refused:
        it would match the migrated records that no spec vouches for."""
        if not spec_fingerprint:
            raise ValueError("MeasurementStore.get needs the spec's fingerprint")
        try:
            with self._lock:
                row = self._conn.execute(
                    "SELECT record FROM measurements WHERE ptx_sha256=? AND kernel_id=? "
                    "AND spec_fingerprint=? AND backend=? AND device=? AND harness_version=? "
                    "AND ptxas_version=? AND config=?",
                    (
                        ptx_sha256,
                        kernel_id,
                        spec_fingerprint,
                        backend,
                        device,
                        harness_version,
                        ptxas_version,
                        config,
                    ),
                ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        return None if row is None else self._decode(row[0])

    def find(
        self,
        ptx_sha256: str,
        kernel_id: str,
        backend: str | None = None,
        device: str | None = None,
        harness_version: str | None = None,
        *,
        spec_fingerprint: str | None = None,
        valid_only: bool = False,
    ) -> Measurement | None:
        """The newest record for (PTX, kernel) among those matching the given fields (replay).

        Replay passes `spec_fingerprint`, so that a spec changed since the recording (a
        corrected reference, a weaker contract) misses rather than replays an old verdict.
        """
        sql = "SELECT record FROM measurements WHERE ptx_sha256=? AND kernel_id=?"
        args: list[Any] = [ptx_sha256, kernel_id]
        for col, value in (
            ("spec_fingerprint", spec_fingerprint),
            ("backend", backend),
            ("device", device),
            ("harness_version", harness_version),
        ):
            if value is not None:
                sql += f" AND {col}=?"
                args.append(value)
        if valid_only:
            sql += " AND valid=1"
        sql += " ORDER BY created DESC LIMIT 1"
        try:
            with self._lock:
                row = self._conn.execute(sql, args).fetchone()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc
        return None if row is None else self._decode(row[0])

    def put(
        self,
        m: Measurement,
        config: str = "",
        *,
        device: str | None = None,
        harness_version: str | None = None,
        spec_fingerprint: str | None = None,
        ptxas_version: str | None = None,
    ) -> None:
        """Insert or replace the record under its key (`device`, `harness_version`,
        `spec_fingerprint` and `ptxas_version` override the record's own, so that the key a
        backend predicts before measuring always matches)."""
        row = (
            m.ptx_sha256,
            m.kernel_id,
            m.spec_fingerprint if spec_fingerprint is None else spec_fingerprint,
            m.backend,
            m.device if device is None else device,
            m.harness_version if harness_version is None else harness_version,
            m.ptxas_version if ptxas_version is None else ptxas_version,
            config,
            int(m.valid),
            m.cycles,
            time.time(),
            m.to_json(),
        )
        try:
            with self._write() as conn:
                conn.execute(
                    f"INSERT OR REPLACE INTO measurements ({_COLUMNS}) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    def __len__(self) -> int:
        try:
            with self._lock:
                return int(self._conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from exc

    def __iter__(self) -> Iterator[Measurement]:
        with self._lock:
            rows = self._conn.execute("SELECT record FROM measurements ORDER BY created").fetchall()
        for (text,) in rows:
            yield self._decode(text)

    def summary(self) -> dict[str, int]:
        """Record counts per 'backend / device' (for the CLI and replay error messages)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT backend, device, COUNT(*) FROM measurements GROUP BY backend, device"
            ).fetchall()
        return {f"{b} / {d}": int(n) for b, d, n in rows}

    def _decode(self, text: str) -> Measurement:
        try:
            return Measurement.from_dict(json.loads(text))
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"measurement store {self.path} holds an unreadable record: {exc}"
            ) from exc

    # --- lifetime -----------------------------------------------------------------------------

    def _close_quietly(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

    def __enter__(self) -> MeasurementStore:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MeasurementStore({str(self.path)!r})"
