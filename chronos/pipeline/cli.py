"""The command line of every pipeline entry point: validate, choose the run dir, run.

`resume=auto` (the default) finds the latest unfinished run with the same config hash under
`runs_root`; Ctrl-C (or SIGTERM) checkpoints and prints the command that resumes; a bad config
is one line on stderr (exit 2) and leaves no run dir. See docs/training.md.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from chronos.pipeline.config import config_hash, kernel_ids, to_config
from chronos.pipeline.runner import run
from chronos.pipeline.stages import EvalStages

log = logging.getLogger("chronos.train")

STATUS_FILE = "status.json"
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
"""128 + SIGTERM, the shell's convention for a process ended by that signal."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's preemption, `kill`): handled exactly like Ctrl-C."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread, so a preempted run saves
    its checkpoint, closes its logs and says how to resume, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


EXIT_BAD_CONFIG = 2


def _one_line(exc: BaseException) -> str:
    """An OmegaConf/validation error as 'grpo.epochs: Value 'abc' ... to Integer'."""
    if isinstance(exc, OmegaConfBaseException):
        key = getattr(exc, "full_key", None)
        msg = str(getattr(exc, "msg", None) or exc).splitlines()[0]
        return f"{key}: {msg}" if key else msg
    return " ".join(str(exc).split())


def _file_handlers_in(d: Path) -> list[logging.FileHandler]:
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename).parent == d
    ]


def _is_litter(d: Path) -> bool:
    """True for a run dir holding nothing a run made: Hydra's .hydra and *.log, our status."""
    return d.is_dir() and all(
        p.name in (".hydra", STATUS_FILE) or p.suffix == ".log" for p in d.iterdir()
    )


def _remove_litter(d: Path, root: Path) -> None:
    """Delete a run dir nothing was written to, and the folders up to `root` it leaves empty."""
    if not _is_litter(d):
        return
    for h in _file_handlers_in(d):
        logging.getLogger().removeHandler(h)
        h.close()
    shutil.rmtree(d, ignore_errors=True)
    root = root.resolve()
    parent = d.parent
    while parent == root or root in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


def _move_logs(src: Path, dst: Path) -> None:
    """Point the run log's file handlers from `src` (Hydra's new dir) to `dst` (appending)."""
    for h in _file_handlers_in(src):
        new = logging.FileHandler(dst / Path(h.baseFilename).name, mode="a")
        new.setFormatter(h.formatter)
        new.setLevel(h.level)
        root = logging.getLogger()
        root.removeHandler(h)
        h.close()
        root.addHandler(new)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_status(run_dir: Path, chash: str, state: str, resume_command: str) -> None:
    """`status.json`: config hash and state (running/interrupted/failed/finished)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    status = {
        "config_hash": chash,
        "state": state,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "updated": time.time(),
        "resume_command": resume_command,
    }
    tmp = run_dir / (STATUS_FILE + ".tmp")
    tmp.write_text(json.dumps(status, indent=2))
    tmp.replace(run_dir / STATUS_FILE)


def find_unfinished(root: Path, chash: str, exclude: Path | None = None) -> Path | None:
    """The most recently updated run under `root` with config hash `chash` that did not finish
    (and is not running right now in another live process)."""
    best: tuple[float, Path] | None = None
    for path in root.glob(f"**/{STATUS_FILE}"):
        try:
            st = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        d = path.parent.resolve()
        if st.get("config_hash") != chash or st.get("state") == "finished" or d == exclude:
            continue
        if (
            st.get("state") == "running"
            and st.get("host") == socket.gethostname()
            and _alive(int(st.get("pid", -1)))
        ):
            continue
        if best is None or st.get("updated", 0) > best[0]:
            best = (float(st.get("updated", 0)), d)
    return best[1] if best else None


def resume_command(module: str, overrides: list[str], run_dir: Path) -> str:
    """The exact command that continues `run_dir`: the same overrides, that run dir."""
    keep = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("run_dir", "resume")]
    return shlex.join(["python", "-m", module, *keep, f"hydra.run.dir={run_dir}"])


def cli(cfg: DictConfig, evals: EvalStages, module: str) -> None:
    """Body of every entry point's `hydra.main`: validate, choose the run dir, run.

    A bad config is one line on stderr (exit 2) and leaves no run dir; Ctrl-C closes the
    trajectory log and the measurement store, keeps the last checkpoint, prints the command
    that resumes and exits 130; SIGTERM (a scheduler's preemption) does the same, exit 143.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from kernels import load

    hc = HydraConfig.get()
    hydra_dir = Path(hc.runtime.output_dir).resolve()
    try:
        tc = to_config(cfg)
        for kid in kernel_ids(tc.kernels):
            load(kid)  # an unknown id is a bad config, before any run dir is used
    except (OmegaConfBaseException, ValueError, KeyError) as exc:
        _remove_litter(hydra_dir, Path(str(cfg.get("runs_root") or "outputs")).expanduser())
        print(f"error: {_one_line(exc)} (see --help)", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)
    chash = config_hash(tc)
    rdir = hydra_dir
    if tc.run_dir:
        rdir = Path(tc.run_dir).expanduser().resolve()
    elif (
        tc.resume == "auto"
        and hc.mode == RunMode.RUN
        and not any(o.startswith("hydra.run.dir=") for o in hc.overrides.hydra)
    ):
        found = find_unfinished(Path(tc.runs_root).expanduser(), chash, exclude=hydra_dir)
        if found is not None:
            _move_logs(hydra_dir, found)
            _remove_litter(hydra_dir, Path(tc.runs_root).expanduser())
            rdir = found
            log.info("resume=auto: continuing unfinished run %s (same config hash %s)", rdir, chash)
    cmd = resume_command(module, list(hc.overrides.task), rdir)
    write_status(rdir, chash, "running", cmd)
    try:
        with sigterm_interrupts():
            out = run(tc, rdir, evals=evals)
    except KeyboardInterrupt as exc:
        write_status(rdir, chash, "interrupted", cmd)
        for h in logging.getLogger().handlers:
            h.flush()
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"\n{what}; resume with: {cmd}", file=sys.stderr, flush=True)
        sys.exit(EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED)
    except BaseException:
        write_status(rdir, chash, "failed", cmd)
        _remove_litter(rdir, Path(tc.runs_root).expanduser())  # failed before it made anything
        raise
    write_status(rdir, chash, "finished", cmd)
    if "report" in out:
        print(f"report: {out['report']}")
