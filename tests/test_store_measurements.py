"""The SQLite measurement store: round trips, keys, concurrency, corruption, speed."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import time
from pathlib import Path

import pytest

from chronos.measure.measurement import Measurement
from chronos.measure.store import (
    SCHEMA_VERSION,
    MeasurementStore,
    StoreError,
    default_store_path,
)


def make(
    i: int = 0, *, backend: str = "cupy", device: str = "GPU", valid: bool = True, kernel: str = "k"
) -> Measurement:
    if not valid:
        return Measurement.invalid(
            "boom",
            backend=backend,
            device=device,
            harness_version="h1",
            kernel_id=kernel,
            ptx_sha256=f"{i:064x}",
            spec_fingerprint=FP,
            ptxas_version="13.0.88",
        )
    return Measurement(
        cycles=1000.0 + i,
        cycles_q1=990.0 + i,
        cycles_q3=1010.0 + i,
        time_ns=500.0,
        n=200,
        valid=True,
        error=None,
        backend=backend,
        device=device,
        clock_mhz=1755.0,
        regs=40,
        spills=0,
        harness_version="h1",
        ptx_sha256=f"{i:064x}",
        kernel_id=kernel,
        extra={"phases": {"time": 0.01}, "samples": [1, 2, 3]},
        spec_fingerprint=FP,
        ptxas_version="13.0.88",
    )


FP = "f" * 64


def key(m: Measurement, config: str = "") -> tuple[str, ...]:
    return (
        m.ptx_sha256,
        m.kernel_id,
        m.backend,
        m.device,
        m.harness_version,
        config,
        m.spec_fingerprint,
        m.ptxas_version,
    )


def test_round_trip_and_key(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    with MeasurementStore(path) as s:
        m = make(1)
        s.put(m, "cfg")
        assert s.get(*key(m, "cfg")) == m
        assert s.get(*key(m, "other")) is None
        assert s.get(m.ptx_sha256, m.kernel_id, "emulated", m.device, "h1", "cfg", FP, "") is None
        other_spec = (*key(m, "cfg")[:6], "e" * 64, m.ptxas_version)
        assert s.get(*other_spec) is None  # another spec: another verdict
        assert s.get(*key(m, "cfg")[:7], "13.5.37") is None  # another ptxas
        s.put(make(1).replace(cycles=7.0), "cfg")  # same key: replaced
        s.put(make(2, valid=False), "cfg")
        assert len(s) == 2 and s.get(*key(m, "cfg")).cycles == 7.0
        m = s.get(*key(m, "cfg"))
    with MeasurementStore(path, readonly=True) as s:  # persisted, readable read-only
        assert s.get(*key(m, "cfg")) == m
        with pytest.raises(StoreError, match="read-only"):
            s.put(m)
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


def test_find_newest_matching(tmp_path: Path) -> None:
    with MeasurementStore(tmp_path / "m.sqlite") as s:
        a = make(1, device="A100")
        s.put(a)
        time.sleep(0.01)
        b = make(1, device="H100").replace(cycles=5.0)
        s.put(b)
        s.put(make(1, backend="emulated", device="cpu"))
        assert s.find(a.ptx_sha256, "k", "cupy") == b
        assert s.find(a.ptx_sha256, "k", "cupy", device="A100") == a
        assert s.find(a.ptx_sha256, "k", "replay") is None
        assert s.summary() == {"cupy / A100": 1, "cupy / H100": 1, "emulated / cpu": 1}


def test_memory_store() -> None:
    s = MeasurementStore()
    s.put(make(3))
    assert len(s) == 1 and list(s) == [make(3)]
    s.close()


def _writer(path: str, worker: int, n: int) -> None:
    with MeasurementStore(path) as s:
        for i in range(n):
            s.put(make(worker * 1000 + i, kernel=f"w{worker}"))
            s.get(*key(make(i)))


def test_concurrent_writers(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    MeasurementStore(path).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    with MeasurementStore(path) as s:
        assert len(s) == 160
        assert s.get(*key(make(3 * 1000 + 39, kernel="w3"))) is not None


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreError, match=str(path)) as exc:
        MeasurementStore(path)
    assert "corrupted" in str(exc.value)


def test_damaged_database_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "damaged.sqlite"
    with MeasurementStore(path) as s:
        for i in range(300):
            s.put(make(i))
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    raw = bytearray(path.read_bytes())
    assert len(raw) > 8192
    for page in range(1, len(raw) // 4096):  # scribble over every b-tree page header
        raw[page * 4096 : page * 4096 + 12] = b"\xa5" * 12
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=str(path)):
        MeasurementStore(path)


def test_foreign_database_and_schema_version(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE x (a)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a Chronos measurement store"):
        MeasurementStore(foreign, readonly=True)
    newer = tmp_path / "newer.sqlite"
    MeasurementStore(newer).close()
    con = sqlite3.connect(newer)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version"):
        MeasurementStore(newer)
    with pytest.raises(StoreError, match="does not exist"):
        MeasurementStore(tmp_path / "missing.sqlite", readonly=True)


def test_default_path_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CHRONOS_STORE", str(tmp_path / "x.sqlite"))
    assert default_store_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("CHRONOS_STORE")
    assert default_store_path().name == "measurements.sqlite"


def test_hit_is_well_under_a_millisecond(tmp_path: Path) -> None:
    with MeasurementStore(tmp_path / "m.sqlite") as s:
        for i in range(500):
            s.put(make(i))
        k = key(make(250))
        times = []
        for _ in range(300):
            t0 = time.perf_counter()
            assert s.get(*k) is not None
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"store hit median {median * 1e6:.1f} us")
    assert median < 1e-3


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_readonly_directory(tmp_path: Path) -> None:
    d = tmp_path / "shipped"
    d.mkdir()
    with MeasurementStore(d / "h100.sqlite") as s:
        s.put(make(5))
    d.chmod(0o555)
    try:
        with MeasurementStore(d / "h100.sqlite", readonly=True) as s:
            assert s.get(*key(make(5))) == make(5)
    finally:
        d.chmod(0o755)


def test_readonly_falls_back_to_an_immutable_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "h100.sqlite"
    with MeasurementStore(path) as s:
        s.put(make(5))
    calls: list[bool] = []
    orig = MeasurementStore._connect

    def flaky(self: MeasurementStore, timeout_s: float, immutable: bool = False):
        calls.append(immutable)
        if not immutable:
            raise sqlite3.OperationalError("unable to open database file")
        return orig(self, timeout_s, immutable)

    monkeypatch.setattr(MeasurementStore, "_connect", flaky)
    with MeasurementStore(path, readonly=True) as s:
        assert s.get(*key(make(5))) == make(5)
    assert calls == [False, True]


V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE measurements (
    ptx_sha256 TEXT NOT NULL, kernel_id TEXT NOT NULL, backend TEXT NOT NULL,
    device TEXT NOT NULL, harness_version TEXT NOT NULL, config TEXT NOT NULL DEFAULT '',
    valid INTEGER NOT NULL, cycles REAL, created REAL NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (ptx_sha256, kernel_id, backend, device, harness_version, config)
);
CREATE INDEX measurements_lookup ON measurements (ptx_sha256, kernel_id, backend, created);
"""


