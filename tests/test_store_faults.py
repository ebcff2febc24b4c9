"""The measurement store under faults (issue 29, item 5): a truncated, overwritten or locked
file gives a clear error naming it, a damaged row never becomes a reward, a writer killed
mid-write leaves a consistent store, and envs in several processes sharing one store lose no
rows. (Garbage files, scribbled pages, schema versions and concurrent writer processes:
tests/test_store_measurements.py.)"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chronos.measure.backends.cached import CachedBackend
from chronos.measure.measurement import Measurement
from chronos.measure.store import MeasurementStore, StoreError


def make(i: int, kernel: str = "k") -> Measurement:
    return Measurement(
        cycles=1000.0 + i, cycles_q1=990.0, cycles_q3=1010.0, time_ns=500.0, n=10, valid=True,
        error=None, backend="fake", device="dev", clock_mhz=1000.0, regs=32, spills=0,
        harness_version="h1", ptx_sha256=f"{i:064x}", kernel_id=kernel,
    )  # fmt: skip


def put(store: MeasurementStore, m: Measurement) -> None:
    store.put(m, "cfg", spec_fingerprint="fp", ptxas_version="pv")


def get(store: MeasurementStore, m: Measurement) -> Measurement | None:
    return store.get(m.ptx_sha256, m.kernel_id, "fake", "dev", "h1", "cfg", "fp", "pv")


def filled(path: Path, n: int = 300) -> Path:
    with MeasurementStore(path) as s:
        for i in range(n):
            put(s, make(i))
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return path


def test_truncated_store_is_a_clear_error(tmp_path: Path) -> None:
    path = filled(tmp_path / "truncated.sqlite")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(StoreError, match=str(path)):
        MeasurementStore(path)


def test_overwritten_store_is_a_clear_error(tmp_path: Path) -> None:
    path = filled(tmp_path / "overwritten.sqlite")
    raw = bytearray(path.read_bytes())
    raw[4096:] = os.urandom(len(raw) - 4096)  # the header survives, every page after it not
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=str(path)):
        MeasurementStore(path)


class _Inner:
    name, device, harness_version = "fake", "dev", "h1"

    def measure(self, spec: Any, ptx: str) -> Measurement:
        raise AssertionError("a damaged row must not be re-measured silently either")


def test_a_damaged_row_is_never_a_reward(tmp_path: Path) -> None:
    path = filled(tmp_path / "row.sqlite", 3)
    con = sqlite3.connect(path)
    con.execute("UPDATE measurements SET record = '{\"cycles\": 5' WHERE cycles = 1001")
    con.commit()
    con.close()
    with MeasurementStore(path) as s:
        assert get(s, make(0)) == make(0)
        with pytest.raises(StoreError, match=str(path)):
            get(s, make(1))
    # through the backend a training step uses: an error naming the store, no figures
    store = MeasurementStore(path)
    backend = CachedBackend(_Inner(), store)
    backend.lookup = lambda spec, ptx: get(store, make(1))  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="row.sqlite"):
        backend.measure(SimpleNamespace(id="k"), "ptx")
    backend.close()


_HOLD = """
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_a_store_locked_by_another_process(tmp_path: Path) -> None:
    path = filled(tmp_path / "locked.sqlite", 2)
    proc = _hold_lock(path, 1.5)
    try:
        with pytest.raises(StoreError, match="stayed locked by another process") as exc:
            MeasurementStore(path, timeout_s=0.2)
        assert str(path) in str(exc.value) and "(0.2 s)" in str(exc.value)
        t0 = time.perf_counter()
        with MeasurementStore(path, timeout_s=30) as s:
            put(s, make(11))  # waits for the lock instead of failing
            assert time.perf_counter() - t0 < 30 and get(s, make(11)) is not None
    finally:
        proc.wait(30)
    with MeasurementStore(path) as s:
        assert len(s) == 3 and get(s, make(10)) is None


def _write_forever(path: str) -> None:
    with MeasurementStore(path) as s:
        i = 0
        while True:
            put(s, make(i, kernel="killed"))
            i += 1


def test_sigkill_mid_write_leaves_a_consistent_store(tmp_path: Path) -> None:
    path = tmp_path / "killed.sqlite"
    MeasurementStore(path).close()
    proc = mp.get_context("spawn").Process(target=_write_forever, args=(str(path),))
    proc.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with MeasurementStore(path, readonly=True) as s:
            if len(s) >= 50:
                break
        time.sleep(0.1)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    with MeasurementStore(path) as s:  # opening runs SQLite's quick check
        rows = list(s)  # every row decodes
        assert len(rows) == len(s) >= 50
        assert {m.ptx_sha256 for m in rows} == {f"{i:064x}" for i in range(len(rows))}
        put(s, make(10**6, kernel="after"))  # and it takes writes again


@pytest.mark.requires_ptxas
def test_envs_in_two_processes_share_one_store_without_losing_rows(tmp_path: Path) -> None:
    """Gymnasium's AsyncVectorEnv runs each env in its own process, both writing one store;
    replaying their steps here afterwards finds every state in it (no miss)."""
    import gymnasium as gym

    from envs.ptx_env import PtxTransformEnv

    path = tmp_path / "shared.sqlite"
    MeasurementStore(path).close()
    kernels = ["gemm_tile_2_2_2", "gemm_tile_2_4_2", "gemm_tile_4_2_2"]
    fns = [
        (lambda k=k: PtxTransformEnv(kernels=k, backend="emulated", store=str(path)))
        for k in kernels
    ]
    envs = gym.vector.AsyncVectorEnv(fns, context="spawn")
    try:
        envs.reset(seed=0)
        masks = envs.call("action_masks")
        actions = [max(i for i, ok in enumerate(m[:-1]) if ok) for m in masks]  # not stop
        envs.step(actions)
    finally:
        envs.close()
    with MeasurementStore(path) as s:
        assert len(s) == 2 * len(kernels), "each env's original and its one new state"
    for i, (kernel, action) in enumerate(zip(kernels, actions, strict=True)):
        env = PtxTransformEnv(kernels=kernel, backend="emulated", store=str(path))
        env.reset(seed=i)
        env.step(action)
        assert env.backend.stats["misses"] == 0 and env.backend.stats["hits"] == 2
        env.close()
