"""The worker protocol on CPU: fake targets that answer, hang, crash, raise or talk garbage."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from chronos.measure.worker import RawFrame, WorkerFault, WorkerProcess, load_target

HERE = os.path.abspath(__file__)


class Echo:
    """A well-behaved handler whose reply depends on the request's `mode`."""

    info = {"device": "fake", "pid": os.getpid()}

    def __call__(self, req: dict[str, Any]) -> Any:
        mode = req.get("mode", "echo")
        if mode == "echo":
            return {"ok": True, "value": req.get("value"), "pid": os.getpid()}
        if mode == "hang":
            time.sleep(3600)
        if mode == "crash":
            os._exit(3)
        if mode == "raise":
            raise RuntimeError("kernel exploded")
        if mode == "garbage":
            return ["not", "a", "dict"]
        if mode == "raw":
            return RawFrame(b"\x80\x05this is not a pickle")
        if mode == "fatal":
            return {"ok": True, "valid": False, "error": "illegal address", "fatal": True}
        return {"ok": False, "error": f"unknown mode {mode}"}


def echo_target(config: dict[str, Any]) -> Echo:
    return Echo()


def failing_target(config: dict[str, Any]) -> Echo:
    raise RuntimeError("no CUDA device here")


@pytest.fixture
def worker():
    w = WorkerProcess(f"{HERE}:echo_target", startup_timeout_s=60)
    yield w
    w.close()


def test_round_trip_and_info(worker: WorkerProcess) -> None:
    info = worker.start()
    assert info["device"] == "fake"
    reply = worker.request({"mode": "echo", "value": [1, 2.5, "x"]}, timeout_s=30)
    assert reply == {"ok": True, "value": [1, 2.5, "x"], "pid": worker.pid}
    assert worker.restarts == 0


def _assert_restarts(worker: WorkerProcess, mode: str, kind: str, timeout: float = 30) -> None:
    worker.start()
    first = worker.pid
    with pytest.raises(WorkerFault) as exc:
        worker.request({"mode": mode}, timeout_s=timeout)
    assert exc.value.kind == kind
    assert not worker.alive
    reply = worker.request({"mode": "echo", "value": 7}, timeout_s=30)
    assert reply["value"] == 7
    assert worker.pid != first and worker.restarts == 1


def test_hang_is_killed_and_restarted(worker: WorkerProcess) -> None:
    t0 = time.monotonic()
    _assert_restarts(worker, "hang", "timeout", timeout=1.0)
    assert time.monotonic() - t0 < 20


def test_crash_is_reported_and_restarted(worker: WorkerProcess) -> None:
    _assert_restarts(worker, "crash", "crash")


def test_malformed_reply_is_garbage(worker: WorkerProcess) -> None:
    _assert_restarts(worker, "garbage", "garbage")


def test_unreadable_reply_is_garbage(worker: WorkerProcess) -> None:
    _assert_restarts(worker, "raw", "garbage")


def test_exception_is_a_reply_not_a_restart(worker: WorkerProcess) -> None:
    worker.start()
    pid = worker.pid
    reply = worker.request({"mode": "raise"}, timeout_s=30)
    assert reply["ok"] is False and "kernel exploded" in reply["error"]
    assert worker.pid == pid and worker.alive


def test_fatal_reply_restarts_after_reading(worker: WorkerProcess) -> None:
    worker.start()
    pid = worker.pid
    reply = worker.request({"mode": "fatal"}, timeout_s=30)
    assert reply["error"] == "illegal address"
    assert not worker.alive
    assert worker.request({"mode": "echo", "value": 1}, timeout_s=30)["pid"] != pid


def test_startup_failure_is_a_start_fault() -> None:
    w = WorkerProcess(f"{HERE}:failing_target", startup_timeout_s=60)
    with pytest.raises(WorkerFault) as exc:
        w.start()
    assert exc.value.kind == "start" and "no CUDA device here" in str(exc.value)
    w.close()


def test_load_target_forms() -> None:
    assert load_target("chronos.measure.cupy_harness:make_handler").__name__ == "make_handler"
    assert callable(load_target(f"{HERE}:echo_target"))
    with pytest.raises(ValueError):
        load_target("no_colon_here")
