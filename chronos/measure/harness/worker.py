"""A worker subprocess that owns the CUDA context, so that a bad kernel never kills the trainer.

An illegal address or a misaligned vector access poisons the CUDA context for good, a broken
loop hangs the GPU, a driver bug can take the process down. All of that happens here, in a
child process: the parent sends one request, waits for one reply with a deadline, and on a
hang, a crash or a reply it cannot read kills the child and starts a fresh one on the next
request. The caller sees a `WorkerFault` with the reason and turns it into an invalid
Measurement.

Protocol: the child runs `python -m chronos.measure.harness.worker --target T --fds R W`; frames are
an 8-byte little-endian length plus a pickle, over two dedicated pipes (stdout/stderr stay free
for driver chatter and go to a log file whose tail explains a crash). The first request is
`{"op": "init", "config": {...}}`: the child calls `target(config)`, a factory returning the
handler, and replies `{"ok": True, "info": handler.info}`. Every later request is passed to
`handler(request)`, whose dict reply goes back as is; an exception becomes
`{"ok": False, "error": ..., "fatal": exc.fatal}`. A reply with `"fatal": True` (a poisoned
context) makes the parent restart the child after reading it.

`target` is "package.module:factory" or "/path/to/file.py:factory", which is how tests inject
fake workers that hang, crash, raise or answer garbage.

The child runs in its own process group and asks the kernel (Linux `PR_SET_PDEATHSIG`) to be
killed when the parent dies, so a killed run leaves no process holding the GPU; a replaced
child is killed with its whole group and reaped before the next one starts, so a context still
tearing down after a hang never time-slices the GPU with its successor.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<Q")
MAX_FRAME = 1 << 31
REAP_TIMEOUT_S = 30.0
"""How long a killed child may take to exit (a CUDA context tearing down) before we move on."""
PR_SET_PDEATHSIG = 1


class WorkerFault(RuntimeError):
    """A request failed at the process level; `kind` is timeout, crash, garbage or start."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


class RawFrame(bytes):
    """A handler reply sent verbatim instead of pickled (protocol tests: unreadable replies)."""


