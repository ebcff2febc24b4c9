"""The worker protocol on CPU: fake targets that answer, hang, crash, raise or talk garbage."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from chronos.measure.harness.worker import RawFrame, WorkerFault, WorkerProcess, load_target

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
        if mode == "spawn":  # a grandchild that would outlive a plain kill of the worker
            import subprocess
            import sys

            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
            return {"ok": True, "pid": child.pid, "pgid": os.getpgid(0)}
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
    target = "chronos.measure.harness.cupy_harness:make_handler"
    assert load_target(target).__name__ == "make_handler"
    assert callable(load_target(f"{HERE}:echo_target"))
    with pytest.raises(ValueError):
        load_target("no_colon_here")


def _gone(pid: int, within: float = 10.0) -> bool:
    """True once `pid` no longer runs (or is a zombie of another parent)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (Linux)")
def test_restart_kills_the_whole_group_and_reaps(worker: WorkerProcess) -> None:
    """The worker is its own process group; a kill takes its children too, and the old
    worker is reaped (not a zombie) before the next one starts."""
    worker.start()
    old = worker.pid
    reply = worker.request({"mode": "spawn"}, timeout_s=30)
    assert reply["pgid"] == old != os.getpgid(0)
    with pytest.raises(WorkerFault, match="timeout"):
        worker.request({"mode": "hang"}, timeout_s=0.5)
    assert _gone(reply["pid"]) and not os.path.exists(f"/proc/{old}")
    worker.start()
    assert worker.pid != old and worker.restarts == 1


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (Linux)")
def test_worker_dies_with_its_parent(tmp_path) -> None:
    """A parent killed without cleaning up leaves no worker behind (PR_SET_PDEATHSIG)."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from chronos.measure.harness.worker import WorkerProcess\n"
        f"w = WorkerProcess({HERE + ':echo_target'!r}, startup_timeout_s=60)\n"
        "w.start()\n"
        "print(w.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    try:
        child = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert not _gone(child, within=0.2)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _gone(child), "the worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def test_default_timeout_is_short() -> None:
    from chronos.measure.backends.cupy import DEFAULT_TIMEOUT_S, CupyBackend

    with CupyBackend() as b:
        assert DEFAULT_TIMEOUT_S <= 15 and b.timeout_s == DEFAULT_TIMEOUT_S