def test_version_1_stores_are_migrated_and_their_verdicts_never_served(tmp_path: Path) -> None:
    """Issue 13, item 1: v1 keys ignore the spec, so a v1 verdict may belong to another
    reference or contract. Read-only: refused with the reason; writable: migrated, kept for
    iteration, never returned by get/find with a fingerprint."""
    path = tmp_path / "v1.sqlite"
    old = make(7).replace(spec_fingerprint="", ptxas_version="")
    record = {
        k: v for k, v in old.to_dict().items() if k not in ("spec_fingerprint", "ptxas_version")
    }
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.execute(
        "INSERT INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?)",
        (old.ptx_sha256, "k", "cupy", "GPU", "h1", "", 1, old.cycles, 1.0, json.dumps(record)),
    )
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version 1, keyed without the kernel spec"):
        MeasurementStore(path, readonly=True)
    with MeasurementStore(path) as s:
        assert list(s) == [old] and len(s) == 1  # kept, readable
        assert s.get(*key(make(7))) is None  # never served under a real fingerprint
        assert s.find(old.ptx_sha256, "k", spec_fingerprint=FP) is None
        with pytest.raises(ValueError, match="fingerprint"):
            s.get(*key(old))
        s.put(make(7))
        assert s.get(*key(make(7))) == make(7)
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()
