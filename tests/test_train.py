"""The pipeline end to end on the CI config (2 kernels, 2 GRPO epochs), resume, outputs."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf.errors import ConfigKeyError

from agents import checkpoint as ckpt
from agents.grpo import Interrupted
from chronos.pipeline.train import run, to_config
from chronos.stores.trajectories import TrajectoryLog

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Measurement store and greedy data shared by the tests of this session."""
    return tmp_path_factory.mktemp("chronos_cache")


def config(cache: Path, *overrides: str):  # type: ignore[no-untyped-def]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "+exp=ci",
                f"backend.store={cache / 'm.sqlite'}",
                f"greedy.dataset_dir={cache / 'greedy'}",
                "tensorboard=true",
                *overrides,
            ],
        )
    return to_config(cfg)


def test_every_exp_composes(cache: Path) -> None:
    for exp in ("grpo", "grpo_full", "grpo_all", "bc", "greedy", "loko", "lofo", "ci"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            tc = to_config(compose("config", overrides=[f"+exp={exp}"]))
        assert tc.grpo.clip_eps_low == 0.2 and tc.grpo.kl_beta == 0.01
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        full = to_config(compose("config", overrides=["+exp=grpo_full"]))
    assert (full.grpo.epochs, full.grpo.batch_kernels, full.grpo.eval_every) == (500, 32, 50)
    assert full.grpo.temperature.start == 1.5 and full.grpo.temperature.end == 0.5
    assert full.grpo.forced_steps.until_epoch == 50 and full.kernels.name == "gemm_tile"
    # a typo in an override fails at start-up, naming the key
    with pytest.raises(ConfigKeyError, match="Key 'epoch' not in 'GRPOConfig'"):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            to_config(compose("config", overrides=["+grpo.epoch=3"]))


def test_ci_pipeline_end_to_end(cache: Path, tmp_path: Path) -> None:
    out = run(config(cache), tmp_path)
    ev = out["eval"]
    assert ev["backend"] == "emulated" and ev["estimate"]
    assert set(ev["per_kernel"]) == {"gemm_tile_2_2_2", "gemm_tile_2_4_2"}
    assert ev["grpo_mean_improvement"] < 0 and ev["greedy_mean_improvement"] < 0
    assert ev["grpo_mean_improvement"] <= min(ev["grpo_raw_mean_improvement"], 0.0)  # guarded
    for row in ev["per_kernel"].values():  # the optimum column has a number on every kernel
        assert row["optimum"] <= min(row["greedy"], 0.0) and row["optimum_method"] in (
            "exhaustive",
            "beam w=1",
            "lower bound: budget hit",
        )
        assert row["grpo_measurements"] >= 1 and row["greedy_measurements"] > 1
    # the return greedy's sequence is credited with is what the MDP paid GRPO's argmax for the
    # same sequence (the self-imitation buffer and the report's return row rest on it)
    same = [k for k, r in ev["per_kernel"].items() if r["grpo_raw_actions"] == r["greedy_actions"]]
    assert same, "BC's argmax follows greedy on a CI kernel"
    for k in same:
        row = ev["per_kernel"][k]
        assert abs(row["grpo_return"] - row["greedy_return"]) < 1e-9, k
    rets = [r["grpo_return"] for r in ev["per_kernel"].values()]
    assert abs(ev["grpo_mean_return"] - sum(rets) / len(rets)) < 1e-12
    lower = [k for k, r in ev["per_kernel"].items() if r["grpo_return"] < r["greedy_return"] - 1e-9]
    assert ev["grpo_lower_return"] == sorted(lower)
    assert "| Mean return (GRPO argmax, raw" in (tmp_path / "report.md").read_text()
    for name in ("bc.pt", "last.pt", "best.pt", "best.json"):
        assert (tmp_path / "checkpoints" / name).exists(), name
    prov = ckpt.load(tmp_path / "checkpoints" / "last.pt")["provenance"]
    assert {"config", "git_revision", "kernels", "backend", "device", "seed"} <= set(prov)
    assert prov["backend"] == "emulated" and set(prov["kernels"]) == set(ev["per_kernel"])
    with (tmp_path / "metrics" / "train.csv").open() as f:
        header = next(csv.reader(f))
        f.seek(0)
        rows = list(csv.DictReader(f))
    assert header.count("epoch") == 1  # a fresh run's CSV had `epoch,epoch`
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    run_prov = json.loads((tmp_path / "provenance.json").read_text())
    assert run_prov["store"] == str((cache / "m.sqlite").resolve())  # the path, not "default"
    assert run_prov["families"] == dict.fromkeys(ev["per_kernel"], "gemm_tile")
    for key in (
        "charts/reward_mean",
        "charts/reward_std",
        "charts/frac_reward_zero_std",
        "charts/frac_reward_zero_std_sampled",
        "losses/entropy",
        "losses/kl",
        "losses/clip_ratio/low_mean",
        "losses/clip_ratio/high_mean",
        "charts/stop_rate",
        "actions/vec_ld",
        "charts/invalid_rate",
        "charts/cache_hit_rate",
        "perf/rollout_s",
        "perf/measure_s",
        "perf/update_s",
        "monitors/alarm_collapse",
    ):
        assert key in rows[0], key
    assert list((tmp_path / "metrics" / "tb").glob("events.*"))
    report = (tmp_path / "report.md").read_text()
    assert "emulated estimate" in report and "Success criteria" in report
    assert "GRPO reaches " in report and "of the optimum's log-gain" in report
    for png in ("learning_curves.png", "per_kernel.png", "loko.png"):
        assert (tmp_path / "plots" / png).stat().st_size > 1000
    with TrajectoryLog(tmp_path / "trajectories.sqlite") as log:
        assert log.count("grpo") > 0 and log.count("eval") > 0


def test_resume_after_interruption_keeps_trajectories(cache: Path, tmp_path: Path) -> None:
    from agents.grpo import Interrupted

    with pytest.raises(Interrupted):
        run(config(cache, "grpo.epochs=3", "stop_after_epoch=0"), tmp_path)
    with TrajectoryLog(tmp_path / "trajectories.sqlite") as log:
        before = log.records(current=False)
        assert before and {r["epoch"] for r in before if r["phase"] == "grpo"} == {0}
    out = run(config(cache, "grpo.epochs=3"), tmp_path)
    with TrajectoryLog(tmp_path / "trajectories.sqlite") as log:
        after = log.records(current=False)
        attempts = log.attempts()
        assert {r["epoch"] for r in log.records("grpo")} == {0, 1, 2}
    assert after[: len(before)] == before  # nothing logged was lost or rewritten
    assert len(attempts) == 2 and attempts[1]["resumed_from_epoch"] == 0
    with (tmp_path / "metrics" / "train.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]
    assert ckpt.load(tmp_path / "checkpoints" / "last.pt")["epoch"] == 2
    assert out["eval"]["per_kernel"]
    db = sqlite3.connect(tmp_path / "trajectories.sqlite")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM steps")
    db.close()


def test_resume_reproduces_uninterrupted_run(cache: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    run(config(cache, "grpo.epochs=2", "stages=[greedy,bc,grpo]"), a)
    with pytest.raises(Interrupted, match="stopped after epoch 0"):
        run(config(cache, "grpo.epochs=2", "stages=[greedy,bc,grpo]", "stop_after_epoch=0"), b)
    run(config(cache, "grpo.epochs=2", "stages=[greedy,bc,grpo]"), b)
    wa = ckpt.load(a / "checkpoints" / "last.pt")["policy"]
    wb = ckpt.load(b / "checkpoints" / "last.pt")["policy"]
    import torch

    assert all(torch.allclose(wa[k], wb[k]) for k in wa)


def test_cli_runs_under_hydra(cache: Path, tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "chronos.train",
        "+exp=ci",
        f"hydra.run.dir={tmp_path}",
        f"backend.store={cache / 'm.sqlite'}",
        f"greedy.dataset_dir={cache / 'greedy'}",
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600)
    assert (tmp_path / "report.md").exists()
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["n_kernels"] == 2
