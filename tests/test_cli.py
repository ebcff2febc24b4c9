"""The command line as a user meets it: --help, bad overrides, Ctrl-C, resume=auto, sweeps.

Every test runs `python -m chronos.train` in a subprocess on the CI config (2 kernels); the
measurement store and greedy data set are shared by the tests of the session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chronos.fmt import rate, speedup, wilson_interval
from chronos.pipeline.eval.sweep import summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chronos_cli_cache")


def chronos(cache: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "chronos.train",
        *args,
        f"backend.store={cache / 'm.sqlite'}",
        f"greedy.dataset_dir={cache / 'greedy'}",
        "tensorboard=false",
    ]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_speedup_and_rate_formats() -> None:
    assert speedup(-0.2) == "1.25x (cycles -20.0%)"
    assert speedup(0.25, short=True) == "0.80x"
    assert speedup(None) == speedup(float("nan")) == "n/a"
    lo, hi = wilson_interval(2, 3)
    assert (round(lo, 4), round(hi, 4)) == (0.2077, 0.9385)  # Wilson score, z = 1.96
    assert rate(1.0, 3) == "100.0% (n=3, 95% CI 44%-100%)"
    assert rate(0.5, 0) == "n/a"


def test_help_describes_groups_options_and_invocations(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chronos.train", "--help"],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    for text in ("+exp=grpo", "+exp=greedy", "+exp=loko", "+exp=lofo", "--multirun", "resume=auto"):
        assert text in out, text
    for group in ("backend", "kernels"):  # every config group, with its options
        assert any(line.strip().startswith(group + " ") for line in out.splitlines()), group
    assert (
        "auto (cupy if a GPU is visible" in out and "small (2 spread-out kernels per family" in out
    )
    assert "grpo.epochs=60" in out and "Powered by Hydra" not in out
    assert not list(tmp_path.iterdir())  # --help makes no run dir


def test_bad_override_is_one_line_and_leaves_no_run_dir(cache: Path, tmp_path: Path) -> None:
    for bad, key in (("grpo.epochs=abc", "grpo.epochs"), ("resume=maybe", "resume")):
        p = subprocess.run(
            chronos(cache, "+exp=ci", bad, f"runs_root={tmp_path / 'runs'}"),
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 2
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), p.stderr
        assert "Traceback" not in p.stderr
        assert not (tmp_path / "runs").exists()


def _wait_for_epochs(root: Path, proc: subprocess.Popen[str], n: int) -> Path:
    """The run dir once its train.csv has `n` epoch rows and last.pt exists (still running)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        for csv in root.glob("*/*/metrics/train.csv"):
            run_dir = csv.parents[1]
            if (
                len(csv.read_text().splitlines()) > n
                and (run_dir / "checkpoints" / "last.pt").exists()
            ):
                return run_dir
        time.sleep(0.05)
    raise AssertionError(f"no {n} epochs before the run ended: {proc.communicate()}")