# --- framing ----------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes, deadline: float | None) -> None:
    view = memoryview(data)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("write deadline passed")
            _, ready, _ = select.select([], [fd], [], left)
            if not ready:
                continue
        n = os.write(fd, view[: 1 << 20])
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks: list[bytes] = []
    while n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("read deadline passed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def send_frame(fd: int, payload: bytes, deadline: float | None = None) -> None:
    _write_all(fd, _HEADER.pack(len(payload)) + payload, deadline)


def recv_frame(fd: int, deadline: float | None = None) -> bytes:
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if n > MAX_FRAME:
        raise ValueError(f"frame of {n} bytes")
    return _read_exact(fd, n, deadline)


# --- parent side ------------------------------------------------------------------------------


class WorkerProcess:
    """One child process running `target`; restarted lazily after a fault.

    `request(msg, timeout_s)` returns the handler's reply dict or raises WorkerFault. After a
    timeout, crash or unreadable reply the child is killed; the next request starts a new one
    (`restarts` counts them, `generation` changes so callers can drop per-child caches).
    """

    def __init__(
        self,
        target: str,
        config: dict[str, Any] | None = None,
        *,
        startup_timeout_s: float = 180.0,
        env: dict[str, str] | None = None,
    ):
        self.target = target
        self.config = dict(config or {})
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.info: dict[str, Any] = {}
        self.generation = 0
        self.restarts = 0
        self.faults = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._to_child = -1
        self._from_child = -1
        self._log: Any = None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> dict[str, Any]:
        """Start the child if needed and return its `info` (device name, arch, ...)."""
        if self.alive:
            return self.info
        if self.generation > 0:
            self.restarts += 1
        self.kill()  # reap the previous child (and its group) before starting the next
        self.generation += 1
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        self._log = tempfile.TemporaryFile(prefix="chronos-worker-")
        cmd = [
            sys.executable,
            "-m",
            "chronos.measure.harness.worker",
            "--target",
            self.target,
            "--fds",
            str(child_r),
            str(child_w),
            "--parent",
            str(os.getpid()),
        ]
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                pass_fds=(child_r, child_w),
                env=self.env,
                close_fds=True,
                start_new_session=True,  # its own process group: killed as one
            )
        finally:
            os.close(child_r)
            os.close(child_w)
        self._to_child, self._from_child = parent_w, parent_r
        try:
            reply = self._exchange({"op": "init", "config": self.config}, self.startup_timeout_s)
        except WorkerFault as exc:
            raise WorkerFault("start", f"worker failed to start: {exc}") from None
        if not reply.get("ok"):
            self.kill()
            raise WorkerFault("start", f"worker failed to start: {reply.get('error')}")
        self.info = dict(reply.get("info") or {})
        return self.info

    def request(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and wait up to `timeout_s` for its reply."""
        try:
            self.start()
        except WorkerFault:
            raise
        except OSError as exc:
            self.kill()
            raise WorkerFault("start", f"cannot start worker: {exc}") from exc
        reply = self._exchange(msg, timeout_s)
        if reply.get("fatal"):
            # The child says its context is gone: read the reply, then replace the child.
            self.kill()
        return reply

    def _exchange(self, msg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        try:
            send_frame(
                self._to_child, pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL), deadline
            )
            raw = recv_frame(self._from_child, deadline)
        except TimeoutError:
            self._fault()
            raise WorkerFault(
                "timeout", f"no reply within {timeout_s:g} s; worker killed and restarted"
            ) from None
        except (EOFError, BrokenPipeError, ConnectionError, OSError, ValueError) as exc:
            code = self._wait_exit()
            tail = self._log_tail()
            self._fault()
            raise WorkerFault(
                "crash", f"worker died (exit code {code}, {type(exc).__name__}){tail}"
            ) from None
        try:
            reply = pickle.loads(raw)
        except Exception as exc:
            self._fault()
            detail = f"{type(exc).__name__}: {exc}"
            raise WorkerFault("garbage", f"unreadable reply ({detail})") from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self._fault()
            raise WorkerFault("garbage", f"malformed reply {str(reply)[:200]!r}")
        return reply

    def _wait_exit(self) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return None

    def _log_tail(self, n: int = 1500) -> str:
        if self._log is None:
            return ""
        try:
            self._log.flush()
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - n))
            text = self._log.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; worker log tail:\n{text}" if text else ""

    def _fault(self) -> None:
        self.faults += 1
        self.kill()

    def kill(self) -> None:
        """Kill the child's process group, reap the child, release its pipes; the next
        request starts a new one."""
        if self._proc is not None:
            if self._proc.poll() is None:  # not reaped yet: its pid is still its group's id
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=REAP_TIMEOUT_S)
        self._cleanup()

    def _cleanup(self) -> None:
        for fd in (self._to_child, self._from_child):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._to_child = self._from_child = -1
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None
        self._proc = None

    def close(self) -> None:
        """Ask the child to exit, then make sure it did."""
        if self.alive:
            with contextlib.suppress(Exception):
                send_frame(self._to_child, pickle.dumps({"op": "exit"}), time.monotonic() + 2)
                self._proc.wait(timeout=5.0)  # type: ignore[union-attr]
        self.kill()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.kill()


# --- child side -------------------------------------------------------------------------------


def load_target(target: str) -> Callable[[dict[str, Any]], Any]:
    """Resolve "module:attr" or "/path/file.py:attr" to the handler factory."""
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise ValueError(f"worker target must be 'module:factory' or 'file.py:factory': {target}")
    if where.endswith(".py"):
        path = Path(where)
        spec = importlib.util.spec_from_file_location(f"_chronos_target_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    return getattr(module, attr)


def _error_reply(exc: BaseException) -> dict[str, Any]:
    return {
        "ok": False,
        "error": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(limit=8),
        "fatal": bool(getattr(exc, "fatal", False)),
    }


def serve(target: str, rfd: int, wfd: int) -> int:
    """The child's loop: init, then one reply per request until EOF or `exit`."""
    handler: Any = None
    while True:
        try:
            msg = pickle.loads(recv_frame(rfd))
        except EOFError:
            return 0
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "exit":
            return 0
        if op == "init":
            try:
                handler = load_target(target)(dict(msg.get("config") or {}))
                reply: Any = {"ok": True, "info": dict(getattr(handler, "info", {}) or {})}
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                reply = _error_reply(exc)
        elif handler is None:
            reply = {"ok": False, "error": "worker not initialised", "fatal": True}
        else:
            try:
                reply = handler(msg)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                reply = _error_reply(exc)
        if isinstance(reply, RawFrame):
            send_frame(wfd, bytes(reply))
        else:
            send_frame(wfd, pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if parent and os.getppid() != parent:
        os._exit(3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Chronos measurement worker (internal)")
    parser.add_argument("--target", required=True)
    parser.add_argument("--fds", nargs=2, type=int, required=True)
    parser.add_argument("--parent", type=int, default=0, help="the parent's pid")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    return serve(args.target, args.fds[0], args.fds[1])


if __name__ == "__main__":
    sys.exit(main())