def test_ctrl_c_checkpoints_prints_resume_command_and_auto_resumes(
    cache: Path, tmp_path: Path
) -> None:
    root = tmp_path / "runs"
    args = ("+exp=ci", "grpo.epochs=30", f"runs_root={root}")
    proc = subprocess.Popen(
        chronos(cache, *args),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell that runs pytest in the background (`cmd &`) ignores SIGINT, the child
        # inherits that, and Python then never raises KeyboardInterrupt: restore the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    run_dir = _wait_for_epochs(root, proc, 1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    hint = [line for line in err.splitlines() if "resume with:" in line]
    assert len(hint) == 1 and f"hydra.run.dir={run_dir}" in hint[0]
    assert "python -m chronos.train +exp=ci grpo.epochs=30" in hint[0]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "interrupted"
    import torch

    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["epoch"]
    assert saved >= 0
    from chronos.stores.trajectories import TrajectoryLog

    with TrajectoryLog(run_dir / "trajectories.sqlite") as log:
        assert {r["epoch"] for r in log.records("grpo")} >= set(range(saved + 1))

    # The same command again (progress off: outside the config hash) continues that run.
    again = subprocess.run(
        chronos(cache, *args, "progress=false", f"stop_after_epoch={saved + 1}"),
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = [line for line in again.stdout.splitlines() if "resume=auto" in line]  # the run log
    assert len(said) == 1 and str(run_dir) in said[0] and status["config_hash"] in said[0]
    assert f"resuming GRPO after epoch {saved}" in again.stdout
    assert [p.name for p in root.glob("*/*")] == [run_dir.name]  # no second run dir
    assert "resume=auto" in (run_dir / "train.log").read_text()
    header = (run_dir / "metrics" / "train.csv").read_text().splitlines()[0].split(",")
    assert header.count("epoch") == 1


def test_sigterm_is_a_graceful_interrupt(cache: Path, tmp_path: Path) -> None:
    """A scheduler's SIGTERM saves and says how to resume, like Ctrl-C (exit 143)."""
    root = tmp_path / "runs"
    proc = subprocess.Popen(
        chronos(cache, "+exp=ci", "grpo.epochs=30", f"runs_root={root}"),
        cwd=tmp_path,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    run_dir = _wait_for_epochs(root, proc, 1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    hint = [line for line in err.splitlines() if "resume with:" in line]
    assert len(hint) == 1 and "SIGTERM" in hint[0] and f"hydra.run.dir={run_dir}" in hint[0]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "interrupted"
    assert (run_dir / "checkpoints" / "last.pt").exists()


def test_find_unfinished_picks_the_latest_unfinished_run_of_the_hash(tmp_path: Path) -> None:
    from chronos.pipeline.cli import find_unfinished, write_status

    dirs = {n: tmp_path / "2026-12-01" / n for n in ("old", "new", "done", "other", "live")}
    for name, state, chash in (
        ("old", "interrupted", "h1"),
        ("new", "failed", "h1"),
        ("done", "finished", "h1"),
        ("other", "interrupted", "h2"),
    ):
        write_status(dirs[name], chash, state, "cmd")
        time.sleep(0.01)
    assert find_unfinished(tmp_path, "h1") == dirs["new"].resolve()
    assert find_unfinished(tmp_path, "h1", exclude=dirs["new"].resolve()) == dirs["old"].resolve()
    assert find_unfinished(tmp_path, "h3") is None
    write_status(dirs["live"], "h2", "running", "cmd")  # this process: alive, left alone
    assert find_unfinished(tmp_path, "h2") == dirs["other"].resolve()


def test_multirun_writes_sweep_summary(cache: Path, tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    subprocess.run(
        [
            *chronos(cache, "+exp=ci", "stages=[greedy,bc,grpo,eval]", "eval.loko_in_report=false"),
            "grpo.epochs=1",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
            "--multirun",
        ],
        cwd=tmp_path,
        env=env(),
        check=True,
        capture_output=True,
        timeout=600,
    )
    md = (sweep / "sweep_summary.md").read_text()
    data = json.loads((sweep / "sweep_summary.json").read_text())
    assert len(data["runs"]) == 2 and "emulated estimate" in md
    m = data["metrics"]
    jobs = [json.loads((sweep / j / "eval" / "summary.json").read_text()) for j in ("0", "1")]
    grpo = [j["grpo_mean_improvement"] for j in jobs]
    assert m["grpo_mean_improvement"]["n"] == 2
    assert m["grpo_mean_improvement"]["mean"] == pytest.approx(sum(grpo) / 2)
    assert m["first_action_accuracy"]["n"] == 2
    assert "Mean speed-up, GRPO argmax" in md and "| 2 |" in md


def test_summarize_mean_and_spread() -> None:
    jobs = [
        {"grpo_mean_improvement": -0.2, "first_action_accuracy": {"grpo": 0.5}, "n_novel": 1},
        {"grpo_mean_improvement": -0.4, "first_action_accuracy": {"grpo": 1.0}, "n_novel": 3},
    ]
    s = summarize(jobs)
    assert s["grpo_mean_improvement"]["mean"] == pytest.approx(-0.3)
    assert s["grpo_mean_improvement"]["sd"] == pytest.approx(0.1414, abs=1e-4)
    assert s["novel_sequences"]["mean"] == 2 and s["first_action_accuracy"]["max"] == 1.0
    assert "loko_accuracy" not in s  # no job has one


def _imports(path: Path) -> set[str]:
    """Every absolute module a file imports (function-level imports included)."""
    import ast

    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
    return out


SHIMS = ("chronos.train", "chronos.eval", "chronos.optimize", "chronos.validate")


def test_entry_points_import_one_way() -> None:
    """agents never import the pipeline layer; the pipeline package never imports the `python -m`
    shims, and its eval never imports its train (no sys.argv tricks either)."""
    forbidden = {
        "agents": (*SHIMS, "chronos.pipeline"),
        "chronos/pipeline": SHIMS,
        "chronos/pipeline/eval": ("chronos.pipeline.train",),
    }
    for where, banned in forbidden.items():
        for f in sorted((ROOT / where).rglob("*.py")):
            bad = {m for m in _imports(f) if m.startswith(banned)}
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"
    for f in (ROOT / "chronos" / "pipeline").glob("*.py"):
        assert "sys.argv" not in f.read_text(), f


def test_the_entry_points_are_thin_shims() -> None:
    """`python -m chronos.X` only imports `main` from chronos.pipeline.X and calls it."""
    for shim in SHIMS:
        f = ROOT / (shim.replace(".", "/") + ".py")
        text = f.read_text()
        assert len(text.splitlines()) <= 12, f"{f.name}: {len(text.splitlines())} lines"
        target = "chronos.pipeline." + shim.split(".")[1]
        assert {m for m in _imports(f) if m.startswith("chronos")} == {target, f"{target}.main"}
        assert text.count("main(") == 1 and "def " not in text, f.name


def test_maskable_ppo_example_says_what_to_install_without_sb3(tmp_path: Path) -> None:
    code = (
        "import runpy, sys; sys.modules['sb3_contrib'] = None; sys.argv = ['x', '--steps', '1'];"
        f" runpy.run_path({str(ROOT / 'examples' / 'maskable_ppo.py')!r}, run_name='__main__')"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env(), capture_output=True, text=True
    )
    assert p.returncode == 1 and "pip install -e '.[sb3]'" in p.stderr
    assert "Traceback" not in p.stderr
